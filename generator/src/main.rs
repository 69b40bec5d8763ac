use std::process::ExitCode;

use clap::Parser;
use microprocess_kit::commands::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Unlocked handles: each write takes the stream's lock for that write only. Holding
    // the locks here for the whole run would block every other thread that writes to
    // stdout or stderr (the local runner's log lines, progress bars) forever.
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    commands::run(cli, &mut stdout, &mut stderr).into()
}
