use std::io::Write;

use clap::Args;
use serde::Serialize;

use super::{print_json, selected, EnvSelection, Exit, Output};
use crate::config::diagnostic::Diagnostic;
use crate::config::model::{Environment, Service};
use crate::config::{LoadError, Project};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub envs: EnvSelection,
}

/// How many microprocess names the text summary lists before it counts the rest.
const NAMES_SHOWN: usize = 8;

/// `--output json`: one entry per environment asked for.
#[derive(Debug, Serialize)]
struct Report {
    command: &'static str,
    environments: Vec<EnvironmentReport>,
}

#[derive(Debug, Serialize)]
struct EnvironmentReport {
    name: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    architecture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protected: Option<bool>,
    microprocesses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<ServiceReport>,
    /// The environment a sandbox was made of; null otherwise.
    sandbox_of: Option<String>,
    problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
struct ServiceReport {
    name: String,
    mode: &'static str,
    /// Where the kit's calls go.
    queue_base_url: String,
}

#[derive(Debug, Serialize)]
struct Problem {
    message: String,
    /// `file:line:column`, when the problem has a place.
    location: Option<String>,
    hint: Option<String>,
}

impl From<&Diagnostic> for Problem {
    fn from(d: &Diagnostic) -> Problem {
        Problem {
            message: d.message.clone(),
            location: d.location(),
            hint: d.hint.clone(),
        }
    }
}

fn loaded(env: &Environment) -> EnvironmentReport {
    let (mode, name) = match &env.service {
        Service::Fargate(f) => ("fargate", f.name.clone()),
        Service::External { name, .. } => ("external", name.clone()),
    };
    EnvironmentReport {
        name: env.name.clone(),
        ok: true,
        region: Some(env.region.clone()),
        architecture: Some(env.architecture.clone()),
        protected: Some(env.protected),
        microprocesses: env.microprocesses.iter().map(|m| m.name.clone()).collect(),
        service: Some(ServiceReport {
            name,
            mode,
            queue_base_url: env.service.queue_base_url(),
        }),
        sandbox_of: env.sandbox.as_ref().map(|s| s.of.clone()),
        problems: Vec::new(),
    }
}

/// `a, b, c` or, past [`NAMES_SHOWN`], `a, b, … and 992 more`.
fn names_summary(names: &[String]) -> String {
    if names.len() <= NAMES_SHOWN {
        return names.join(", ");
    }
    format!(
        "{}, … and {} more",
        names[..NAMES_SHOWN].join(", "),
        names.len() - NAMES_SHOWN
    )
}

pub fn run(
    project: &Project,
    args: &ValidateArgs,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    let Some(names) = selected(project, &args.envs, err) else {
        return Exit::InvalidConfig;
    };
    let mut exit = Exit::Ok;
    let mut report = Report {
        command: "validate",
        environments: Vec::new(),
    };
    for sel in names {
        let name = sel.name();
        match project.load_instance(&sel.file, sel.sandbox.as_deref()) {
            Ok(env) => {
                let r = loaded(&env);
                if output == Output::Text {
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
                        r.microprocesses.len(),
                        names_summary(&r.microprocesses),
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
                report.environments.push(r);
            }
            Err(LoadError::Config(diagnostics)) => {
                if output == Output::Text {
                    let _ = write!(err, "{diagnostics}");
                    let _ = writeln!(
                        err,
                        "`{name}`: {} problem{} found",
                        diagnostics.len(),
                        if diagnostics.len() == 1 { "" } else { "s" }
                    );
                }
                report.environments.push(EnvironmentReport {
                    name: name.to_string(),
                    ok: false,
                    region: None,
                    architecture: None,
                    protected: None,
                    microprocesses: Vec::new(),
                    service: None,
                    sandbox_of: None,
                    problems: diagnostics.0.iter().map(Problem::from).collect(),
                });
                exit = Exit::InvalidConfig;
            }
            Err(LoadError::Usage(d)) => {
                let _ = write!(err, "{d}");
                exit = Exit::Usage;
            }
        }
    }
    if output == Output::Json {
        print_json(out, &report);
    }
    exit
}

#[cfg(test)]
mod tests {
    use super::names_summary;

    #[test]
    fn a_long_list_of_names_is_summarised() {
        let few: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(names_summary(&few), "a, b");
        let many: Vec<String> = (0..1000).map(|i| format!("mp-{i:04}")).collect();
        assert_eq!(
            names_summary(&many),
            "mp-0000, mp-0001, mp-0002, mp-0003, mp-0004, mp-0005, mp-0006, mp-0007, … and 992 more"
        );
    }
}
