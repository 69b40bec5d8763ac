//! One module per subcommand. Each takes its arguments and the output streams, and returns
//! an [`Exit`] code, so tests can drive them without a process.

mod cancel;
mod controls;
mod deploy;
mod diff;
mod estimate;
mod generate;
mod local;
mod operate;
mod redrive;
mod results;
mod runs;
mod start;
mod status;
mod teardown;
mod validate;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{LoadError, Selector};

pub use cancel::CancelArgs;
pub use controls::{PauseArgs, ResumeArgs, ThrottleArgs};
pub use deploy::DeployArgs;
pub use diff::DiffArgs;
pub use estimate::EstimateArgs;
pub use generate::GenerateArgs;
pub use local::LocalArgs;
pub use redrive::RedriveArgs;
pub use results::ResultsArgs;
pub use runs::RunsArgs;
pub use start::StartArgs;
pub use status::StatusArgs;
pub use teardown::TeardownArgs;
pub use validate::ValidateArgs;

#[derive(Debug, Parser)]
#[command(
    name = "microprocess",
    version,
    about = "Deploy and run Microprocesses on AWS: config in, CloudFormation out"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Project root (the folder with `environments/` and `templates/`); found from the
    /// current directory when left out.
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// `text` for people, `json` for scripts: one JSON document on stdout (its schema per
    /// command in `docs/json-output.md`), nothing else there. Commands that do not report
    /// yet print text either way.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// How a command reports on stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// Writes `report` as the command's one JSON document.
pub(crate) fn print_json(out: &mut dyn Write, report: &impl serde::Serialize) {
    let text = serde_json::to_string_pretty(report)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot write the report as JSON: {e}\"}}"));
    let _ = writeln!(out, "{text}");
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an environment's config and print a summary, or every problem with its place.
    Validate(ValidateArgs),
    /// Render the CloudFormation bundle of an environment into `dist/ENV/`.
    Generate(GenerateArgs),
    /// Run an environment's deployed Lambda functions on this machine against the emulator.
    Local(LocalArgs),
    /// Deploy the bundle `dist/ENV/`: a change set per stack, shown, confirmed, executed.
    Deploy(DeployArgs),
    /// Show the change sets a deploy would execute, without executing them.
    Diff(DiffArgs),
    /// Delete every stack of an unprotected environment and check that nothing is left.
    Teardown(TeardownArgs),
    /// Start a run of a microprocess by hand (and follow it with `--wait`).
    Start(StartArgs),
    /// Every active run and the latest finished ones: counts, rate, ETA, dead letters.
    Status(StatusArgs),
    /// Look at one run.
    Runs(RunsArgs),
    /// Send a run's dead-lettered children back to its queue; retry a failed reduce.
    Redrive(RedriveArgs),
    /// End a run `CANCELLED`: no further process calls, no reduce.
    Cancel(CancelArgs),
    /// Stop a microprocess's deliveries without a redeploy; its messages wait on the queue.
    Pause(PauseArgs),
    /// Start a paused microprocess's deliveries again.
    Resume(ResumeArgs),
    /// Change a running microprocess's concurrency and rate cap without a redeploy.
    Throttle(ThrottleArgs),
    /// A run's children and their results, as JSON lines.
    Results(ResultsArgs),
    /// How long a run of N items takes and what it costs in AWS, from the config.
    Estimate(EstimateArgs),
}

/// Exit codes, named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The config has problems; each was printed with its place.
    InvalidConfig = 1,
    /// A name or id the command does not know, or a malformed one (clap also exits 2 on
    /// bad arguments).
    Usage = 2,
    /// Rendering, packaging or writing failed, or a call to AWS did.
    Failed = 3,
    /// Refused on purpose: a protected environment, the wrong account, a non-loopback
    /// endpoint for `local`, or no terminal to ask on without `--yes`.
    Refused = 4,
    /// A stack ended failed or rolled back; its failing resources were printed.
    StackFailed = 5,
    /// Teardown finished but resources of the environment are left.
    Leftovers = 6,
    /// The user answered no.
    Cancelled = 7,
    /// The environment is not deployed, or has no such run.
    NotFound = 8,
    /// A followed run ended `SPLIT_FAILED`, `REDUCE_FAILED` or `CANCELLED`.
    RunFailed = 9,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// Either `--env NAME` or `--all-envs`; `--sandbox NAME` makes a sandbox of the one
