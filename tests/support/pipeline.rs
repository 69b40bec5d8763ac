//! One microprocess, whole, on one emulator: the ledger table, the queue and its
//! dead-letter queue, the results bucket, the demo service (a real HTTP service
//! implementing the contract), a forwarder and splitters over them. The handlers are
//! called in process, as Lambda would: the splitter's hand-offs are recorded
//! ([`RecordingHandoff`]) and followed by the test ([`follow`]), and the forwarder gets
//! batches received from the queue and settled as the event source mapping would
//! ([`Pipeline::step`], [`Pipeline::drain`]).
//!
//! What the splitters queue is recorded on the way ([`RecordingQueue`],
//! [`Pipeline::queued`]): receiving thousands of messages back from the emulator takes
//! minutes. Dead letters pulled off the dead-letter queue are kept ([`Pipeline::parked`])
//! until they are sent back ([`Pipeline::redrive`]), so an audit sees them.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_lambda_events::sqs::SqsBatchResponse;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use chrono::Utc;
use demo_service::{Chaos, Config, RunningService};
use forwarder::Forwarder;
use lambda_runtime::{Context, LambdaEvent};
use microprocess_shared::ledger::{
    ChildOutcome, Layout, Ledger, Overlap, Recorded, RetryPolicy, RunRecord,
};
use microprocess_shared::ledger_keys::{ChildState, RunState};
use microprocess_shared::queue_message::QueueMessage;
use microprocess_shared::run_id::RunId;
use microprocess_shared::settings::{
    CommonSettings, ForwarderSettings, ResultStorage, SplitterSettings,
};
use serde_json::{json, Value};
use splitter::enqueue::{Entry, FailedEntry};
use splitter::{
    handle, Deadline, EnqueuePolicy, Outcome, Queue, RecordingHandoff, Splitter, SqsQueue, Tuning,
};

use crate::audit::{self, Audit};
use crate::counter::RequestCounter;
use crate::ledger_table::create_ledger_table;
use crate::mapping::{depth, receive, settle};
use crate::moto::{sdk_config, MotoServer};

/// The microprocess every pipeline runs.
pub const NAME: &str = "credit-scores";
/// The signing secret the service and the kit share.
pub const SECRET: &str = "pipeline-test-secret";
/// The run a tick at 2026-11-01T02:00:00Z starts ([`scheduled_tick`]).
pub const SCHEDULED_RUN: &str = "2026-11-01T02-00-00Z";
/// Most invocations [`follow`] follows through hand-offs.
const MAX_INVOCATIONS: usize = 500;
/// Most messages one forwarder batch takes (the event source mapping's batch size).
pub const BATCH_SIZE: i32 = 10;

pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a pipeline is made of.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Items in the demo service's split.
    pub items: u64,
    pub chaos: Chaos,
    /// The queue's visibility timeout, in seconds: how long a message taken by a batch
    /// that never settled stays away.
    pub visibility_timeout: u32,
    /// `maxReceiveCount` of the queue's redrive policy to the dead-letter queue (the
    /// microprocess template sets `max_attempts + 1`); `None`: no redrive policy.
    pub max_receive_count: Option<u32>,
    pub forwarder: ForwarderOptions,
    /// The keys the demo service accepts; `None`: [`SECRET`].
    pub service_secrets: Option<Vec<String>>,
    /// Callback completion with this lease: the forwarder sends the callback URL of a
    /// callback function served on loopback as the local runner serves a function URL,
    /// and the demo service answers `202` and reports.
    pub callback_lease: Option<Duration>,
    /// The demo service's long tasks: how long each takes, and its heartbeat.
    pub long_task: Option<(Duration, Duration)>,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            items: 100,
            chaos: Chaos::default(),
            visibility_timeout: 30,
            max_receive_count: None,
            forwarder: ForwarderOptions::default(),
            service_secrets: None,
            callback_lease: None,
            long_task: None,
        }
    }
}

