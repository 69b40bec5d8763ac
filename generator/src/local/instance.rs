//! One instance of a function: its `bootstrap` as a child process, warm between
//! invocations, with its own Runtime API on a loopback port.
//!
//! A supervisor task starts the process, forwards its output to the log sink and starts
//! it again when it ends (after a short backoff when it keeps failing to start). An
//! invocation that outlives the function's timeout is reported as failed and its process
//! is killed and started again, as Lambda does with a timed-out sandbox; so is one whose
//! process dies, or that a chaos kill ends. A process whose resident memory passes the
//! function's `MemorySize` is killed too, and its invocation fails, as Lambda's sandbox
//! is stopped at its memory limit (see [`super::memory`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant};

use super::logs::{pump, LogSink};
use super::runtime_api::{self, ApiState, Failure, InvokeResult, Pending};

/// How long a process may take to ask for its first event (Lambda's init limit).
pub const DEFAULT_INIT_LIMIT: Duration = Duration::from_secs(10);
/// Time allowed past the deadline for the answer to arrive.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);
/// A process that ends sooner than this after its start counts as failing to start.
const QUICK_EXIT: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What an instance runs.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    /// `credit-scores-forwarder#2`: the prefix of its log lines.
    pub label: String,
    pub function_arn: String,
    pub bootstrap: PathBuf,
    /// The working directory (`LAMBDA_TASK_ROOT`).
    pub code_dir: PathBuf,
    /// The process's whole environment; the runner adds `AWS_LAMBDA_RUNTIME_API`.
    pub environment: Vec<(String, String)>,
    /// How long a (re)started process may take to ask for an event.
    pub init_limit: Duration,
    /// The function's `MemorySize`, in MB (Lambda's MB are MiB); `None` sets no limit.
    pub memory_limit_mb: Option<u32>,
}

/// A running instance. Invocations are one at a time: its owner (a queue poller or a
/// worker) waits for each to end before the next.
pub struct Instance {
    label: String,
    init_limit: Duration,
    events: mpsc::Sender<Pending>,
    api: Arc<ApiState>,
    kill: Arc<Mutex<Option<mpsc::UnboundedSender<()>>>>,
    starts: Arc<AtomicU64>,
    logs: LogSink,
    tasks: Vec<JoinHandle<()>>,
}

