//! `microprocess local run`: runs an environment's deployed functions against the AWS
//! emulator (see [`crate::local`]).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::Exit;
use crate::aws::{self, Settings};
use crate::config::{host_architecture, Project};
use crate::local::logs::LogSink;
use crate::local::{self, LocalRunner, RunnerConfig};
use crate::plan;

/// Where the runner's Lambda endpoint listens unless told otherwise.
pub const DEFAULT_LAMBDA_PORT: u16 = 9070;

#[derive(Debug, Args)]
pub struct LocalArgs {
    #[command(subcommand)]
    pub command: LocalCommand,
}

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Run the deployed functions of an environment against the emulator until Ctrl-C:
    /// poll their queues, fire their rate schedules, serve Lambda `Invoke`.
    Run(LocalRunArgs),
}

#[derive(Debug, Args)]
pub struct LocalRunArgs {
    /// The environment whose deployed functions run (`<service>-<env>-*`).
    #[arg(long = "env", value_name = "NAME", default_value = "local")]
    pub env: String,
    /// The emulator; defaults to `AWS_ENDPOINT_URL`.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// The deployed bundle (its templates hold the schedules, its zips the code);
    /// defaults to `dist/NAME` under the project root.
    #[arg(long, value_name = "DIR")]
    pub dist: Option<PathBuf>,
    /// `WaitTimeSeconds` of each receive from a mapped queue (0 to 20). Use 0 with an
    /// emulator that serves one request at a time, where a long poll would hold it.
    #[arg(long, value_name = "SECONDS", default_value_t = 20, value_parser = clap::value_parser!(i32).range(0..=20))]
    pub receive_wait_seconds: i32,
    /// Point every function's `QUEUE_BASE_URL` at this implementation of the contract.
    #[arg(long, value_name = "URL", env = "MICROPROCESS_QUEUE_BASE_URL")]
    pub queue_base_url: Option<String>,
    /// The signing secret's value (the service must verify with the same); defaults to
    /// the one stored in the emulator, else a new one, printed.
    #[arg(
        long,
        value_name = "SECRET",
        env = "MICROPROCESS_SIGNING_SECRET",
        hide_env_values = true
    )]
    pub signing_secret: Option<String>,
    /// Fire no schedule on its own (`rate(...)` schedules fire on their period otherwise).
    #[arg(long)]
    pub no_schedules: bool,
    /// Fire one tick of this schedule at start (such as the monthly `cron(...)` one);
    /// repeat for several.
    #[arg(long = "fire-now", value_name = "SCHEDULE")]
    pub fire_now: Vec<String>,
    /// Chaos: kill a queue-triggered process in the middle of its batch with this
    /// probability (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = fraction)]
    pub kill_forwarder_rate: f64,
    /// Port of the runner's Lambda endpoint on 127.0.0.1; 0 picks a free one.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_LAMBDA_PORT)]
    pub lambda_port: u16,
    /// Write the functions' log lines to this file instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Run the zips in `target/lambda/<this machine's arch>/` instead of the deployed ones.
    #[arg(long)]
    pub code_from_build: bool,
}

fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "`{text}` is not a probability from 0 to 1, like `0.01`"
        )),
    }
}

pub fn run(project: &Project, args: &LocalArgs, err: &mut dyn Write) -> Exit {
    match &args.command {
        LocalCommand::Run(args) => run_local(project, args, err),
    }
}

