//! A function's invocations that do not come from a queue: asynchronous ones (`Event`:
//! schedule ticks, the splitter's hand-off to itself, runs started by hand) and
//! synchronous ones (`RequestResponse`).
//!
//! They wait in one queue per function and are run by workers, as many as the function's
//! reserved concurrency (at least one), each with an instance of its own started on its
//! first invocation and kept warm. A failed asynchronous invocation is retried as Lambda
//! does (twice, after one and then two minutes, by default), then sent to the function's
//! dead-letter queue when it has one.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot, watch, Mutex};
use tokio::task::JoinHandle;

use super::code::Code;
use super::discover::{arn_parts, FunctionSpec};
use super::instance::{Instance, InstanceConfig};
use super::logs::LogSink;
use super::runtime_api::{Failure, InvokeResult, Outcome};
use super::stats::FunctionStats;

/// Lambda's retries of a failed asynchronous invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncRetry {
    /// `MaximumRetryAttempts` (Lambda's default is 2).
    pub max_retries: u32,
    /// The wait before retry 1, 2, ...; the last one repeats.
    pub delays: Vec<Duration>,
}

impl Default for AsyncRetry {
    fn default() -> AsyncRetry {
        AsyncRetry {
            max_retries: 2,
            delays: vec![Duration::from_secs(60), Duration::from_secs(120)],
        }
    }
}

impl AsyncRetry {
    fn delay(&self, retry: u32) -> Duration {
        let index = usize::try_from(retry.saturating_sub(1)).unwrap_or(usize::MAX);
        self.delays
            .get(index)
            .or(self.delays.last())
            .copied()
            .unwrap_or(Duration::ZERO)
    }
}

/// Starts instances of one function.
pub struct Launcher {
    pub spec: Arc<FunctionSpec>,
    /// The name without the environment's prefix, for log lines.
    pub short_name: String,
    pub code: Code,
    /// The process environment, but for `AWS_LAMBDA_RUNTIME_API`.
    pub environment: Vec<(String, String)>,
    pub init_limit: Duration,
    pub logs: LogSink,
    pub shutdown: watch::Receiver<bool>,
}

impl Launcher {
    /// Instance number `index` (from 1) of the function.
    pub async fn instance(&self, index: usize) -> std::io::Result<Instance> {
        let label = format!("{}#{index}", self.short_name);
        let mut environment = self.environment.clone();
        environment.push((
            "AWS_LAMBDA_LOG_STREAM_NAME".into(),
            format!("local/{}", label.replace('#', "/")),
        ));
        Instance::start(
            InstanceConfig {
                label,
                function_arn: self.spec.arn.clone(),
                bootstrap: self.code.bootstrap.clone(),
                code_dir: self.code.dir.clone(),
                environment,
                init_limit: self.init_limit,
                memory_limit_mb: Some(self.spec.memory_mb),
            },
            self.logs.clone(),
            self.shutdown.clone(),
        )
        .await
    }
}

enum JobKind {
    Event { attempt: u32 },
    Request(oneshot::Sender<InvokeResult>),
}

struct Job {
    payload: Bytes,
    kind: JobKind,
}

/// A function's queue of direct invocations.
pub struct FunctionRuntime {
    pub spec: Arc<FunctionSpec>,
    pub stats: Arc<FunctionStats>,
    jobs: mpsc::UnboundedSender<Job>,
}

impl FunctionRuntime {
    /// Starts `workers` workers numbered from `first_index`; returns the runtime and their
    /// tasks.
    pub fn start(
        launcher: Arc<Launcher>,
        workers: usize,
        first_index: usize,
        retry: AsyncRetry,
        sqs: aws_sdk_sqs::Client,
        stats: Arc<FunctionStats>,
    ) -> (FunctionRuntime, Vec<JoinHandle<()>>) {
        let (jobs, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        let shared = Arc::new(WorkerShared {
            launcher: launcher.clone(),
            jobs: receiver,
            requeue: jobs.clone(),
            retry,
            sqs,
            stats: stats.clone(),
        });
        let tasks = (0..workers.max(1))
            .map(|i| tokio::spawn(worker(shared.clone(), first_index + i)))
            .collect();
        (
            FunctionRuntime {
                spec: launcher.spec.clone(),
                stats,
                jobs,
            },
            tasks,
        )
    }

    /// Queues an asynchronous invocation (`InvocationType: Event`).
    pub fn invoke_event(&self, payload: Bytes) -> Result<(), Failure> {
        self.jobs
            .send(Job {
                payload,
                kind: JobKind::Event { attempt: 0 },
            })
            .map_err(|_| Failure::Shutdown)
    }

    /// Runs a synchronous invocation (`RequestResponse`) and waits for its outcome.
    pub async fn invoke_request(&self, payload: Bytes) -> InvokeResult {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job {
                payload,
                kind: JobKind::Request(tx),
            })
            .map_err(|_| Failure::Shutdown)?;
        rx.await.unwrap_or(Err(Failure::Shutdown))
    }
}

struct WorkerShared {
    launcher: Arc<Launcher>,
    jobs: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    requeue: mpsc::UnboundedSender<Job>,
    retry: AsyncRetry,
    sqs: aws_sdk_sqs::Client,
    stats: Arc<FunctionStats>,
}