/// How a forwarder is configured and wired.
#[derive(Debug, Clone)]
pub struct ForwarderOptions {
    pub max_attempts: u32,
    pub process_timeout_seconds: u32,
    pub storage: &'static str,
    pub backoff_base_millis: u64,
    /// The signing secret it signs with.
    pub secret: String,
    /// The HTTP client of its AWS clients (SQS, DynamoDB, S3), such as a
    /// [`crate::faults::FaultyHttp`]; with one, the SDK's own retries are off, so what is
    /// retried is retried by the forwarder and the ledger.
    pub http: Option<SharedHttpClient>,
    /// The ledger's retry policy for throttled and conflicting writes.
    pub ledger_retry: Option<RetryPolicy>,
    /// Cap on process calls a second across `MAX_CONCURRENCY` (2) forwarders; 0 for none.
    pub rate_limit_per_second: u32,
    /// The largest 2xx answer read (the contract's result limit).
    pub result_limit: usize,
    /// Callback completion: the lease, and the callback's URL.
    pub lease: Option<Duration>,
    pub callback_url: Option<String>,
    /// Failed children past this share of the total cancel the run.
    pub tolerated_failure_percent: Option<u32>,
}

impl Default for ForwarderOptions {
    fn default() -> Self {
        ForwarderOptions {
            max_attempts: 3,
            process_timeout_seconds: 5,
            storage: "ledger",
            backoff_base_millis: 1,
            secret: SECRET.to_owned(),
            http: None,
            ledger_retry: None,
            rate_limit_per_second: 0,
            result_limit: microprocess_shared::service_client::DEFAULT_RESULT_LIMIT,
            lease: None,
            callback_url: None,
            tolerated_failure_percent: None,
        }
    }
}

pub struct Pipeline {
    pub moto: MotoServer,
    pub config: SdkConfig,
    /// For setting up and looking (the tests' own sends, the dead-letter queue, queue
    /// depths): not counted.
    pub sqs: aws_sdk_sqs::Client,
    /// The event source mapping's receives and deletes, counted.
    pub mapping_sqs: aws_sdk_sqs::Client,
    pub mapping_requests: RequestCounter,
    /// Every request the forwarders send themselves (SQS, DynamoDB, S3).
    pub forwarder_requests: RequestCounter,
    pub ledger: Ledger,
    pub table: String,
    pub queue_url: String,
    pub dlq_url: String,
    pub service: RunningService,
    pub forwarder: Forwarder,
    /// Callback completion: the callback function's handler, served at `callback_url`.
    pub callback: Option<Arc<Forwarder>>,
    pub callback_url: Option<String>,
    /// Bodies of every message the recorded queues accepted, in order.
    sent: Arc<Mutex<Vec<String>>>,
    /// How many of them [`Pipeline::queued`] returned already.
    taken: Mutex<usize>,
    /// Dead letters pulled off the dead-letter queue and not sent back: (body, reason).
    parked: Mutex<Vec<(String, String)>>,
}

impl Pipeline {
    /// A pipeline on the kit's emulator ([`MotoServer::start`]).
    pub async fn start(setup: Setup) -> Pipeline {
        Pipeline::on(MotoServer::start(), setup).await
    }