fn run_local(project: &Project, args: &LocalRunArgs, err: &mut dyn Write) -> Exit {
    let env = match project.load(&args.env) {
        Ok(env) => env,
        Err(d) => {
            let _ = write!(err, "{d}");
            return Exit::InvalidConfig;
        }
    };
    let logs = match &args.log_file {
        Some(path) => match LogSink::to_file(path) {
            Ok(sink) => sink,
            Err(e) => {
                let _ = writeln!(err, "error: cannot open `{}`: {e}", path.display());
                return Exit::Failed;
            }
        },
        None => LogSink::stderr(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "error: cannot start the async runtime: {e}");
            return Exit::Failed;
        }
    };
    let result = runtime.block_on(async {
        let mut settings = Settings::from_process();
        if let Some(url) = &args.endpoint_url {
            settings.endpoint_url = Some(url.clone());
        }
        let mut notes = Vec::new();
        let connected = aws::connect(
            &env.name,
            &env.region,
            env.account_id.as_deref(),
            &settings,
            &mut notes,
        )
        .await;
        for n in notes {
            logs.note(n);
        }
        let connected = connected.map_err(|e| (e.to_string(), Exit::Failed))?;
        let Some(endpoint) = connected.endpoint.clone() else {
            return Err((
                "the local runner runs against the emulator, but no endpoint is set\n  \
                 hint: `export AWS_ENDPOINT_URL=http://127.0.0.1:5000` (`make emulator-start`) \
                 or pass `--endpoint-url`"
                    .to_string(),
                Exit::Failed,
            ));
        };
        if !aws::is_loopback_url(&endpoint) {
            return Err((
                format!(
                    "the local runner only runs against an emulator on loopback, not `{endpoint}`"
                ),
                Exit::Failed,
            ));
        }
        let prefix = plan::prefix(&env);
        let bundle_dir = args
            .dist
            .clone()
            .unwrap_or_else(|| project.root.join("dist").join(&env.name));
        let host_builds = project
            .root
            .join("target")
            .join("lambda")
            .join(host_architecture());
        let mut config = RunnerConfig::new(
            connected.config.clone(),
            endpoint,
            format!("{prefix}-"),
            local::work_dir(&project.root, &env.name),
        );
        config.bundle_dir = bundle_dir
            .join("manifest.json")
            .is_file()
            .then_some(bundle_dir.clone());
        if config.bundle_dir.is_none() {
            logs.note(format!(
                "no bundle at `{}`, so no schedules (run `make generate ENV={}`)",
                bundle_dir.display(),
                env.name
            ));
        }
        config.code_dirs = vec![bundle_dir.join("assets"), host_builds.clone()];
        config.build_dir = args.code_from_build.then_some(host_builds);
        config.queue_base_url = args.queue_base_url.clone();
        config.signing_secret = args.signing_secret.clone();
        config.runner_secret_name = format!("{prefix}/microprocesses/signing-secret");
        config.fire_rate_schedules = !args.no_schedules;
        config.fire_now = args.fire_now.clone();
        config.kill_forwarder_rate = args.kill_forwarder_rate;
        config.lambda_port = args.lambda_port;
        config.poll.wait_seconds = args.receive_wait_seconds;
        if args.receive_wait_seconds == 0 {
            config.poll.idle_pause = Duration::from_millis(200);
        }
        config.logs = logs.clone();
        let runner = LocalRunner::start(config)
            .await
            .map_err(|e| (e.to_string(), Exit::Failed))?;
        logs.note("running; Ctrl-C stops every function");
        let denied = runner.run_until_signalled().await;
        if denied.is_empty() {
            Ok(())
        } else {
            let list: Vec<String> = denied
                .iter()
                .map(|d| format!("  {}", d.describe()))
                .collect();
            Err((
                format!(
                    "the emulator denied {} request(s) of the functions, as AWS would:\n{}",
                    denied.len(),
                    list.join("\n")
                ),
                Exit::Failed,
            ))
        }
    });
    // Children are killed on drop; give the runtime a moment to reap them.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(()) => Exit::Ok,
        Err((message, code)) => {
            let _ = writeln!(err, "error: {message}");
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kill_rate_is_a_probability() {
        assert_eq!(fraction("0.01"), Ok(0.01));
        assert!(fraction("1.5").unwrap_err().contains("not a probability"));
        assert!(fraction("x").is_err());
    }
}
