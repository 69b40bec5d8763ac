//! The kit's reference service: a toy credit-score service that implements the service
//! side of contract v1 (docs/contract.md) over real HTTP.
//!
//! - The **queue host** serves `/microprocesses/<name>/split|process|reduce` for each
//!   configured microprocess, checks the `X-Microprocess-Signature` of every request,
//!   honours `Idempotency-Key`, and misbehaves on demand ([`Chaos`]). Its unsigned
//!   `/_demo` routes expose the bookkeeping ([`Stats`]) and the runtime switches.
//! - A process call that carries a callback (`X-Microprocess-Callback`, or `"callback"`
//!   in the body; contract 1.1, section 2b) is a **long task**: answered `202 Accepted`
//!   after the same checks and failing chaos, worked on in the background for
//!   [`Config::long_task`] with a signed `heartbeat` report to the callback every
//!   [`Config::heartbeat`] (`--long-task-seconds`, default 5, and `--heartbeat-seconds`,
//!   default 2, on the command line), then reported `succeeded` with its result, signed
//!   with the config's secrets. The `--lost-report-seqs`, `--duplicate-report-seqs`,
//!   `--late-report-seqs` and `--bad-signature-report-seqs` chaos knobs spoil the
//!   reports; [`RunningService::shutdown`] aborts the tasks still running.
//! - The **live host** serves `/healthz` and `/scores/<id>`.
//!
//! The kit's runtime tests and chaos suite start it in-process with
//! [`DemoService::start`] (both hosts on free ports of 127.0.0.1) and assert on
//! [`DemoService::stats`]; the local demo runs the `demo-service` binary.

mod auth;
mod callback;
mod chaos;
pub mod cli;
mod config;
mod error;
mod live;
mod long_task;
pub mod paging;
mod queue;
pub mod report;
pub mod score;
mod state;
mod stats;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use axum::Router;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::chaos::{Chaos, ChaosError, SeqSelector, DEFAULT_SLOW_MS};
pub use crate::config::{
    secrets_in, Config, ConfigError, DEFAULT_HEARTBEAT, DEFAULT_ITEMS, DEFAULT_LONG_TASK,
    DEFAULT_MICROPROCESS,
};
pub use crate::long_task::CHANGED_MY_MIND;
pub use crate::queue::HEADER_REPLAYED;
pub use crate::stats::{CallRecord, ChildStats, ReduceStats, ReportCounts, RunStats, Stats};

use crate::state::Shared;

/// How long [`RunningService::shutdown`] lets calls in progress finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A demo service: its config, chaos and bookkeeping. Cheap to clone; clones share all.
#[derive(Clone)]
pub struct DemoService {
    shared: Arc<Shared>,
}

impl DemoService {
    /// A service that is not listening yet; see [`DemoService::start`].
    pub fn new(config: Config) -> Result<DemoService, ConfigError> {
        config.validate()?;
        Ok(DemoService {
            shared: Arc::new(Shared::new(config)),
        })
    }

    /// Validates `config`, binds both hosts on 127.0.0.1 (port 0: a free port) and
    /// serves them until [`RunningService::shutdown`].
    pub async fn start(config: Config) -> Result<RunningService, StartError> {
        DemoService::new(config)?.serve().await
    }

    /// Binds and serves this service (see [`DemoService::start`]).
    pub async fn serve(&self) -> Result<RunningService, StartError> {
        let config = &self.shared.config;
        let queue = bind("queue", config.queue_port).await?;
        let live = bind("live", config.live_port).await?;
        let queue_addr = local_addr("queue", &queue)?;
        let live_addr = local_addr("live", &live)?;
        let (stop, stopped) = watch::channel(false);
        self.shared.long_tasks.open();
        let tasks = vec![
            tokio::spawn(serve(queue, self.queue_router(), stopped.clone())),
            tokio::spawn(serve(live, self.live_router(), stopped)),
        ];
        tracing::info!(%queue_addr, %live_addr, "demo service listening");
        Ok(RunningService {
            queue_addr,
            live_addr,
            service: self.clone(),
            stop,
            tasks,
        })
    }

    /// The queue host's routes, to serve on a listener of one's own.
    pub fn queue_router(&self) -> Router {
        queue::router(self.shared.clone())
    }

    /// The live host's routes.
    pub fn live_router(&self) -> Router {
        live::router()
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// A snapshot of the bookkeeping.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The chaos in force.
    pub fn chaos(&self) -> Chaos {
        (*self.shared.chaos()).clone()
    }

    /// Replaces the chaos for the calls that arrive from now on.
    pub fn set_chaos(&self, chaos: Chaos) -> Result<(), ChaosError> {
        chaos.validate()?;
        self.shared.set_chaos(chaos);
        Ok(())
    }

    /// `true` cures the seqs of `fail_seqs_4xx` (as `POST /_demo/fix` does).
    pub fn set_fixed(&self, fixed: bool) {
        self.shared.set_fixed(fixed);
    }
}

/// A service listening on both hosts. Dropping it stops the listeners and aborts the
/// long tasks too, without waiting for calls in progress.
pub struct RunningService {
    pub queue_addr: SocketAddr,
    pub live_addr: SocketAddr,
    pub service: DemoService,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<io::Result<()>>>,
}

impl RunningService {
    /// Base URL of the queue host, such as `http://127.0.0.1:8081`, with the path prefix
    /// when there is one (`http://127.0.0.1:8081/svc`): the kit's `QUEUE_BASE_URL`.
    pub fn queue_url(&self) -> String {
        format!(
            "http://{}{}",
            self.queue_addr, self.service.shared.config.path_prefix
        )
    }

    /// Base URL of the live host.
    pub fn live_url(&self) -> String {
        format!("http://{}", self.live_addr)
    }

    pub fn stats(&self) -> Stats {
        self.service.stats()
    }

    /// Aborts the long tasks (their reports unsent; a call that would start one from now
    /// on is answered 503), stops accepting connections, lets calls in progress finish
    /// for up to 5 s, then drops the rest.
    pub async fn shutdown(mut self) -> io::Result<()> {
        for task in self.service.shared.long_tasks.close() {
            let _ = task.await;
        }
        let _ = self.stop.send(true);
        let mut result = Ok(());
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            match tokio::time::timeout(SHUTDOWN_GRACE, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => result = Err(error),
                Ok(Err(join_error)) if join_error.is_cancelled() => {}
                Ok(Err(join_error)) => result = Err(io::Error::other(join_error)),
                Err(_elapsed) => abort.abort(),
            }
        }
        result
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        drop(self.service.shared.long_tasks.close());
    }
}

/// Why the service did not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr} for the {host} host: {source}; pick another port with `--{host}-port`")]
    Bind {
        host: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
}

async fn bind(host: &'static str, port: u16) -> Result<TcpListener, StartError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { host, addr, source })
}

fn local_addr(host: &'static str, listener: &TcpListener) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Bind {
        host,
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        source,
    })
}

async fn serve(
    listener: TcpListener,
    router: Router,
    mut stopped: watch::Receiver<bool>,
) -> io::Result<()> {
    // Small answers go out at once instead of waiting on Nagle's algorithm.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
}