    /// A pipeline on `moto`.
    pub async fn on(moto: MotoServer, setup: Setup) -> Pipeline {
        let config = sdk_config(moto.endpoint()).await;
        let table = create_ledger_table(&config).await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{NAME}-dlq"))
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        let mut create = sqs.create_queue().queue_name(NAME).attributes(
            QueueAttributeName::VisibilityTimeout,
            setup.visibility_timeout.to_string(),
        );
        if let Some(count) = setup.max_receive_count {
            let arn = sqs
                .get_queue_attributes()
                .queue_url(&dlq_url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap()
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                .expect("the dead-letter queue's ARN");
            create = create.attributes(
                QueueAttributeName::RedrivePolicy,
                json!({"deadLetterTargetArn": arn, "maxReceiveCount": count}).to_string(),
            );
        }
        let queue_url = create
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        let s3 = aws_sdk_s3::Client::new(&config);
        s3.create_bucket().bucket("results").send().await.unwrap();
        let service = demo_service::DemoService::start(Config {
            secrets: setup
                .service_secrets
                .clone()
                .unwrap_or_else(|| vec![SECRET.to_string()]),
            ..match setup.long_task {
                Some((task, heartbeat)) => Config::new(SECRET).with_long_task(task, heartbeat),
                None => Config::new(SECRET),
            }
            .with_items(setup.items)
            .with_chaos(setup.chaos.clone())
        })
        .await
        .unwrap();
        let mapping_requests = RequestCounter::default();
        let mapping_sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&config)
                .interceptor(mapping_requests.clone())
                .build(),
        );
        let forwarder_requests = RequestCounter::default();
        let mut options = setup.forwarder.clone();
        let mut callback = None;
        if let Some(lease) = setup.callback_lease {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/report", listener.local_addr().unwrap());
            let settings = forwarder_settings(
                &table,
                &queue_url,
                &dlq_url,
                &service.queue_url(),
                &ForwarderOptions {
                    lease: Some(lease),
                    ..options.clone()
                },
            );
            let handler = Arc::new(new_forwarder(
                &config,
                settings,
                &forwarder_requests,
                &options,
            ));
            serve_callback(listener, handler.clone());
            callback = Some((handler, url.clone()));
            options.lease = Some(lease);
            options.callback_url = Some(url);
        }
        let settings =
            forwarder_settings(&table, &queue_url, &dlq_url, &service.queue_url(), &options);
        let forwarder = new_forwarder(&config, settings, &forwarder_requests, &options);
        let (callback, callback_url) = match callback {
            Some((handler, url)) => (Some(handler), Some(url)),
            None => (None, None),
        };
        Pipeline {
            callback,
            callback_url,
            ledger: Ledger::from_config(&config, &table),
            forwarder_requests,
            mapping_sqs,
            mapping_requests,
            forwarder,
            moto,
            config,
            sqs,
            table,
            queue_url,
            dlq_url,
            service,
            sent: Arc::default(),
            taken: Mutex::new(0),
            parked: Mutex::new(Vec::new()),
        }
    }

    // ---- the forwarder ----------------------------------------------------------------

    /// Another forwarder over this pipeline, its requests counted in `forwarder_requests`.
    pub fn build_forwarder(&self, options: &ForwarderOptions) -> Forwarder {
        let settings = forwarder_settings(
            &self.table,
            &self.queue_url,
            &self.dlq_url,
            &self.service.queue_url(),
            options,
        );
        new_forwarder(&self.config, settings, &self.forwarder_requests, options)
    }

    /// A sealed run of `total` children, their messages on the queue (the splitter's part).
    pub async fn run_with_children(&self, run: &str, total: u64) -> RunId {
        let run = RunId::parse(run).unwrap();
        self.ledger
            .start_run(
                NAME,
                &run,
                Overlap::Allow,
                30,
                Layout::new(1, 2),
                Utc::now(),
            )
            .await
            .unwrap();
        for seq in 0..total {
            self.send_process(&run, seq).await;
        }
        self.ledger
            .seal(NAME, &run, total, Utc::now())
            .await
            .unwrap();
        run
    }

    /// Records children `0..total` of `run` `SUCCEEDED` in one attempt, as forwarders
    /// that called the service would, without any call.
    pub async fn count_succeeded(&self, run: &RunId, total: u64) -> Recorded {
        let outcomes: Vec<ChildOutcome> = (0..total)
            .map(|seq| ChildOutcome {
                seq,
                item: demo_service::paging::item_id(seq),
                state: ChildState::Succeeded,
                attempts: 1,
                result: None,
                reason: None,
            })
            .collect();
        self.ledger
            .record_children(NAME, run, &outcomes, Utc::now())
            .await
            .unwrap()
    }

    /// Puts the process message of `seq` on the queue (again, if it was there before).
    pub async fn send_process(&self, run: &RunId, seq: u64) {
        let body = QueueMessage::Process {
            run: run.clone(),
            seq,
            item: demo_service::paging::item_id(seq),
            payload: None,
        }
        .to_body();
        self.send(&body).await;
    }

    /// Puts `body` on the queue.
    pub async fn send(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// One batch through the forwarder, settled as the event source mapping would.
    pub async fn step(&self, max: i32) -> Option<SqsBatchResponse> {
        self.step_with(&self.forwarder, max).await
    }

    /// [`Pipeline::step`] with another forwarder.
    pub async fn step_with(&self, forwarder: &Forwarder, max: i32) -> Option<SqsBatchResponse> {
        let event = receive(&self.mapping_sqs, &self.queue_url, max, 0).await;
        if event.records.is_empty() {
            return None;
        }
        let response = forwarder
            .handle(LambdaEvent::new(event.clone(), context()))
            .await
            .unwrap();
        settle(&self.mapping_sqs, &self.queue_url, &event, &response).await;
        Some(response)
    }

    /// Batches until nothing is left on the queue, visible or in flight (retried messages
    /// come back after their backoff); panics after `limit`.
    pub async fn drain(&self, limit: Duration) {
        self.drain_with(&self.forwarder, 1, limit).await;
    }

    /// [`Pipeline::drain`] with `forwarder`, `workers` batches at a time (the mapping's
    /// concurrency).
    pub async fn drain_with(&self, forwarder: &Forwarder, workers: usize, limit: Duration) {
        let started = Instant::now();
        join_all((0..workers).map(|_| async move {
            loop {
                if self.step_with(forwarder, BATCH_SIZE).await.is_some() {
                    continue;
                }
                let left = depth(&self.sqs, &self.queue_url).await;
                if left == (0, 0) {
                    return;
                }
                assert!(
                    started.elapsed() < limit,
                    "the queue did not drain within {limit:?}: {left:?} (visible, in flight) left"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }))
        .await;
    }

    /// Messages sent with a delay that have not become visible yet (lease checks).
    pub async fn delayed(&self) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .expect("queue attributes");
        out.attributes()
            .and_then(|m| m.get(&A::ApproximateNumberOfMessagesDelayed))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Takes every message off the dead-letter queue and keeps it ([`Pipeline::parked`]);
    /// returns those taken now: (body, reason).
    pub async fn dead_letters(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            if got.messages().is_empty() {
                break;
            }
            for m in got.messages() {
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get("microprocess-failure-reason"))
                    .and_then(|v| v.string_value())
                    .unwrap_or_default()
                    .to_string();
                out.push((m.body().unwrap_or_default().to_string(), reason));
                self.sqs
                    .delete_message()
                    .queue_url(&self.dlq_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        self.parked.lock().unwrap().extend(out.iter().cloned());
        out
    }

    /// Every dead letter taken off the dead-letter queue and not sent back yet.
    pub async fn parked(&self) -> Vec<(String, String)> {
        self.dead_letters().await;
        self.parked.lock().unwrap().clone()
    }

    /// Sends every dead letter back to the queue, as `microprocess redrive` does on the
    /// emulator (receive and resend); returns how many.
    pub async fn redrive(&self) -> usize {
        self.dead_letters().await;
        let parked = std::mem::take(&mut *self.parked.lock().unwrap());
        for (body, _) in &parked {
            self.send(body).await;
        }
        parked.len()
    }

    // ---- the splitter -----------------------------------------------------------------

    /// The splitter's environment, with `overrides`.
    pub fn settings(&self, overrides: &[(&str, &str)]) -> SplitterSettings {
        let base = SplitterSettings {
            common: CommonSettings {
                microprocess_name: NAME.to_owned(),
                ledger_table: self.table.clone(),
                queue_url: self.queue_url.clone(),
                queue_base_url: self.service.queue_url(),
                signing_secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:signing"
                    .into(),
            },
            split_path: format!("/microprocesses/{NAME}/split"),
            dead_letter_queue_url: self.dlq_url.clone(),
            split_page_size: 100,
            split_page_max_bytes: microprocess_shared::service_client::max_split_page_bytes(100),
            split_max_attempts: 3,
            overlap: Overlap::Skip,
            retention_days: 30,
            counter_shards: 1,
            // Two keys: every pipeline test reads a run spread over more than one.
            ledger_partitions: 2,
            alarm_topic_arn: None,
            expected_duration: None,
        };
        // Overrides by variable name, read back as the splitter reads its environment.
        let mut vars: BTreeMap<&str, String> = base.to_environment().into_iter().collect();
        for (name, value) in overrides {
            vars.insert(name, (*value).to_owned());
        }
        SplitterSettings::from_lookup(|k| vars.get(k).cloned()).unwrap()
    }

    /// A splitter over the emulator and the demo service whose hand-offs and queued
    /// messages are recorded.
    pub fn splitter(
        &self,
        settings: SplitterSettings,
        tuning: Tuning,
    ) -> (Splitter, Arc<RecordingHandoff>) {
        let mut splitter =
            Splitter::new(settings, &self.config, SECRET.to_string(), "splitter").unwrap();
        let handoff = Arc::new(RecordingHandoff::default());
        splitter.handoff = handoff.clone();
        splitter.tuning = tuning;
        splitter.queue = self.recorded(splitter.queue.clone());
        (splitter, handoff)
    }

    /// `queue`, its accepted messages recorded.
    pub fn recorded(&self, queue: Arc<dyn Queue>) -> Arc<dyn Queue> {
        Arc::new(RecordingQueue {
            inner: queue,
            sent: self.sent.clone(),
        })
    }

    /// The queue as the splitter sends to it, without the recording.
    pub fn sqs_queue(&self) -> SqsQueue {
        SqsQueue::new(self.sqs.clone(), self.queue_url.clone())
    }

    pub fn default_splitter(&self) -> (Splitter, Arc<RecordingHandoff>) {
        self.splitter(self.settings(&[]), quick())
    }

    /// The messages the recorded queues accepted since the last call.
    pub fn queued(&self) -> Vec<QueueMessage> {
        let sent = self.sent.lock().unwrap();
        let mut taken = self.taken.lock().unwrap();
        let new = sent[*taken..]
            .iter()
            .map(|body| QueueMessage::parse(body).unwrap())
            .collect();
        *taken = sent.len();
        new
    }

    /// Like [`Pipeline::queued`], when nothing took messages off the queue: checks that
    /// the queue holds what was recorded, plus up to `max_unrecorded` messages that calls
    /// cut short by a crash may have sent unrecorded. Also returns the queue's count.
    pub async fn queued_with_unrecorded(&self, max_unrecorded: u64) -> (Vec<QueueMessage>, u64) {
        let recorded = self.sent.lock().unwrap().len() as u64;
        let (visible, invisible) = depth(&self.sqs, &self.queue_url).await;
        assert_eq!(invisible, 0);
        assert!(
            (recorded..=recorded + max_unrecorded).contains(&visible),
            "the queue holds {visible} messages, {recorded} recorded as accepted"
        );
        (self.queued(), visible)
    }

    // ---- looking ----------------------------------------------------------------------

    /// The run as the ledger has it now.
    pub async fn record(&self, run: &RunId) -> RunRecord {
        self.ledger.run(NAME, run).await.unwrap().unwrap()
    }

    /// The run named `run`, if the ledger has it.
    pub async fn run(&self, run: &str) -> Option<RunRecord> {
        self.ledger
            .run(NAME, &RunId::parse(run).unwrap())
            .await
            .unwrap()
    }

    /// Every run of the microprocess, whatever its state.
    pub async fn all_runs(&self) -> Vec<RunRecord> {
        let mut runs = Vec::new();
        for state in RunState::ALL {
            runs.extend(self.ledger.runs_in_state(NAME, state).await.unwrap());
        }
        runs
    }

    /// Reduce calls the service saw for `run`.
    pub fn reduce_calls(&self, run: &RunId) -> u64 {
        self.service
            .stats()
            .run(NAME, run.as_str())
            .map_or(0, |r| r.reduce.calls)
    }

    /// Split calls the service saw for `run`.
    pub fn split_calls(&self, run: &str) -> u64 {
        self.service
            .stats()
            .run(NAME, run)
            .map_or(0, |r| r.split_calls)
    }

    /// The bookkeeping of `run`, split into `total` items: the ledger, the service and
    /// the dead letters taken so far compared ([`audit::check`]).
    /// What the emulator's limits did so far: `(denied, throttled, conflicted, retried)`,
    /// printed by every audit and asserted where it matters.
    pub fn limits(&self) -> EmulatorLimits {
        EmulatorLimits::of(&self.moto)
    }

    pub async fn audit(&self, label: &str, run: &RunId, total: u64) -> Audit {
        let limits = self.limits();
        eprintln!("{label}: emulator {limits}");
        assert_eq!(
            limits.denied,
            0,
            "{label}: the emulator denied requests: {:?}",
            self.moto.stats()["denied"]
        );
        let record = self.record(run).await;
        let children = self.ledger.children(NAME, run).await.unwrap();
        let stats = self.service.stats();
        let dead: Vec<QueueMessage> = self
            .parked()
            .await
            .iter()
            .filter_map(|(body, _)| QueueMessage::parse(body).ok())
            .collect();
        audit::check(audit::Evidence {
            label,
            total,
            run: &record,
            children: &children,
            service: stats.run(NAME, run.as_str()),
            dead_letters: &dead,
        })
    }
}

/// A forwarder with `settings`, wired as `options` says, its requests counted by
/// `counter`.
/// Serves `handler`'s callback on `listener` through the local runner's function URL
/// translation (request → function URL event → response), as the runner serves it.
fn serve_callback(listener: tokio::net::TcpListener, handler: Arc<Forwarder>) {
    use microprocess_kit::local::function_url;
    let invoke: function_url::Invoke = Arc::new(move |payload| {
        let handler = handler.clone();
        Box::pin(async move {
            let request: aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest =
                serde_json::from_slice(&payload).ok()?;
            let answer = handler.report(&request).await;
            serde_json::to_vec(&answer.into_response())
                .ok()
                .map(Into::into)
        })
    });
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:callback".to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, function_url::router(invoke, arn)).await;
    });
}

fn new_forwarder(
    config: &SdkConfig,
    settings: ForwarderSettings,
    counter: &RequestCounter,
    options: &ForwarderOptions,
) -> Forwarder {
    let table = settings.common.ledger_table.clone();
    let mut forwarder = Forwarder::new(settings, config, options.secret.clone()).unwrap();
    let (http, retry) = match &options.http {
        Some(http) => (Some(http.clone()), RetryConfig::disabled()),
        None => (None, RetryConfig::standard()),
    };
    let mut sqs = aws_sdk_sqs::config::Builder::from(config)
        .retry_config(retry.clone())
        .interceptor(counter.clone());
    sqs.set_http_client(http.clone());
    forwarder.sqs = aws_sdk_sqs::Client::from_conf(sqs.build());
    let mut s3 = aws_sdk_s3::config::Builder::from(config)
        .retry_config(retry.clone())
        .interceptor(counter.clone());
    s3.set_http_client(http.clone());
    forwarder.s3 = aws_sdk_s3::Client::from_conf(s3.build());
    let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(config)
        .retry_config(retry)
        .interceptor(counter.clone());
    dynamodb.set_http_client(http);
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(dynamodb.build());
    let ledger = Ledger::new(dynamodb, table);
    forwarder.ledger = match options.ledger_retry {
        Some(policy) => ledger.with_retry_policy(policy),
        None => ledger,
    };
    forwarder
}

/// The forwarder's environment.
fn forwarder_settings(
    table: &str,
    queue_url: &str,
    dlq_url: &str,
    service_url: &str,
    options: &ForwarderOptions,
) -> ForwarderSettings {
    ForwarderSettings {
        common: CommonSettings {
            microprocess_name: NAME.to_string(),
            ledger_table: table.to_owned(),
            queue_url: queue_url.to_owned(),
            queue_base_url: service_url.trim_end_matches('/').to_owned(),
            signing_secret_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:signing"
                .into(),
        },
        process_path: format!("/microprocesses/{NAME}/process"),
        reduce_path: format!("/microprocesses/{NAME}/reduce"),
        process_timeout: std::time::Duration::from_secs(options.process_timeout_seconds.into()),
        max_attempts: options.max_attempts,
        results_bucket: Some("results".into()),
        dead_letter_queue_url: dlq_url.to_owned(),
        result_storage: match options.storage {
            "bucket" => ResultStorage::Bucket,
            "discard" => ResultStorage::Discard,
            _ => ResultStorage::Ledger,
        },
        results_expiry_days: 30,
        rate_limit_per_second: Some(options.rate_limit_per_second).filter(|r| *r > 0),
        max_concurrency: 2,
        batch_size: 10,
        backoff_base: std::time::Duration::from_millis(options.backoff_base_millis),
        max_retry_after: std::time::Duration::from_secs(
            microprocess_shared::settings::DEFAULT_MAX_RETRY_AFTER_SECONDS,
        ),
        result_limit: options.result_limit,
        lease: options.lease,
        callback_url: options.callback_url.clone(),
        callback_function: None,
        tolerated_failure_percent: options.tolerated_failure_percent,
    }
}

/// A Lambda context with a minute left.
pub fn context() -> Context {
    let mut c = Context::default();
    c.request_id = "test".into();
    c.deadline = (Utc::now().timestamp_millis() + 60_000) as u64;
    c
}

/// Runs `futures` concurrently on this task; their outputs in order.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_ready = true;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => all_ready = false,
                }
            }
        }
        if all_ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

