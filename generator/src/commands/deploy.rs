use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{Exit, InstanceArgs};
use crate::aws::{self, Aws, AwsError, Settings};
use crate::config::{Project, Selector};
use crate::deploy::bundle::Bundle;
use crate::deploy::ui::Ui;
use crate::deploy::{self, DeployError, Options};
use crate::render::Renderer;

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The environment (`--env NAME`, and `--sandbox NAME` for a sandbox of it): its
    /// bundle `dist/NAME/` must have been generated.
    #[command(flatten)]
    pub env: InstanceArgs,
    /// Execute every change set without asking (required without a terminal).
    #[arg(long)]
    pub yes: bool,
    /// The bundle to deploy; defaults to `dist/NAME` under the project root.
    #[arg(long, value_name = "DIR")]
    pub dist: Option<PathBuf>,
}

pub fn run(project: &Project, args: &DeployArgs, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    let terminal = Terminal::detect();
    if !args.yes && !terminal.stdin {
        let _ = writeln!(
            err,
            "error: `deploy` asks before executing each change set, but there is no terminal to ask on\n  hint: pass `--yes` to execute without asking (as a pipeline does), or run `microprocess diff {}` to only look",
            args.env.selector()
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
    execute(
        project,
        &args.env.selector(),
        args.dist.as_ref(),
        args.yes,
        true,
        &mut ui,
    )
}

/// `deploy` and `diff`: load the bundle, check it is current, connect, deploy.
pub(super) fn execute(
    project: &Project,
    selector: &Selector,
    dist: Option<&PathBuf>,
    yes: bool,
    apply: bool,
    ui: &mut Ui<'_>,
) -> Exit {
    let env = &selector.name();
    let dir = dist
        .cloned()
        .unwrap_or_else(|| project.root.join("dist").join(env));
    let bundle = match Bundle::load(selector, &dir) {
        Ok(b) => b,
        Err(e) => return fail(ui, &e.into()),
    };
    if let Some(code) = check_current(project, selector, &bundle, dist.is_some(), ui) {
        return code;
    }
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(ui.err, "error: cannot start the async runtime: {e}");
            return Exit::Failed;
        }
    };
    runtime.block_on(async {
        let manifest = &bundle.manifest;
        let aws = match connect(env, &manifest.region, manifest.account_id.as_deref(), ui).await {
            Ok(a) => a,
            Err(code) => return code,
        };
        let opts = Options {
            execute: apply,
            yes,
            poll: poll_interval(&aws),
        };
        match deploy::deploy(&bundle, &aws, &opts, ui).await {
            Ok(_) if apply => keep_controls(project, selector, &aws, ui).await,
            Ok(_) => Exit::Ok,
            Err(e) => fail(ui, &e),
        }
    })
}

/// Keeps the run controls operators set (`runs::controls::reapply`). A `local` deploy
/// with no runner running has nothing to set: the runner reads them when it starts.
async fn keep_controls(project: &Project, selector: &Selector, aws: &Aws, ui: &mut Ui<'_>) -> Exit {
    let Ok(env) = project.load_instance(&selector.file, selector.sandbox.as_deref()) else {
        return Exit::Ok;
    };
    let lambda = if crate::aws::is_local(&env.name) {
        let work_dir = crate::local::work_dir(&project.root, &env.name);
        match crate::local::client::lambda_endpoint(&work_dir) {
            Ok(endpoint) => crate::local::client::lambda_client(&endpoint, &env.region).await,
            Err(_) => return Exit::Ok,
        }
    } else {
        aws_sdk_lambda::Client::new(&aws.config)
    };
    // Some stack not deployed (a first deploy that stopped early): no run to steer yet.
    let Ok(deployed) = crate::runs::deployed::Deployed::discover(&aws.config, &env).await else {
        return Exit::Ok;
    };
    let result = async {
        let ledger = microprocess_shared::ledger::Ledger::from_config(
            &aws.config,
            deployed.ledger_table.clone(),
        );
        crate::runs::controls::reapply(&ledger, &lambda, &deployed).await
    }
    .await;
    match result {
        Ok(kept) => {
            for line in kept {
                let _ = writeln!(ui.out, "run controls: {line}");
            }
            Exit::Ok
        }
        Err(e) => {
            let _ = writeln!(ui.err, "error: the stacks are deployed, but the run controls could not be set again: {e}\n  hint: `microprocess status --env {}` shows them; set them again with `pause` or `throttle`", env.name);
            Exit::Failed
        }
    }
}

