//! The local runner against a fresh emulator with the shipped zips: the splitter and the
//! forwarder registered as functions (the real `bootstrap.zip` of this machine's
//! architecture), a queue with its dead-letter queue, the ledger table, a results bucket
//! and a signing secret, an SQS event source mapping, and the demo service as the queue
//! host. A run started through the runner's Lambda endpoint is split (with hand-offs
//! through the same endpoint), forwarded by warm processes and reduced once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Environment, FunctionCode, FunctionResponseType, Runtime, ScalingConfig,
};
use aws_sdk_sqs::types::QueueAttributeName;
use demo_service::{Chaos, Config, SeqSelector};
use kit_tests::ledger_table::create_ledger_table;
use kit_tests::mapping::depth;
use kit_tests::moto::{sdk_config, MotoServer};
use microprocess_kit::config::host_architecture;
use microprocess_kit::local::logs::LogSink;
use microprocess_kit::local::{client, LocalRunner, RunnerConfig};
use microprocess_shared::ledger::{Ledger, Overlap, RunRecord};
use microprocess_shared::ledger_keys::{ChildState, RunState};
use microprocess_shared::queue_message::QueueMessage;
use microprocess_shared::run_id::RunId;
use microprocess_shared::settings::{
    self, CommonSettings, ForwarderSettings, ResultStorage, SplitterSettings,
};
use serde_json::json;

const NAME: &str = "credit-scores";
const PREFIX: &str = "scores-local-";
const SPLITTER: &str = "scores-local-credit-scores-splitter";
const FORWARDER: &str = "scores-local-credit-scores-forwarder";
const SECRET: &str = "local-runner-test-secret";
const REGION: &str = "us-east-1";

/// `target/lambda/<this machine's arch>/<function>/bootstrap.zip`, as `make build` leaves it.
fn shipped_zip(function: &str) -> Vec<u8> {
    let path = built_zips().join(function).join("bootstrap.zip");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "`{}` cannot be read ({e}): run `make build` first (it packages the Lambda zips the local runner executes)",
            path.display()
        )
    })
}

fn built_zips() -> PathBuf {
    kit_tests::root()
        .join("target")
        .join("lambda")
        .join(host_architecture())
}

struct Emulator {
    moto: MotoServer,
    config: SdkConfig,
    sqs: aws_sdk_sqs::Client,
    lambda: aws_sdk_lambda::Client,
    ledger: Ledger,
    table: String,
    queue_url: String,
    queue_arn: String,
    dlq_url: String,
    secret_arn: String,
    role_arn: String,
}

async fn emulator(moto: MotoServer, max_receive_count: u32, visibility_seconds: u32) -> Emulator {
    let config = sdk_config(moto.endpoint()).await;
    let table = create_ledger_table(&config).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dlq_url = sqs
        .create_queue()
        .queue_name("scores-local-credit-scores-dlq")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let dlq_arn = queue_arn(&sqs, &dlq_url).await;
    let queue_url = sqs
        .create_queue()
        .queue_name("scores-local-credit-scores")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_seconds.to_string(),
        )
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let queue_arn = queue_arn(&sqs, &queue_url).await;
    aws_sdk_s3::Client::new(&config)
        .create_bucket()
        .bucket("scores-local-results")
        .send()
        .await
        .unwrap();
    let secret_arn = aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name("scores-local/microprocesses/signing-secret")
        .secret_string(SECRET)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    // The emulator only accepts a function whose role exists, and the runner runs both
    // functions as it; a one-role stack makes it, allowed what the two functions call
    // (on any resource: these tests are about the runner, the templates' own scoped
    // policies are held by the end-to-end tests).
    let role = json!({"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": {
        "RoleName": "local-runner-test",
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"}]},
        "Policies": [{"PolicyName": "functions", "PolicyDocument": {
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",
            "Action": [
                "dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem",
                "dynamodb:Query", "dynamodb:UpdateItem",
                "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage", "sqs:SendMessage",
                "s3:PutObject", "s3:PutObjectTagging",
                "secretsmanager:GetSecretValue", "lambda:InvokeFunction"]}]}}]}}}});
    aws_sdk_cloudformation::Client::new(&config)
        .create_stack()
        .stack_name("local-runner-test-role")
        .template_body(role.to_string())
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityNamedIam)
        .send()
        .await
        .unwrap();
    Emulator {
        lambda: aws_sdk_lambda::Client::new(&config),
        ledger: Ledger::from_config(&config, &table),
        role_arn: "arn:aws:iam::123456789012:role/local-runner-test".into(),
        moto,
        config,
        sqs,
        table,
        queue_url,
        queue_arn,
        dlq_url,
        secret_arn,
    }
}