// ---- the splitter's doubles and helpers -----------------------------------------------

/// A queue that records the bodies of the entries its inner queue accepted.
pub struct RecordingQueue {
    pub inner: Arc<dyn Queue>,
    pub sent: Arc<Mutex<Vec<String>>>,
}

impl Queue for RecordingQueue {
    fn send_batch<'a>(
        &'a self,
        entries: &'a [Entry],
    ) -> Boxed<'a, Result<Vec<FailedEntry>, String>> {
        Box::pin(async move {
            let failed = self.inner.send_batch(entries).await?;
            let mut sent = self.sent.lock().unwrap();
            for entry in entries {
                if !failed.iter().any(|f| f.id == entry.id) {
                    sent.push(entry.body.clone());
                }
            }
            Ok(failed)
        })
    }
}

/// The queue, until `crash_after` batches went through; then every call fails, as if the
/// invocation had died there.
pub struct CrashingQueue {
    pub inner: SqsQueue,
    pub calls: AtomicUsize,
    pub crash_after: usize,
}

impl CrashingQueue {
    pub fn new(inner: SqsQueue, crash_after: usize) -> CrashingQueue {
        CrashingQueue {
            inner,
            calls: AtomicUsize::new(0),
            crash_after,
        }
    }
}

impl Queue for CrashingQueue {
    fn send_batch<'a>(
        &'a self,
        entries: &'a [Entry],
    ) -> Boxed<'a, Result<Vec<FailedEntry>, String>> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.crash_after {
            return Box::pin(async { Err("simulated crash".to_owned()) });
        }
        self.inner.send_batch(entries)
    }
}

