use std::process::ExitCode;

use clap::Parser;
use microprocess_kit::commands::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    commands::run(cli, &mut stdout, &mut stderr).into()
}