fn with_log_filter(variables: settings::Environment) -> BTreeMap<String, String> {
    variables
        .into_iter()
        .chain([(settings::RUST_LOG, settings::DEFAULT_RUST_LOG.to_string())])
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone()
}

impl Emulator {
    fn common(&self, queue_base_url: &str, secret_arn: &str) -> CommonSettings {
        CommonSettings {
            microprocess_name: NAME.into(),
            ledger_table: self.table.clone(),
            queue_url: self.queue_url.clone(),
            queue_base_url: queue_base_url.into(),
            signing_secret_arn: secret_arn.into(),
        }
    }

    /// The forwarder's variables, from its typed settings as the generator renders them.
    fn forwarder_environment(&self, queue_base_url: &str) -> BTreeMap<String, String> {
        let settings = ForwarderSettings {
            common: self.common(queue_base_url, &self.secret_arn),
            process_path: format!("/microprocesses/{NAME}/process"),
            reduce_path: format!("/microprocesses/{NAME}/reduce"),
            process_timeout: Duration::from_secs(5),
            max_attempts: 3,
            results_bucket: Some("scores-local-results".into()),
            dead_letter_queue_url: self.dlq_url.clone(),
            result_storage: ResultStorage::Ledger,
            results_expiry_days: 30,
            rate_limit_per_second: None,
            max_concurrency: 4,
            batch_size: 10,
            backoff_base: Duration::from_millis(settings::DEFAULT_BACKOFF_BASE_MILLIS),
            max_retry_after: Duration::from_secs(settings::DEFAULT_MAX_RETRY_AFTER_SECONDS),
            result_limit: microprocess_shared::service_client::DEFAULT_RESULT_LIMIT,
            lease: None,
            callback_url: None,
            callback_function: None,
            tolerated_failure_percent: None,
        };
        with_log_filter(settings.to_environment())
    }

    /// The splitter's variables, from its typed settings.
    fn splitter_environment(
        &self,
        queue_base_url: &str,
        secret_arn: &str,
    ) -> BTreeMap<String, String> {
        let settings = SplitterSettings {
            common: self.common(queue_base_url, secret_arn),
            split_path: format!("/microprocesses/{NAME}/split"),
            dead_letter_queue_url: self.dlq_url.clone(),
            split_page_size: 100,
            split_page_max_bytes: microprocess_shared::service_client::max_split_page_bytes(100),
            split_max_attempts: 3,
            overlap: Overlap::Skip,
            retention_days: 30,
            counter_shards: 1,
            ledger_partitions: 1,
            alarm_topic_arn: None,
            expected_duration: None,
        };
        with_log_filter(settings.to_environment())
    }

    async fn register(
        &self,
        name: &str,
        zip: Vec<u8>,
        environment: BTreeMap<String, String>,
        timeout_seconds: i32,
        reserved_concurrency: i32,
    ) {
        self.lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(&self.role_arn)
            .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
            .timeout(timeout_seconds)
            .memory_size(128)
            .environment(
                Environment::builder()
                    .set_variables(Some(environment.into_iter().collect()))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("register `{name}`: {e:?}"));
        self.lambda
            .put_function_concurrency()
            .function_name(name)
            .reserved_concurrent_executions(reserved_concurrency)
            .send()
            .await
            .unwrap();
    }

