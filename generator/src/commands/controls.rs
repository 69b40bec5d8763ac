//! `microprocess pause NAME`, `resume NAME` and `throttle NAME`: steer a microprocess's
//! deliveries while its runs go on, without a redeploy (`runs::controls`).

use std::io::Write;

use chrono::Utc;
use clap::Args;

use super::operate::{self, Session};
use super::Exit;
use crate::config::Project;
use crate::runs::controls::{self, Mapping};
use crate::runs::RunsError;

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The microprocess.
    #[arg(value_name = "NAME")]
    pub microprocess: String,
    #[command(flatten)]
    pub instance: super::InstanceArgs,
    /// Why, shown by `status` while it is paused.
    #[arg(long, value_name = "TEXT", default_value = "paused by hand")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The microprocess.
    #[arg(value_name = "NAME")]
    pub microprocess: String,
    #[command(flatten)]
    pub instance: super::InstanceArgs,
}

#[derive(Debug, Args)]
pub struct ThrottleArgs {
    /// The microprocess.
    #[arg(value_name = "NAME")]
    pub microprocess: String,
    #[command(flatten)]
    pub instance: super::InstanceArgs,
    /// Forwarders at once (the mapping's `MaximumConcurrency`), from 2 to the forwarder's
    /// reserved concurrency.
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<u32>,
    /// Process calls a second for the whole microprocess; 0 removes the cap.
    #[arg(long, value_name = "R")]
    pub rate: Option<u32>,
    /// Back to the config's concurrency and rate cap.
    #[arg(long, conflicts_with_all = ["max_concurrency", "rate"])]
    pub clear: bool,
}

/// The Lambda the mapping calls go to: the environment's, or the local runner's.
async fn lambda(session: &Session) -> Result<aws_sdk_lambda::Client, RunsError> {
    if session.is_local() {
        let work_dir = crate::local::work_dir(&session.project_root, &session.env.name);
        let endpoint = crate::local::client::lambda_endpoint(&work_dir)
            .map_err(|e| RunsError::Other(e.to_string()))?;
        Ok(crate::local::client::lambda_client(&endpoint, &session.env.region).await)
    } else {
        Ok(aws_sdk_lambda::Client::new(&session.aws.config))
    }
}

async fn mapping_of(
    session: &Session,
    name: &str,
) -> Result<(aws_sdk_lambda::Client, Mapping), RunsError> {
    let mp = session.deployed.microprocess(name)?;
    let lambda = lambda(session).await?;
    let mapping = controls::mapping(&lambda, &mp.forwarder).await?;
    Ok((lambda, mapping))
}

fn config_of<'a>(
    session: &'a Session,
    name: &str,
) -> Result<&'a crate::config::model::Microprocess, RunsError> {
    session
        .env
        .microprocesses
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| {
            RunsError::Other(format!(
                "`{name}` is not in the config of `{}`",
                session.env.name
            ))
        })
}

pub fn pause(
    project: &Project,
    args: &PauseArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    operate::in_session(project, &args.instance, err, async |session, _| {
        let name = &args.microprocess;
        let config = config_of(session, name)?;
        let (lambda, mapping) = mapping_of(session, name).await?;
        controls::set_enabled(&lambda, &mapping, false).await?;
        let mut current = session.ledger.controls(name).await?;
        if current.paused_at.is_none() {
            current.paused_at = Some(Utc::now());
        }
        current.paused_reason = Some(args.reason.clone());
        session.ledger.set_controls(name, &current).await?;
        let mp = session.deployed.microprocess(name)?;
        let waiting = crate::runs::redrive::dead_letters(&session.sqs, &mp.queue_url).await?;
        let _ = writeln!(
            out,
            "paused the deliveries of `{name}`: its forwarder's mapping is disabled; batches already taken finish, and {waiting} message(s) wait on the queue with their attempts untouched"
        );
        let retention = config.delivery.message_retention_days;
        match controls::oldest_active_run(&session.ledger, name).await? {
            Some(run) => {
                let expiry = controls::first_expiry(run.started_at, retention);
                let _ = writeln!(
                    out,
                    "the queue keeps a message {retention} day(s) (`delivery.message_retention_days`): run `{}` started {}, so its first messages can expire from {}; resume before then (`microprocess resume {name} --env {}`)",
                    run.run,
                    run.started_at.format("%Y-%m-%d %H:%M UTC"),
                    expiry.format("%Y-%m-%d %H:%M UTC"),
                    session.env.name
                );
            }
            None => {
                let _ = writeln!(out, "no run of `{name}` is in progress; messages queued from now on wait up to {retention} day(s)");
            }
        }
        Ok(Exit::Ok)
    })
}

