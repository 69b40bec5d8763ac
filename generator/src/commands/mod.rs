//! One module per subcommand. Each takes its arguments and the output streams, and returns
//! an [`Exit`] code, so tests can drive them without a process.

mod generate;
mod validate;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use generate::GenerateArgs;
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
}

/// Exit codes, named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The config has problems; each was printed with its place.
    InvalidConfig = 1,
    /// Rendering, packaging or writing failed.
    Failed = 3,
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
