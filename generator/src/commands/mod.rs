//! One module per subcommand. Each takes its arguments and the output streams, and returns
//! an [`Exit`] code, so tests can drive them without a process.

mod deploy;
mod diff;
mod generate;
mod local;
mod teardown;
mod validate;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use deploy::DeployArgs;
pub use diff::DiffArgs;
pub use generate::GenerateArgs;
pub use local::LocalArgs;
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
}

/// Exit codes, named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The config has problems; each was printed with its place.
    InvalidConfig = 1,
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
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// Either `--env NAME` or `--all-envs`.
#[derive(Debug, Args, Clone)]
#[group(required = true, multiple = false)]
pub struct EnvSelection {
    /// The environment: a file `environments/NAME.toml`.
    #[arg(long = "env", value_name = "NAME")]
    pub env: Option<String>,
    /// Every environment under `environments/`.
    #[arg(long = "all-envs")]
    pub all: bool,
}

pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    let root = crate::config::find_root(cli.global.root.as_deref());
    let project = crate::config::Project::new(root);
    match cli.command {
        Command::Validate(args) => validate::run(&project, &args, out, err),
        Command::Generate(args) => generate::run(&project, &args, out, err),
        Command::Local(args) => local::run(&project, &args, err),
        Command::Deploy(args) => deploy::run(&project, &args, out, err),
        Command::Diff(args) => diff::run(&project, &args, out, err),
        Command::Teardown(args) => teardown::run(&project, &args, out, err),
    }
}

/// The environment names a selection means.
fn selected(
    project: &crate::config::Project,
    sel: &EnvSelection,
    err: &mut dyn Write,
) -> Option<Vec<String>> {
    if let Some(env) = &sel.env {
        return Some(vec![env.clone()]);
    }
    match project.environment_names() {
        Ok(names) => Some(names),
        Err(d) => {
            let _ = write!(err, "{d}");
            None
        }
    }
}