pub fn resume(
    project: &Project,
    args: &ResumeArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    operate::in_session(project, &args.instance, err, async |session, _| {
        let name = &args.microprocess;
        let (lambda, mapping) = mapping_of(session, name).await?;
        controls::set_enabled(&lambda, &mapping, true).await?;
        let mut current = session.ledger.controls(name).await?;
        let since = current.paused_at.take();
        current.paused_reason = None;
        session.ledger.set_controls(name, &current).await?;
        let _ = match since {
            Some(at) => writeln!(
                out,
                "resumed the deliveries of `{name}` (paused since {})",
                at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            None => writeln!(out, "the deliveries of `{name}` are on (it was not paused)"),
        };
        Ok(Exit::Ok)
    })
}

pub fn throttle(
    project: &Project,
    args: &ThrottleArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    operate::in_session(project, &args.instance, err, async |session, err| {
        let name = &args.microprocess;
        let config = config_of(session, name)?;
        if !args.clear && args.max_concurrency.is_none() && args.rate.is_none() {
            let _ = writeln!(
                err,
                "error: say what to change: `--max-concurrency N`, `--rate R`, or `--clear`"
            );
            return Ok(Exit::Usage);
        }
        let reserved = config.delivery.reserved_concurrency;
        if let Some(n) = args.max_concurrency {
            if !(2..=reserved).contains(&n) {
                let _ = writeln!(
                    err,
                    "error: `--max-concurrency {n}` must be from 2 to the forwarder's reserved concurrency ({reserved})\n  hint: more would throttle pollers into burning receive counts; raise `delivery.reserved_concurrency` and deploy first"
                );
                return Ok(Exit::Usage);
            }
        }
        if let Some(r) = args.rate {
            if r > 100_000 {
                let _ = writeln!(err, "error: `--rate {r}` is over 100000 calls a second");
                return Ok(Exit::Usage);
            }
        }
        let (lambda, mapping) = mapping_of(session, name).await?;
        let mut current = session.ledger.controls(name).await?;
        if args.clear {
            controls::set_concurrency(&lambda, &mapping, config.delivery.max_concurrency).await?;
            current.max_concurrency = None;
            current.rate_limit_per_second = None;
            current.throttled_at = None;
        } else {
            if let Some(n) = args.max_concurrency {
                controls::set_concurrency(&lambda, &mapping, n).await?;
                current.max_concurrency = Some(n);
            }
            if let Some(r) = args.rate {
                current.rate_limit_per_second = Some(r);
            }
            current.throttled_at = Some(Utc::now());
        }
        session.ledger.set_controls(name, &current).await?;
        let concurrency = current
            .max_concurrency
            .unwrap_or(config.delivery.max_concurrency);
        let rate = match current
            .rate_limit_per_second
            .or(config.delivery.rate_limit_per_second)
        {
            Some(0) | None => "no rate cap".to_string(),
            Some(r) => format!("at most {r} calls a second"),
        };
        let source = if current.throttled() {
            "override"
        } else {
            "config"
        };
        let _ = writeln!(
            out,
            "`{name}` now runs {concurrency} forwarder(s) at once, {rate} ({source}); the forwarders take a new rate within 10 s. The next `deploy` keeps it; `microprocess throttle {name} --clear` ends it"
        );
        Ok(Exit::Ok)
    })
}