    /// The forwarder behind the queue, as the template's `ForwarderQueueMapping`.
    async fn map_queue(&self, batch_size: i32, maximum_concurrency: i32) {
        self.lambda
            .create_event_source_mapping()
            .event_source_arn(&self.queue_arn)
            .function_name(FORWARDER)
            .batch_size(batch_size)
            .function_response_types(FunctionResponseType::ReportBatchItemFailures)
            .scaling_config(
                ScalingConfig::builder()
                    .maximum_concurrency(maximum_concurrency)
                    .build(),
            )
            .enabled(true)
            .send()
            .await
            .unwrap();
    }

    fn runner_config(&self, work_dir: &std::path::Path, log: &std::path::Path) -> RunnerConfig {
        let mut config =
            RunnerConfig::new(self.config.clone(), self.moto.endpoint(), PREFIX, work_dir);
        config.code_dirs = vec![built_zips()];
        config.runner_secret_name = "scores-local/runner-signing-secret".into();
        config.fire_rate_schedules = false;
        // The emulator is serialized in these tests: a long poll would hold it for all.
        config.poll.wait_seconds = 0;
        config.poll.idle_pause = Duration::from_millis(50);
        config.init_limit = Duration::from_secs(3);
        config.logs = LogSink::only_file(log).unwrap();
        config
    }

    /// Both functions as the template registers them, the forwarder behind the queue with
    /// `concurrency` pollers. Their own `QUEUE_BASE_URL` leads nowhere (the runner points
    /// them at the service), and the splitter's secret was never created (as in the
    /// emulator's CloudFormation: the runner makes one with the given value). A 30 s
    /// splitter timeout is under its 60 s hand-off margin, so each invocation reads one
    /// page and hands the rest to itself.
    async fn register_pipeline(&self, forwarder_reserved: i32, concurrency: i32) {
        self.register_pipeline_with(forwarder_reserved, concurrency, &[])
            .await;
    }

    /// [`Emulator::register_pipeline`] with some of the forwarder's variables replaced.
    async fn register_pipeline_with(
        &self,
        forwarder_reserved: i32,
        concurrency: i32,
        forwarder_overrides: &[(&str, &str)],
    ) {
        let nowhere = "http://127.0.0.1:9";
        let mut forwarder = self.forwarder_environment(nowhere);
        for (name, value) in forwarder_overrides {
            forwarder.insert((*name).to_string(), (*value).to_string());
        }
        self.register(
            FORWARDER,
            shipped_zip("forwarder"),
            forwarder,
            15,
            forwarder_reserved,
        )
        .await;
        let missing_secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:never-created";
        self.register(
            SPLITTER,
            shipped_zip("splitter"),
            self.splitter_environment(nowhere, missing_secret),
            30,
            2,
        )
        .await;
        self.map_queue(10, concurrency).await;
    }