async fn worker(shared: Arc<WorkerShared>, index: usize) {
    let launcher = &shared.launcher;
    let mut shutdown = launcher.shutdown.clone();
    let mut instance: Option<Instance> = None;
    loop {
        let job = tokio::select! {
            job = async { shared.jobs.lock().await.recv().await } => job,
            () = super::stop_requested(&mut shutdown) => None,
        };
        let Some(job) = job else { break };
        if instance.is_none() {
            match launcher.instance(index).await {
                Ok(started) => instance = Some(started),
                Err(e) => launcher.logs.note(format!(
                    "{}#{index}: cannot open its Runtime API: {e}",
                    launcher.short_name
                )),
            }
        }
        shared.stats.invocations.fetch_add(1, Ordering::Relaxed);
        let result = match &instance {
            Some(instance) => {
                instance
                    .invoke(job.payload.clone(), launcher.spec.timeout, None)
                    .await
            }
            None => Err(Failure::Exited {
                status: "never started".into(),
            }),
        };
        shared.stats.record(&result);
        match job.kind {
            JobKind::Request(answer) => {
                let _ = answer.send(result);
            }
            JobKind::Event { attempt } => {
                event_done(&shared, index, job.payload, attempt, &result, &shutdown).await;
            }
        }
    }
    if let Some(instance) = instance {
        instance.stopped().await;
    }
}

/// Retries or dead-letters a failed asynchronous invocation.
async fn event_done(
    shared: &Arc<WorkerShared>,
    index: usize,
    payload: Bytes,
    attempt: u32,
    result: &InvokeResult,
    shutdown: &watch::Receiver<bool>,
) {
    let launcher = &shared.launcher;
    let label = format!("{}#{index}", launcher.short_name);
    let reason = match result {
        Ok(Outcome::Response(_)) | Err(Failure::Shutdown) => return,
        Ok(Outcome::Error { error_type, body }) => {
            format!("{error_type}: {}", String::from_utf8_lossy(body))
        }
        Err(failure) => failure.to_string(),
    };
    if attempt < shared.retry.max_retries {
        let retry = attempt + 1;
        let wait = shared.retry.delay(retry);
        launcher.logs.note(format!(
            "{label}: asynchronous invocation failed ({reason}); retry {retry} of {} in {} s",
            shared.retry.max_retries,
            wait.as_secs()
        ));
        shared.stats.async_retries.fetch_add(1, Ordering::Relaxed);
        let requeue = shared.requeue.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    let _ = requeue.send(Job { payload, kind: JobKind::Event { attempt: retry } });
                }
                () = super::stop_requested(&mut shutdown) => {}
            }
        });
        return;
    }
    let Some(target) = launcher.spec.dead_letter_target.as_deref() else {
        launcher.logs.note(format!(
            "{label}: asynchronous invocation failed for good after {} attempt(s) ({reason}); \
             the function has no dead-letter queue, the event is dropped: {}",
            attempt + 1,
            String::from_utf8_lossy(&payload)
        ));
        return;
    };
    match dead_letter(&shared.sqs, target, &payload, &reason).await {
        Ok(()) => {
            shared.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            launcher.logs.note(format!(
                "{label}: asynchronous invocation failed for good after {} attempt(s) ({reason}); \
                 the event is on `{target}`",
                attempt + 1
            ));
        }
        Err(e) => launcher.logs.note(format!(
            "{label}: asynchronous invocation failed for good ({reason}) and cannot be sent to \
             `{target}` ({e}); the event is dropped: {}",
            String::from_utf8_lossy(&payload)
        )),
    }
}

/// Sends a failed event to a dead-letter queue, with the attributes Lambda adds.
async fn dead_letter(
    sqs: &aws_sdk_sqs::Client,
    queue_arn: &str,
    payload: &[u8],
    reason: &str,
) -> Result<(), String> {
    use aws_sdk_sqs::types::MessageAttributeValue;
    let (_, account, name) = arn_parts(queue_arn).ok_or("not an SQS queue ARN")?;
    let url = sqs
        .get_queue_url()
        .queue_name(name)
        .queue_owner_aws_account_id(account)
        .send()
        .await
        .map_err(|e| super::error_chain(&e))?
        .queue_url()
        .unwrap_or_default()
        .to_string();
    let attribute = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .map_err(|e| e.to_string())
    };
    sqs.send_message()
        .queue_url(url)
        .message_body(String::from_utf8_lossy(payload))
        .message_attributes("RequestID", attribute(&super::instance::request_id())?)
        .message_attributes("ErrorCode", attribute("200")?)
        .message_attributes("ErrorMessage", attribute(reason)?)
        .send()
        .await
        .map_err(|e| super::error_chain(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_as_lambda_does_and_the_last_wait_repeats() {
        let retry = AsyncRetry::default();
        assert_eq!(retry.delay(1), Duration::from_secs(60));
        assert_eq!(retry.delay(2), Duration::from_secs(120));
        assert_eq!(retry.delay(3), Duration::from_secs(120));
    }
}
