use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::deploy::{execute, Terminal};
use super::{Exit, InstanceArgs};
use crate::config::Project;
use crate::deploy::ui::Ui;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The environment (`--env NAME`, and `--sandbox NAME` for a sandbox of it): its
    /// bundle `dist/NAME/` must have been generated.
    #[command(flatten)]
    pub env: InstanceArgs,
    /// The bundle to compare; defaults to `dist/NAME` under the project root.
    #[arg(long, value_name = "DIR")]
    pub dist: Option<PathBuf>,
}

/// The change sets `deploy` would execute, computed and deleted again.
pub fn run(project: &Project, args: &DiffArgs, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    let mut ui = Ui {
        out,
        err,
        bars: Terminal::detect().stderr,
        ask: None,
    };
    execute(
        project,
        &args.env.selector(),
        args.dist.as_ref(),
        true,
        false,
        &mut ui,
    )
}