/// Re-renders the environment and compares it with the bundle. A bundle passed with
/// `--dist` from outside a project (a pipeline) is taken as it is.
fn check_current(
    project: &Project,
    selector: &Selector,
    bundle: &Bundle,
    explicit: bool,
    ui: &mut Ui<'_>,
) -> Option<Exit> {
    let env_file = project
        .environments_dir()
        .join(format!("{}.toml", selector.file));
    if explicit && !env_file.is_file() {
        ui.note(format!(
            "no `{}` here: deploying the bundle as generated",
            env_file.display()
        ));
        return None;
    }
    let env = match super::load(project, selector, ui.err) {
        Ok(e) => e,
        Err(code) => return Some(code),
    };
    let rendered =
        Renderer::load(&project.root.join("templates")).and_then(|r| r.render_environment(&env));
    let rendered = match rendered {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(ui.err, "error: {e}");
            return Some(Exit::Failed);
        }
    };
    match bundle.check_current(&rendered) {
        Ok(()) => None,
        Err(e) => Some(fail(ui, &e.into())),
    }
}

pub(super) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Connects as the environment requires, printing who and where.
pub(super) async fn connect(
    env: &str,
    region: &str,
    account: Option<&str>,
    ui: &mut Ui<'_>,
) -> Result<Aws, Exit> {
    let mut notes = Vec::new();
    let result = aws::connect(env, region, account, &Settings::from_process(), &mut notes).await;
    for n in notes {
        ui.note(n);
    }
    match result {
        Ok(a) => {
            ui.line(format!(
                "environment `{env}`: account {} in {}{}",
                a.account,
                a.region,
                a.endpoint
                    .as_deref()
                    .map(|e| format!(" at {e}"))
                    .unwrap_or_default()
            ));
            Ok(a)
        }
        Err(e) => {
            let _ = writeln!(ui.err, "error: {e}");
            Err(match e {
                AwsError::Identity { .. } => Exit::Failed,
                _ => Exit::Refused,
            })
        }
    }
}

/// The emulator answers at once; CloudFormation takes seconds per step.
pub(super) fn poll_interval(aws: &Aws) -> Duration {
    match &aws.endpoint {
        Some(url) if aws::is_loopback_url(url) => Duration::from_millis(200),
        _ => Duration::from_secs(5),
    }
}

pub(super) fn fail(ui: &mut Ui<'_>, e: &DeployError) -> Exit {
    let _ = writeln!(ui.err, "error: {e}");
    match e {
        DeployError::StackFailed { .. }
        | DeployError::Held { .. }
        | DeployError::Kept { .. }
        | DeployError::NotReady { .. } => Exit::StackFailed,
        DeployError::Declined { .. } => Exit::Cancelled,
        _ => Exit::Failed,
    }
}

/// Whether a person is at the keyboard and watching.
#[derive(Debug, Clone, Copy)]
pub(super) struct Terminal {
    pub stdin: bool,
    pub stderr: bool,
}

impl Terminal {
    pub fn detect() -> Terminal {
        Terminal {
            stdin: std::io::stdin().is_terminal(),
            stderr: std::io::stderr().is_terminal(),
        }
    }

    /// Asks on stderr, reads the answer from stdin; only `y` or `yes` mean yes.
    pub fn ask(&self, question: &str) -> bool {
        if !self.stdin {
            return false;
        }
        eprint!("{question}");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }
}