    /// The runner over this emulator, its functions pointed at `service`, its log in `dir`.
    async fn start_runner(&self, dir: &std::path::Path, service: &str) -> (LocalRunner, PathBuf) {
        let log = dir.join("runner.log");
        let mut config = self.runner_config(&dir.join("work"), &log);
        config.queue_base_url = Some(service.into());
        config.signing_secret = Some(SECRET.into());
        let runner = LocalRunner::start(config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (runner, log)
    }

    async fn run(&self, run: &RunId) -> Option<RunRecord> {
        self.ledger.run(NAME, run).await.unwrap()
    }
}

/// Waits until `check` holds, polling; panics with `what` and the runner's log after `limit`.
async fn wait_until<F, Fut>(limit: Duration, what: &str, log: &std::path::Path, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        if started.elapsed() > limit {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "{what} did not happen within {} s; the runner's log ends with:\n{}",
                limit.as_secs(),
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_started_through_the_runner_is_split_forwarded_and_reduced_once() {
    const ITEMS: u64 = 300;
    const FAILING_SEQ: u64 = 7;
    let emulator = emulator(MotoServer::start(), 3, 30).await;
    let service =
        demo_service::DemoService::start(Config::new(SECRET).with_items(ITEMS).with_chaos(Chaos {
            fail_seqs_4xx: SeqSelector::Seqs([FAILING_SEQ].into()),
            ..Chaos::default()
        }))
        .await
        .unwrap();
    emulator.register_pipeline(4, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let (runner, log) = emulator
        .start_runner(dir.path(), &service.queue_url())
        .await;
    let deployment = runner.deployment();
    assert_eq!(deployment.functions.len(), 2);
    assert_eq!(deployment.mappings.len(), 1);
    let mapping = &deployment.mappings[0];
    assert_eq!(
        (mapping.batch_size, mapping.maximum_concurrency),
        (10, Some(4))
    );
    assert!(mapping.report_batch_item_failures);
    // The emulator's own delivery is off, or it would raise receive counts on each send.
    let states = emulator
        .lambda
        .list_event_source_mappings()
        .send()
        .await
        .unwrap();
    assert_eq!(states.event_source_mappings()[0].state(), Some("Disabled"));

    let run = RunId::parse("local-runner-1").unwrap();
    let started = Instant::now();
    client::start_run(runner.lambda_endpoint(), REGION, SPLITTER, run.as_str())
        .await
        .unwrap();
    wait_until(Duration::from_secs(60), "run COMPLETED", &log, || async {
        emulator
            .run(&run)
            .await
            .is_some_and(|r| r.state == RunState::Completed)
    })
    .await;
    let elapsed = started.elapsed();
    eprintln!(
        "local runner: {ITEMS} items from start to COMPLETED in {:.1} s ({:.0} items/s)",
        elapsed.as_secs_f64(),
        ITEMS as f64 / elapsed.as_secs_f64()
    );

    let record = emulator.run(&run).await.unwrap();
    assert_eq!(record.total, Some(ITEMS));
    assert_eq!(record.succeeded, ITEMS - 1);
    assert_eq!(record.failed, 1);
    let stats = service.stats();
    let run_stats = stats
        .run(NAME, run.as_str())
        .expect("the service saw the run");
    assert_eq!(run_stats.succeeded, ITEMS - 1);
    assert_eq!(run_stats.reduce.calls, 1, "exactly one reduce");
    assert!(run_stats.reduce.completed);
    assert_eq!(stats.rejected("signature_mismatch"), 0);

    // The 422 child is FAILED in the ledger and its message on the dead-letter queue.
    let children = emulator.ledger.children(NAME, &run).await.unwrap();
    let failed: Vec<u64> = children
        .iter()
        .filter(|c| c.state == ChildState::Failed)
        .map(|c| c.seq)
        .collect();
    assert_eq!(failed, vec![FAILING_SEQ]);
    let dead = emulator
        .sqs
        .receive_message()
        .queue_url(&emulator.dlq_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let dead_seqs: Vec<u64> = dead
        .messages()
        .iter()
        .filter_map(|m| match QueueMessage::parse(m.body()?) {
            Ok(QueueMessage::Process { seq, .. }) => Some(seq),
            _ => None,
        })
        .collect();
    assert_eq!(dead_seqs, vec![FAILING_SEQ]);
    assert_eq!(depth(&emulator.sqs, &emulator.queue_url).await, (0, 0));

    // The splitter handed off to itself through the runner: three pages, three invocations.
    let splitter = runner.stats(SPLITTER).unwrap();
    assert_eq!(splitter.invocations, 3, "{splitter:?}");
    assert_eq!(splitter.responses, 3, "{splitter:?}");
    // Warm forwarders took every batch: 30 of process messages and the reduce, at least.
    let forwarder = runner.stats(FORWARDER).unwrap();
    assert!(forwarder.invocations >= 31, "{forwarder:?}");
    assert_eq!(forwarder.crashes + forwarder.timeouts, 0, "{forwarder:?}");
    assert_eq!(forwarder.messages_deleted, ITEMS + 1, "{forwarder:?}");

    runner.shutdown().await;
    let text = std::fs::read_to_string(&log).unwrap();
    for instance in 1..=4 {
        assert!(
            text.contains(&format!("[credit-scores-forwarder#{instance}] ")),
            "no log line of forwarder instance {instance}:\n{text}"
        );
    }
    assert!(text.contains("[credit-scores-splitter#"), "{text}");
    assert!(
        text.contains("scores-local/runner-signing-secret"),
        "the runner's secret is announced:\n{text}"
    );
    // Every process stopped with the runner.
    let still = emulator.ledger.run(NAME, &run).await.unwrap().unwrap();
    assert_eq!(still.state, RunState::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_function_leaves_its_batches_to_the_queue_redrive() {
    let zip = shipped_zip("forwarder");
    let emulator = emulator(MotoServer::start(), 2, 1).await;
    // A variable the forwarder refuses: every process fails at its start.
    let mut environment = emulator.forwarder_environment("http://127.0.0.1:9");
    environment.insert("MAX_ATTEMPTS".into(), "many".into());
    emulator.register(FORWARDER, zip, environment, 5, 2).await;
    emulator.map_queue(10, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runner.log");
    let mut config = emulator.runner_config(&dir.path().join("work"), &log);
    config.init_limit = Duration::from_secs(1);
    let runner = LocalRunner::start(config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for seq in 0..3 {
        emulator
            .sqs
            .send_message()
            .queue_url(&emulator.queue_url)
            .message_body(format!(
                "{{\"kind\":\"process\",\"run\":\"r\",\"seq\":{seq}}}"
            ))
            .send()
            .await
            .unwrap();
    }
    wait_until(
        Duration::from_secs(40),
        "three messages on the dead-letter queue",
        &log,
        || async { depth(&emulator.sqs, &emulator.dlq_url).await.0 == 3 },
    )
    .await;
    assert_eq!(depth(&emulator.sqs, &emulator.queue_url).await, (0, 0));
    let stats = runner.stats(FORWARDER).unwrap();
    assert_eq!(stats.messages_deleted, 0, "{stats:?}");
    assert!(stats.crashes >= 2, "{stats:?}");
    runner.shutdown().await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("MAX_ATTEMPTS"),
        "the function's own error is in the log:\n{text}"
    );
    assert!(text.contains("left on the queue"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarders_killed_in_the_middle_of_batches_still_complete_the_run_once() {
    const ITEMS: u64 = 100;
    let forwarder_zip = shipped_zip("forwarder");
    let splitter_zip = shipped_zip("splitter");
    // A short visibility timeout, so the batches of killed processes come back soon, and
    // room for many attempts: half the batches are killed, redeliveries included.
    let emulator = emulator(MotoServer::start(), 20, 3).await;
    // Every process answer takes longer than the runner's chaos window (a kill lands at
    // most 100 ms into a batch), so every kill drawn lands in the middle of a batch: a
    // batch of fast local answers could finish first, and a run could then see no kill.
    let chaos = demo_service::Chaos {
        delay_ms: 150,
        ..demo_service::Chaos::default()
    };
    let service =
        demo_service::DemoService::start(Config::new(SECRET).with_items(ITEMS).with_chaos(chaos))
            .await
            .unwrap();
    let url = service.queue_url();
    let mut environment = emulator.forwarder_environment(&url);
    environment.insert("MAX_ATTEMPTS".into(), "20".into());
    emulator
        .register(FORWARDER, forwarder_zip, environment, 15, 4)
        .await;
    emulator
        .register(
            SPLITTER,
            splitter_zip,
            emulator.splitter_environment(&url, &emulator.secret_arn),
            900,
            2,
        )
        .await;
    emulator.map_queue(10, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runner.log");
    let mut config = emulator.runner_config(&dir.path().join("work"), &log);
    config.kill_forwarder_rate = 0.5;
    let runner = LocalRunner::start(config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let run = RunId::parse("local-runner-chaos").unwrap();
    client::start_run(runner.lambda_endpoint(), REGION, SPLITTER, run.as_str())
        .await
        .unwrap();
    wait_until(Duration::from_secs(90), "run COMPLETED", &log, || async {
        emulator
            .run(&run)
            .await
            .is_some_and(|r| r.state == RunState::Completed)
    })
    .await;
    let record = emulator.run(&run).await.unwrap();
    assert_eq!((record.succeeded, record.failed), (ITEMS, 0));
    let stats = service.stats();
    let run_stats = stats.run(NAME, run.as_str()).unwrap();
    assert_eq!(run_stats.succeeded, ITEMS);
    assert!(run_stats.reduce.completed);
    let forwarder = runner.stats(FORWARDER).unwrap();
    eprintln!("local runner under chaos: {forwarder:?}");
    assert!(forwarder.chaos_kills > 0, "{forwarder:?}");
    assert!(forwarder.crashes > 0, "{forwarder:?}");
    runner.shutdown().await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("chaos: killing the process"), "{text}");
}

/// The emulator, and a demo service of ten items that answers each with 20 MiB.
async fn ten_answers_of_20_mib() -> (Emulator, demo_service::RunningService) {
    let emulator = emulator(MotoServer::start(), 3, 30).await;
    let service =
        demo_service::DemoService::start(Config::new(SECRET).with_items(10).with_chaos(Chaos {
            large_result_seqs: SeqSelector::Fraction(1.0),
            large_result_bytes: 20 * 1024 * 1024,
            ..Chaos::default()
        }))
        .await
        .unwrap();
    (emulator, service)
}

/// Lambda stops a sandbox at its `MemorySize`: a 128 MB forwarder that reads ten 20 MiB
/// answers at once (200 MiB) is killed, and its invocation fails, where the runner used
/// to let it through. (The forwarder reads at most its result limit, which `validate`
/// keeps within its memory; this one is given a 32 MiB limit by hand, as no config would.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forwarder_over_its_memory_size_is_killed_as_lambda_kills_it() {
    let (emulator, service) = ten_answers_of_20_mib().await;
    emulator
        .register_pipeline_with(2, 2, &[(settings::RESULT_LIMIT_BYTES, "33554432")])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (runner, log) = emulator
        .start_runner(dir.path(), &service.queue_url())
        .await;
    client::start_run(runner.lambda_endpoint(), REGION, SPLITTER, "too-big")
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(60),
        "an out-of-memory kill",
        &log,
        || async {
            runner
                .stats(FORWARDER)
                .is_some_and(|s| s.out_of_memory >= 1)
        },
    )
    .await;
    runner.shutdown().await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("over the function's MemorySize of 128 MB"),
        "{text}"
    );
    assert!(text.contains("Runtime.OutOfMemory"), "{text}");
}

/// The same ten 20 MiB answers to a 128 MB forwarder with its result limit: it stops
/// reading each answer at the limit and fails the child at once, naming the limit, and is
/// never killed. Before the fix it read every answer whole and Lambda stopped it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forwarder_reads_answers_only_up_to_its_result_limit_and_stays_in_its_memory() {
    let (emulator, service) = ten_answers_of_20_mib().await;
    // What `validate` derives for 128 MB and batches of 10.
    emulator
        .register_pipeline_with(2, 2, &[(settings::RESULT_LIMIT_BYTES, "4613120")])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (runner, log) = emulator
        .start_runner(dir.path(), &service.queue_url())
        .await;
    client::start_run(runner.lambda_endpoint(), REGION, SPLITTER, "bounded")
        .await
        .unwrap();
    let run = RunId::parse("bounded").unwrap();
    wait_until(Duration::from_secs(60), "the run's end", &log, || async {
        emulator
            .run(&run)
            .await
            .is_some_and(|r| r.state == RunState::Completed)
    })
    .await;
    assert_eq!(runner.stats(FORWARDER).map(|s| s.out_of_memory), Some(0));
    runner.shutdown().await;
    let record = emulator.run(&run).await.unwrap();
    assert_eq!((record.succeeded, record.failed), (0, 10));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("the answer is over 4613120 bytes, the result limit"),
        "{text}"
    );
}
