use std::io::Write;

use clap::Args;

use super::deploy::{connect, fail, poll_interval, runtime, Terminal};
use super::Exit;
use crate::aws::Aws;
use crate::config::sandbox::{self, Selector};
use crate::config::{Environment, Project};
use crate::deploy::cfn::{Cfn, StackInfo};
use crate::deploy::teardown::{self, FoundSandbox, Target};
use crate::deploy::ui::Ui;
use crate::deploy::{Options, EXPIRES_AT_TAG};

#[derive(Debug, Args)]
pub struct TeardownArgs {
    /// The environment to remove; protected environments are refused. With `--expired`,
    /// the environment whose sandboxes are looked at (`sandbox` when left out).
    #[arg(
        long = "env",
        value_name = "NAME",
        required_unless_present_any = ["sandbox", "expired"]
    )]
    pub env: Option<String>,
    /// Remove the sandbox `ENV-NAME` of the environment (`sandbox` when `--env` is left
    /// out) instead of the environment itself.
    #[arg(
        long,
        value_name = "NAME",
        value_parser = super::sandbox_name,
        conflicts_with = "expired"
    )]
    pub sandbox: Option<String>,
    /// Remove every sandbox of the environment whose stacks' `microprocess:expires-at` has
    /// passed, each as `--sandbox NAME` would; stacks without that tag are never touched.
    #[arg(long)]
    pub expired: bool,
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
    let selector = Selector::new(args.env.as_deref(), args.sandbox.as_deref());
    let env = if args.expired {
        project.load_sandbox_base(&selector.file).map_err(|d| {
            let _ = write!(err, "{d}");
            Exit::InvalidConfig
        })
    } else {
        super::load(project, &selector, err)
    };
    let env = match env {
        Ok(e) => e,
        Err(code) => return code,
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
        if args.expired {
            let others = project.environment_names().unwrap_or_default();
            return expired(&env, &others, &aws, &opts, &mut ui).await;
        }
        let target = Target::of(&env);
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
        remove(&target, &env.selector(), &stacks, &aws, &opts, &mut ui).await
    })
}

/// Deletes `stacks` of `target` and reports what is left.
async fn remove(
    target: &Target,
    selector: &Selector,
    stacks: &[StackInfo],
    aws: &Aws,
    opts: &Options,
    ui: &mut Ui<'_>,
) -> Exit {
    match teardown::teardown(target, stacks, aws, opts, ui).await {
        Ok(report) if report.leftovers.is_empty() => Exit::Ok,
        Ok(report) => {
            let _ = writeln!(
                ui.err,
                "error: teardown of `{}` left {} resources behind:",
                target.env,
                report.leftovers.len()
            );
            for l in &report.leftovers {
                let _ = writeln!(ui.err, "  - {l}");
            }
            let _ = writeln!(
                ui.err,
                "  hint: delete them by hand (they may belong to a stack deleted outside the kit), then run `microprocess teardown {selector}` again to check"
            );
            Exit::Leftovers
        }
        Err(e) => fail(ui, &e),
    }
}

/// `teardown --expired`: every sandbox of `base` past its expiry, each torn down as
/// `teardown --sandbox NAME` would, but only its stacks that carry an expiry tag.
async fn expired(
    base: &Environment,
    other_environments: &[String],
    aws: &Aws,
    opts: &Options,
    ui: &mut Ui<'_>,
) -> Exit {
    let cfn = Cfn::new(&aws.config, opts.poll);
    let now = chrono::Utc::now();
    let tagged = match cfn.with_tag(EXPIRES_AT_TAG).await {
        Ok(s) => s,
        Err(e) => return fail(ui, &e),
    };
    let found = teardown::sandboxes_of(base, tagged, other_environments);
    let (gone, kept): (Vec<FoundSandbox>, Vec<FoundSandbox>) =
        found.into_iter().partition(|s| s.expired(now));
    let time = |s: &FoundSandbox| s.expires_at.format("%Y-%m-%d %H:%M UTC").to_string();
    for s in &kept {
        ui.line(format!(
            "`{}` expires {}: kept ({} stacks)",
            s.env,
            time(s),
            s.stacks.len()
        ));
    }
    if gone.is_empty() {
        ui.line(format!(
            "no sandbox of `{}` has expired ({} found)",
            base.name,
            kept.len()
        ));
        return Exit::Ok;
    }
    let total: usize = gone.iter().map(|s| s.stacks.len()).sum();
    for s in &gone {
        ui.line(format!(
            "`{}` expired {}: {} stacks",
            s.env,
            time(s),
            s.stacks.len()
        ));
        for st in &s.stacks {
            ui.line(format!("  - {} ({})", st.name, st.status));
        }
        for u in &s.untagged {
            ui.line(format!("  - {u}: no expiry tag, left alone"));
        }
    }
    if !opts.yes
        && !ui.confirm(&format!(
            "delete these {} expired sandboxes ({total} stacks) and everything in them? [y/N] ",
            gone.len()
        ))
    {
        ui.line("nothing deleted");
        return Exit::Cancelled;
    }
    let mut exit = Exit::Ok;
    let mut removed = 0;
    for s in &gone {
        let instance = sandbox::instantiate(base, &s.name);
        let target = Target::of(&instance);
        // The same stacks a teardown of the sandbox finds, in the same order, but only
        // those whose expiry has passed.
        let stacks: Vec<StackInfo> = match teardown::stacks_of(&cfn, &target).await {
            Ok(all) => all
                .into_iter()
                .filter(|st| teardown::expires_at(st).is_some_and(|t| t <= now))
                .collect(),
            Err(e) => {
                exit = first_failure(exit, fail(ui, &e));
                continue;
            }
        };
        ui.line(format!("removing `{}`", s.env));
        let code = remove(&target, &instance.selector(), &stacks, aws, opts, ui).await;
        if code == Exit::Ok {
            removed += 1;
        }
        exit = first_failure(exit, code);
    }
    ui.line(format!(
        "removed {removed} of {} expired sandboxes of `{}`{}",
        gone.len(),
        base.name,
        if kept.is_empty() {
            String::new()
        } else {
            format!("; {} not expired", kept.len())
        }
    ));
    exit
}

fn first_failure(so_far: Exit, next: Exit) -> Exit {
    if so_far == Exit::Ok {
        next
    } else {
        so_far
    }
}