/// environment (of `sandbox` when `--env` is not given).
#[derive(Debug, Args, Clone)]
pub struct EnvSelection {
    /// The environment: a file `environments/NAME.toml`.
    #[arg(
        long = "env",
        value_name = "NAME",
        required_unless_present_any = ["all", "sandbox"],
        conflicts_with = "all"
    )]
    pub env: Option<String>,
    /// Every environment under `environments/`.
    #[arg(long = "all-envs")]
    pub all: bool,
    /// A sandbox of the environment: its copy named `ENV-NAME`, deployed and torn down on
    /// its own (see `--help` of `deploy`).
    #[arg(long, value_name = "NAME", value_parser = sandbox_name, conflicts_with = "all")]
    pub sandbox: Option<String>,
}

/// `--env NAME [--sandbox NAME]`: one environment, or a sandbox of it. Commands that act on
/// one environment flatten this and load it with [`InstanceArgs::load`].
#[derive(Debug, Args, Clone)]
pub struct InstanceArgs {
    /// The environment: a file `environments/NAME.toml` (`sandbox` when only `--sandbox`
    /// is given).
    #[arg(long = "env", value_name = "NAME", required_unless_present = "sandbox")]
    pub env: Option<String>,
    /// A sandbox of the environment: its copy named `ENV-NAME` (e.g. `sandbox-alice`), with
    /// its own stacks, resources, tags and `dist/ENV-NAME/`, so several live in one account.
    /// The environment must be unprotected and set `expires_after_days`.
    #[arg(long, value_name = "NAME", value_parser = sandbox_name)]
    pub sandbox: Option<String>,
}

impl InstanceArgs {
    pub fn selector(&self) -> Selector {
        Selector::new(self.env.as_deref(), self.sandbox.as_deref())
    }

    /// Loads the environment, or its sandbox; prints why not and returns the exit code.
    pub fn load(
        &self,
        project: &crate::config::Project,
        err: &mut dyn Write,
    ) -> Result<crate::config::Environment, Exit> {
        load(project, &self.selector(), err)
    }
}

/// Loads what `selector` names; prints why not and returns the exit code.
pub fn load(
    project: &crate::config::Project,
    selector: &Selector,
    err: &mut dyn Write,
) -> Result<crate::config::Environment, Exit> {
    project
        .load_instance(&selector.file, selector.sandbox.as_deref())
        .map_err(|e| {
            let _ = write!(err, "{e}");
            match e {
                LoadError::Config(_) => Exit::InvalidConfig,
                LoadError::Usage(_) => Exit::Usage,
            }
        })
}

/// clap's check of `--sandbox NAME`: the characters; the length depends on the environment
/// and is checked when it is loaded.
fn sandbox_name(s: &str) -> Result<String, String> {
    crate::config::sandbox::check_name(s).map(|()| s.to_string())
}

pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    let root = crate::config::find_root(cli.global.root.as_deref());
    let project = crate::config::Project::new(root);
    match cli.command {
        Command::Validate(args) => validate::run(&project, &args, cli.global.output, out, err),
        Command::Generate(args) => generate::run(&project, &args, cli.global.output, out, err),
        Command::Local(args) => local::run(&project, &args, err),
        Command::Deploy(args) => deploy::run(&project, &args, out, err),
        Command::Diff(args) => diff::run(&project, &args, out, err),
        Command::Teardown(args) => teardown::run(&project, &args, out, err),
        Command::Start(args) => start::run(&project, &args, out, err),
        Command::Status(args) => status::run(&project, &args, cli.global.output, out, err),
        Command::Runs(args) => runs::run(&project, &args, cli.global.output, out, err),
        Command::Redrive(args) => redrive::run(&project, &args, out, err),
        Command::Cancel(args) => cancel::run(&project, &args, out, err),
        Command::Pause(args) => controls::pause(&project, &args, out, err),
        Command::Resume(args) => controls::resume(&project, &args, out, err),
        Command::Throttle(args) => controls::throttle(&project, &args, out, err),
        Command::Results(args) => results::run(&project, &args, out, err),
        Command::Estimate(args) => estimate::run(&project, &args, cli.global.output, out, err),
    }
}

/// The environments a selection means.
fn selected(
    project: &crate::config::Project,
    sel: &EnvSelection,
    err: &mut dyn Write,
) -> Option<Vec<Selector>> {
    if !sel.all {
        return Some(vec![Selector::new(
            sel.env.as_deref(),
            sel.sandbox.as_deref(),
        )]);
    }
    match project.environment_names() {
        Ok(names) => Some(names.iter().map(|n| Selector::new(Some(n), None)).collect()),
        Err(d) => {
            let _ = write!(err, "{d}");
            None
        }
    }
}