/// Short waits, so retries take milliseconds.
pub fn quick() -> Tuning {
    Tuning {
        page_backoff_base: Duration::from_millis(10),
        page_backoff_cap: Duration::from_millis(40),
        enqueue: EnqueuePolicy {
            backoff_base: Duration::from_millis(5),
            backoff_cap: Duration::from_millis(20),
            ..EnqueuePolicy::default()
        },
        ..Tuning::default()
    }
}

/// How often each seq was queued, and the reduce messages.
pub fn census(messages: &[QueueMessage]) -> (BTreeMap<u64, u32>, Vec<RunId>) {
    let mut seqs = BTreeMap::new();
    let mut reduces = Vec::new();
    for message in messages {
        match message {
            QueueMessage::Process { seq, .. } => *seqs.entry(*seq).or_insert(0) += 1,
            QueueMessage::Reduce { run } => reduces.push(run.clone()),
        }
    }
    (seqs, reduces)
}

/// Checks that each of the seqs `0..total` was queued, once.
pub fn assert_every_seq_once(seqs: &BTreeMap<u64, u32>, total: u64) {
    assert_eq!(seqs.len() as u64, total, "every seq is queued");
    assert_eq!(seqs.keys().next().copied(), (total > 0).then_some(0));
    assert_eq!(seqs.keys().last().copied(), total.checked_sub(1));
    let repeated: Vec<_> = seqs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "queued more than once: {repeated:?}");
}

