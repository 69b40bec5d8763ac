use std::io::Write;

use clap::Args;

use super::deploy::{connect, fail, poll_interval, runtime, Terminal};
use super::Exit;
use crate::config::Project;
use crate::deploy::cfn::Cfn;
use crate::deploy::teardown::{self, Target};
use crate::deploy::ui::Ui;
use crate::deploy::Options;

#[derive(Debug, Args)]
pub struct TeardownArgs {
    /// The environment to remove; protected environments are refused.
    #[arg(long = "env", value_name = "NAME")]
    pub env: String,
    /// Delete without asking (required without a terminal).
    #[arg(long)]
    pub yes: bool,
}

pub fn run(
    project: &Project,
    args: &TeardownArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    let env = match project.load(&args.env) {
        Ok(e) => e,
        Err(d) => {
            let _ = write!(err, "{d}");
            return Exit::InvalidConfig;
        }
    };
    if env.protected {
        let _ = writeln!(
            err,
            "error: `{}` is protected: teardown never removes a protected environment\n  hint: its stateful resources are retained on purpose; removing it is a decision to take by hand, not a command",
            env.name
        );
        return Exit::Refused;
    }
    let terminal = Terminal::detect();
    if !args.yes && !terminal.stdin {
        let _ = writeln!(
            err,
            "error: `teardown` asks before deleting, but there is no terminal to ask on\n  hint: pass `--yes` to delete without asking"
        );
        return Exit::Refused;
    }
    let mut ask = |q: &str| terminal.ask(q);
    let mut ui = Ui {
        out,
        err,
        bars: terminal.stderr,
        ask: Some(&mut ask),
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(ui.err, "error: cannot start the async runtime: {e}");
            return Exit::Failed;
        }
    };
    let target = Target::of(&env);
    runtime.block_on(async {
        let aws = match connect(&env.name, &env.region, env.account_id.as_deref(), &mut ui).await {
            Ok(a) => a,
            Err(code) => return code,
        };
        let opts = Options {
            execute: true,
            yes: args.yes,
            poll: poll_interval(&aws),
        };
        let stacks = match teardown::stacks_of(&Cfn::new(&aws.config, opts.poll), &target).await {
            Ok(s) => s,
            Err(e) => return fail(&mut ui, &e),
        };
        if stacks.is_empty() {
            ui.line(format!("`{}` has no stacks", env.name));
        } else {
            ui.line(format!("stacks of `{}`, in the order they go:", env.name));
            for s in &stacks {
                ui.line(format!("  - {} ({})", s.name, s.status));
            }
            if !args.yes
                && !ui.confirm(&format!(
                    "delete these {} stacks and everything in them? [y/N] ",
                    stacks.len()
                ))
            {
                ui.line("nothing deleted");
                return Exit::Cancelled;
            }
        }
        match teardown::teardown(&target, &stacks, &aws, &opts, &mut ui).await {
            Ok(report) if report.leftovers.is_empty() => Exit::Ok,
            Ok(report) => {
                let _ = writeln!(
                    ui.err,
                    "error: teardown of `{}` left {} resources behind:",
                    env.name,
                    report.leftovers.len()
                );
                for l in &report.leftovers {
                    let _ = writeln!(ui.err, "  - {l}");
                }
                let _ = writeln!(
                    ui.err,
                    "  hint: delete them by hand (they may belong to a stack deleted outside the kit), then run `microprocess teardown --env {}` again to check",
                    env.name
                );
                Exit::Leftovers
            }
            Err(e) => fail(&mut ui, &e),
        }
    })
}