impl Instance {
    /// Binds the instance's Runtime API on a free loopback port and starts its process.
    pub async fn start(
        config: InstanceConfig,
        logs: LogSink,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Instance> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let (events, receiver) = mpsc::channel(1);
        let api = Arc::new(ApiState::new(
            config.function_arn.clone(),
            config.label.clone(),
            logs.clone(),
            receiver,
            shutdown.clone(),
        ));
        let mut server_shutdown = shutdown.clone();
        let server = axum::serve(listener, runtime_api::router(api.clone()))
            .with_graceful_shutdown(async move {
                super::stop_requested(&mut server_shutdown).await;
            });
        let server_logs = logs.clone();
        let server_label = config.label.clone();
        let server = tokio::spawn(async move {
            if let Err(e) = server.await {
                server_logs.note(format!("{server_label}: the Runtime API stopped: {e}"));
            }
        });
        let kill = Arc::new(Mutex::new(None));
        let starts = Arc::new(AtomicU64::new(0));
        let mut environment = config.environment.clone();
        environment.push(("AWS_LAMBDA_RUNTIME_API".into(), address.to_string()));
        let supervisor = tokio::spawn(supervise(
            SupervisedProcess {
                config: InstanceConfig {
                    environment,
                    ..config.clone()
                },
                api: api.clone(),
                kill: kill.clone(),
                starts: starts.clone(),
                logs: logs.clone(),
            },
            shutdown,
        ));
        Ok(Instance {
            label: config.label,
            init_limit: config.init_limit,
            events,
            api,
            kill,
            starts,
            logs,
            tasks: vec![server, supervisor],
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// How many times its process was started.
    pub fn starts(&self) -> u64 {
        self.starts.load(Ordering::Relaxed)
    }

    /// Kills the current process (it is started again).
    pub fn kill(&self) {
        if let Some(kill) = self.kill.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = kill.send(());
        }
    }

    /// Runs one invocation with `payload` and waits for its outcome, at most `timeout`
    /// after the process takes the event (and the init limit for it to take it).
    /// `kill_after` kills the process that long into the invocation (chaos).
    pub async fn invoke(
        &self,
        payload: Bytes,
        timeout: Duration,
        kill_after: Option<Duration>,
    ) -> InvokeResult {
        let request_id = request_id();
        let (delivered_tx, delivered_rx) = oneshot::channel();
        let (result_tx, mut result_rx) = oneshot::channel();
        let pending = Pending {
            request_id: request_id.clone(),
            payload,
            timeout,
            delivered: delivered_tx,
            result: result_tx,
        };
        // Both waits count against the init limit: a process that keeps failing to start
        // takes no event at all.
        let delivery = tokio::time::timeout(self.init_limit, async {
            self.events
                .send(pending)
                .await
                .map_err(|_| Failure::Shutdown)?;
            delivered_rx.await.map_err(|_| Failure::Shutdown)
        });
        match delivery.await {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => return Err(failure),
            Err(_) => {
                // Dropping `result_rx` withdraws the event; the process is started again.
                self.kill();
                return Err(Failure::NotStarted {
                    waited: self.init_limit,
                });
            }
        }
        let started = Instant::now();
        let deadline = started + timeout + DEADLINE_GRACE;
        let mut chaos = kill_after.map(|after| Box::pin(sleep(after)));
        let result = loop {
            tokio::select! {
                result = &mut result_rx => {
                    break result.unwrap_or_else(|_| Err(Failure::Exited {
                        status: "unknown".into(),
                    }));
                }
                () = sleep_until(deadline) => {
                    self.api.forget(&request_id);
                    self.kill();
                    self.logs.note(format!(
                        "{}: request {request_id} timed out after {} s; its process is killed and started again",
                        self.label,
                        timeout.as_secs()
                    ));
                    break Err(Failure::TimedOut { after: timeout });
                }
                () = async { chaos.as_mut().expect("guarded by the branch condition").await },
                    if chaos.is_some() =>
                {
                    chaos = None;
                    self.logs.note(format!(
                        "{}: chaos: killing the process in the middle of request {request_id}",
                        self.label
                    ));
                    self.kill();
                }
            }
        };
        // Lambda's own last line of an invocation, so every invocation shows in the log.
        let status = match &result {
            Ok(runtime_api::Outcome::Response(_)) => "ok".to_string(),
            Ok(runtime_api::Outcome::Error { error_type, .. }) => format!("error {error_type}"),
            Err(failure) => format!("failed: {failure}"),
        };
        self.logs.function_line(
            &self.label,
            &format!(
                "REPORT RequestId: {request_id}\tDuration: {:.2} ms\tStatus: {status}",
                started.elapsed().as_secs_f64() * 1000.0
            ),
        );
        result
    }

    /// Waits for the process and the Runtime API to stop (after the runner's shutdown).
    pub async fn stopped(self) {
        let Instance { tasks, events, .. } = self;
        drop(events);
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// A fresh request id, shaped like Lambda's (a UUID v4).
pub fn request_id() -> String {
    let hex: String = (0..32)
        .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
        .collect();
    format!(
        "{}-{}-4{}-{}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        ['8', '9', 'a', 'b'][fastrand::usize(0..4)],
        &hex[17..20],
        &hex[20..32]
    )
}

struct SupervisedProcess {
    config: InstanceConfig,
    api: Arc<ApiState>,
    kill: Arc<Mutex<Option<mpsc::UnboundedSender<()>>>>,
    starts: Arc<AtomicU64>,
    logs: LogSink,
}

async fn supervise(process: SupervisedProcess, mut shutdown: watch::Receiver<bool>) {
    let SupervisedProcess {
        config,
        api,
        kill,
        starts,
        logs,
    } = process;
    let label = &config.label;
    let mut backoff = FIRST_BACKOFF;
    let mut pumps: Vec<JoinHandle<()>> = Vec::new();
    while !*shutdown.borrow() {
        let (kill_tx, mut kill_rx) = mpsc::unbounded_channel();
        *kill.lock().unwrap_or_else(|p| p.into_inner()) = Some(kill_tx);
        let started = Instant::now();
        let spawned = Command::new(&config.bootstrap)
            .env_clear()
            .envs(config.environment.iter().map(|(k, v)| (k, v)))
            .current_dir(&config.code_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // Its own process group, so that killing it kills what it started too, as
            // Lambda's sandbox does: an orphan would keep its Runtime API request open.
            .process_group(0)
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                logs.note(format!(
                    "{label}: cannot start `{}`: {e}{}",
                    config.bootstrap.display(),
                    if e.raw_os_error() == Some(8) {
                        " (built for another architecture? the local environment runs zips built for this machine)"
                    } else {
                        ""
                    }
                ));
                if pause(&mut shutdown, backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        starts.fetch_add(1, Ordering::Relaxed);
        if let Some(out) = child.stdout.take() {
            pumps.push(tokio::spawn(pump(out, label.clone(), logs.clone())));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(tokio::spawn(pump(err, label.clone(), logs.clone())));
        }
        pumps.retain(|p| !p.is_finished());
        let stopping;
        let mut over_memory = None;
        let watch_memory = super::memory::exceeded(child.id(), config.memory_limit_mb);
        let status = tokio::select! {
            status = child.wait() => { stopping = false; status }
            Some(()) = kill_rx.recv() => {
                stopping = false;
                kill_group(&mut child).await
            }
            used = watch_memory => {
                stopping = false;
                over_memory = Some(used);
                kill_group(&mut child).await
            }
            () = super::stop_requested(&mut shutdown) => {
                stopping = true;
                kill_group(&mut child).await
            }
        };
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|e| format!("status unknown: {e}"));
        if stopping {
            api.fail_in_flight(Failure::Shutdown);
            break;
        }
        if let (Some(used), Some(limit_mb)) = (over_memory, config.memory_limit_mb) {
            api.fail_in_flight(Failure::OutOfMemory { used, limit_mb });
            logs.note(format!(
                "{label}: process killed: it used {} MiB, over the function's MemorySize of {limit_mb} MB (Lambda stops a sandbox at its memory limit); starting it again",
                used / super::memory::MIB
            ));
        } else {
            api.fail_in_flight(Failure::Exited {
                status: status.clone(),
            });
            logs.note(format!(
                "{label}: process ended ({status}); starting it again"
            ));
        }
        if started.elapsed() < QUICK_EXIT {
            if pause(&mut shutdown, backoff).await {
                break;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else {
            backoff = FIRST_BACKOFF;
        }
    }
    api.fail_in_flight(Failure::Shutdown);
    // Whatever the processes printed last is still written.
    for p in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
}

/// Kills the process and everything in its process group, then reaps it.
async fn kill_group(
    child: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    match child.id().and_then(|pid| i32::try_from(pid).ok()) {
        Some(pid) => {
            let group = nix::unistd::Pid::from_raw(pid);
            if nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).is_err() {
                let _ = child.start_kill();
            }
        }
        None => {
            let _ = child.start_kill();
        }
    }
    child.wait().await
}

/// Sleeps `wait`; `true` when the runner stops meanwhile.
async fn pause(shutdown: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        () = sleep(wait) => {}
        () = super::stop_requested(shutdown) => return true,
    }
    let stop = *shutdown.borrow();
    stop
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &std::path::Path, body: &str) -> PathBuf {
        let path = dir.join("bootstrap");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn config(dir: &std::path::Path, bootstrap: PathBuf) -> InstanceConfig {
        InstanceConfig {
            label: "fn#1".into(),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:fn".into(),
            bootstrap,
            code_dir: dir.to_path_buf(),
            environment: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
            init_limit: Duration::from_secs(1),
            memory_limit_mb: None,
        }
    }

    async fn start(dir: &std::path::Path, body: &str) -> (Instance, watch::Sender<bool>, PathBuf) {
        start_with(dir, body, None).await
    }

    async fn start_with(
        dir: &std::path::Path,
        body: &str,
        memory_limit_mb: Option<u32>,
    ) -> (Instance, watch::Sender<bool>, PathBuf) {
        let bootstrap = script(dir, body);
        let log = dir.join("log");
        let logs = LogSink::only_file(&log).unwrap();
        let (stop, shutdown) = watch::channel(false);
        let config = InstanceConfig {
            memory_limit_mb,
            ..config(dir, bootstrap)
        };
        let instance = Instance::start(config, logs, shutdown).await.unwrap();
        (instance, stop, log)
    }

    async fn wait_for_starts(instance: &Instance, starts: u64) {
        let until = Instant::now() + Duration::from_secs(5);
        while instance.starts() < starts && Instant::now() < until {
            sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(instance.starts(), starts);
    }

    fn have_curl() -> bool {
        std::process::Command::new("curl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Asks for one event, prints its headers, answers with the event's body reversed
    /// through `tr` (upper case), then asks again.
    const ECHO_UPPER: &str = r#"
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  curl -s -D headers -o event "$api/invocation/next" || exit 1
  id=$(grep -i '^lambda-runtime-aws-request-id:' headers | cut -d' ' -f2 | tr -d '\r')
  grep -i '^lambda-runtime-' headers | tr -d '\r' | sort
  tr a-z A-Z < event > answer
  curl -s -o /dev/null -X POST --data-binary @answer "$api/invocation/$id/response"
done"#;

    #[test]
    fn request_ids_look_like_uuid_v4() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert!(matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
    }

    #[tokio::test]
    async fn a_process_that_never_takes_the_event_is_killed_and_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let (instance, stop, log) = start(dir.path(), "echo started; exec sleep 600").await;
        let started = Instant::now();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            instance.invoke(Bytes::from_static(b"{}"), Duration::from_secs(1), None),
        )
        .await
        .unwrap();
        let limit = Duration::from_secs(1);
        assert_eq!(result, Err(Failure::NotStarted { waited: limit }));
        assert!(started.elapsed() >= limit);
        // The killed process is replaced.
        wait_for_starts(&instance, 2).await;
        stop.send(true).unwrap();
        instance.stopped().await;
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("[fn#1] started"), "{text}");
        assert!(text.contains("local: fn#1: process ended"), "{text}");
    }

    #[tokio::test]
    async fn events_go_through_the_runtime_api_with_lambda_headers_and_the_process_stays_warm() {
        if !have_curl() {
            eprintln!("skipped: no curl");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (instance, stop, log) = start(dir.path(), ECHO_UPPER).await;
        for body in [r#"{"a":"x"}"#, r#"{"b":"y"}"#] {
            let result = instance
                .invoke(Bytes::from(body), Duration::from_secs(5), None)
                .await;
            let expected = runtime_api::Outcome::Response(Bytes::from(body.to_uppercase()));
            assert_eq!(
                result,
                Ok(expected),
                "{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert_eq!(
            instance.starts(),
            1,
            "one warm process for both invocations"
        );
        stop.send(true).unwrap();
        instance.stopped().await;
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("[fn#1] lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:fn"),
            "{text}"
        );
        assert!(
            text.contains("[fn#1] lambda-runtime-deadline-ms: "),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_invocation_past_the_timeout_fails_and_the_process_is_replaced() {
        if !have_curl() {
            eprintln!("skipped: no curl");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let body = r#"curl -s -o /dev/null "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next"; exec sleep 600"#;
        let (instance, stop, log) = start(dir.path(), body).await;
        let started = Instant::now();
        let result = instance
            .invoke(Bytes::from_static(b"{}"), Duration::from_secs(1), None)
            .await;
        assert_eq!(
            result,
            Err(Failure::TimedOut {
                after: Duration::from_secs(1)
            })
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        wait_for_starts(&instance, 2).await;
        stop.send(true).unwrap();
        instance.stopped().await;
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("timed out after 1 s"), "{text}");
    }

    /// A process that started others (a shell bootstrap, a runtime with workers) is killed
    /// with them: an orphan would outlive the runner and hold its Runtime API request open,
    /// so that the runner's shutdown waited for it for good.
    #[tokio::test]
    async fn a_killed_process_takes_what_it_started_with_it() {
        if !have_curl() {
            eprintln!("skipped: no curl");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let body = format!(
            r#"sleep 600 & echo $! >> {}
curl -s -o /dev/null "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next"; exec sleep 600"#,
            pids.display()
        );
        let (instance, stop, _log) = start(dir.path(), &body).await;
        let result = instance
            .invoke(Bytes::from_static(b"{}"), Duration::from_secs(1), None)
            .await;
        assert!(
            matches!(result, Err(Failure::TimedOut { .. })),
            "{result:?}"
        );
        wait_for_starts(&instance, 2).await;
        // The second process waits on `next` in a curl of its own when the runner stops.
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), instance.stopped())
            .await
            .expect("the runner stops although its process had started others");
        let started = std::fs::read_to_string(&pids).unwrap();
        let alive = |pid: &str| {
            std::path::Path::new(&format!("/proc/{pid}")).exists()
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z ")
        };
        for pid in started.split_whitespace() {
            // A SIGKILL is delivered at once, but a loaded machine may take a moment to
            // end the process.
            let since = std::time::Instant::now();
            while alive(pid) && since.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(
                !alive(pid),
                "process {pid}, started by a killed process, still runs"
            );
        }
    }

    #[tokio::test]
    async fn a_chaos_kill_fails_the_invocation_in_flight() {
        if !have_curl() {
            eprintln!("skipped: no curl");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let body = r#"curl -s -o /dev/null "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next"; exec sleep 600"#;
        let (instance, stop, _log) = start(dir.path(), body).await;
        let result = instance
            .invoke(
                Bytes::from_static(b"{}"),
                Duration::from_secs(30),
                Some(Duration::from_millis(100)),
            )
            .await;
        assert!(matches!(result, Err(Failure::Exited { .. })), "{result:?}");
        wait_for_starts(&instance, 2).await;
        stop.send(true).unwrap();
        instance.stopped().await;
    }

    #[tokio::test]
    async fn a_process_over_its_memory_size_is_killed_and_its_invocation_fails() {
        if !have_curl() {
            eprintln!("skipped: no curl");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // Takes the event, then holds 96 MiB (written, so resident) in a 64 MB function.
        let body = r#"curl -s -o /dev/null "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next"
exec python3 -c "b = b'x' * (96 * 1024 * 1024); import time; time.sleep(600)""#;
        let (instance, stop, log) = start_with(dir.path(), body, Some(64)).await;
        let result = instance
            .invoke(Bytes::from_static(b"{}"), Duration::from_secs(30), None)
            .await;
        match &result {
            Err(Failure::OutOfMemory { used, limit_mb }) => {
                assert_eq!(*limit_mb, 64);
                assert!(*used > 64 * super::super::memory::MIB, "{used}");
            }
            other => panic!(
                "expected the out-of-memory kill, got {other:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
        let message = result.unwrap_err().to_string();
        assert!(
            message.starts_with("Runtime exited with error: signal: killed"),
            "{message}"
        );
        wait_for_starts(&instance, 2).await;
        stop.send(true).unwrap();
        instance.stopped().await;
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("over the function's MemorySize of 64 MB"),
            "{text}"
        );
    }
}