/// The schedule's event for 2026-11-01T02:00:00Z, which starts [`SCHEDULED_RUN`].
pub fn scheduled_tick() -> Value {
    json!({
        "version": "0",
        "id": "8e2a1a0c-2f4b-4a51-9a43-3c1d2b6a7e10",
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "123456789012",
        "time": "2026-11-01T02:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"microprocess": NAME}
    })
}

/// A deadline as far as Lambda allows.
pub fn later() -> Deadline {
    Deadline::after(Duration::from_secs(900))
}

/// Runs the handler on `payload`, then on every hand-off it records, until an invocation
/// ends without one; returns every outcome in order.
pub async fn follow(
    splitter: &Splitter,
    handoff: &RecordingHandoff,
    payload: Value,
    deadline: impl Fn() -> Deadline,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut next = Some(payload);
    while let Some(payload) = next {
        assert!(
            outcomes.len() < MAX_INVOCATIONS,
            "the split never ends: {outcomes:?}"
        );
        let outcome = handle(splitter, payload, deadline()).await.unwrap();
        let handed_off = matches!(outcome, Outcome::HandedOff { .. });
        outcomes.push(outcome);
        next = handoff.take_next();
        assert_eq!(next.is_some(), handed_off, "{outcomes:?}");
    }
    outcomes
}

