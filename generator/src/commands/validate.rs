use std::io::Write;

use clap::Args;

use super::{selected, EnvSelection, Exit};
use crate::config::model::Service;
use crate::config::{LoadError, Project};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub envs: EnvSelection,
}

pub fn run(
    project: &Project,
    args: &ValidateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    let Some(names) = selected(project, &args.envs, err) else {
        return Exit::InvalidConfig;
    };
    let mut exit = Exit::Ok;
    for sel in names {
        let name = sel.name();
        match project.load_instance(&sel.file, sel.sandbox.as_deref()) {
            Ok(env) => {
                let service = match &env.service {
                    Service::Fargate(f) => format!("fargate, queue host {}", f.queue_host),
                    Service::External { queue_base_url, .. } => {
                        format!("external at {queue_base_url}")
                    }
                };
                let _ = writeln!(
                    out,
                    "ok: `{}` ({}, {}{}): {} microprocesses ({}); service {}",
                    env.name,
                    env.region,
                    env.architecture,
                    if env.protected { ", protected" } else { "" },
                    env.microprocesses.len(),
                    env.microprocesses
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    service
                );
                if let (Some(s), Some(days)) = (&env.sandbox, env.expires_after_days) {
                    let _ = writeln!(
                        out,
                        "  sandbox `{}` of `{}`: expires {days} days after each deploy",
                        s.name, s.of
                    );
                }
            }
            Err(LoadError::Config(diagnostics)) => {
                let _ = write!(err, "{diagnostics}");
                let _ = writeln!(
                    err,
                    "`{name}`: {} problem{} found",
                    diagnostics.len(),
                    if diagnostics.len() == 1 { "" } else { "s" }
                );
                exit = Exit::InvalidConfig;
            }
            Err(LoadError::Usage(d)) => {
                let _ = write!(err, "{d}");
                exit = Exit::Usage;
            }
        }
    }
    exit
}