/// (total, pages, reduce queued) of a sealed outcome; panics on any other.
pub fn sealed(outcome: &Outcome) -> (u64, u64, bool) {
    match outcome {
        Outcome::Sealed {
            total,
            pages,
            reduce_queued,
            ..
        } => (*total, *pages, *reduce_queued),
        other => panic!("not sealed: {other:?}"),
    }
}

/// The emulator's counters of what its limits did (`GET /_kit/stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmulatorLimits {
    pub denied: u64,
    pub throttled: u64,
    pub conflicted: u64,
    pub retried: u64,
    pub refused: u64,
    pub expired: u64,
}

impl EmulatorLimits {
    pub fn of(moto: &MotoServer) -> EmulatorLimits {
        let stats = moto.stats();
        let n = |name: &str| stats[name].as_u64().unwrap_or(0);
        EmulatorLimits {
            denied: stats["denied"].as_array().map_or(0, |d| d.len() as u64),
            throttled: n("throttled"),
            conflicted: n("conflicted"),
            retried: n("retried"),
            refused: n("refused"),
            expired: n("expired"),
        }
    }
}

impl std::fmt::Display for EmulatorLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} denied, {} throttled, {} conflicted, {} retried, {} refused, {} expired",
            self.denied, self.throttled, self.conflicted, self.retried, self.refused, self.expired
        )
    }
}
