//! What the forwarder runs against: the kit's emulator with the ledger table, the queue
//! and its dead-letter queue, the results bucket and the signing secret; a started run;
//! the demo service (no added latency) behind a [`TimingProxy`]; and the process
//! environment the microprocess template and the local runner give the function.

use std::path::Path;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use chrono::Utc;
use demo_service::{Config, DemoService, RunningService};
use kit_tests::ledger_table::create_ledger_table;
use kit_tests::moto::{sdk_config, MotoServer};
use microprocess_shared::ledger::{Layout, Ledger, Overlap};
use microprocess_shared::queue_message::QueueMessage;
use microprocess_shared::run_id::RunId;
use microprocess_shared::settings::{self, CommonSettings, ForwarderSettings, ResultStorage};
use serde_json::json;

use super::timing_proxy::TimingProxy;

pub const NAME: &str = "credit-scores";
pub const FUNCTION: &str = "scores-local-credit-scores-forwarder";
pub const REGION: &str = "us-east-1";
const SECRET: &str = "forwarder-bench-secret";
const BUCKET: &str = "scores-local-results";
/// The function's timeout (the template's default forwarder timeout is well above a
/// batch's milliseconds here).
pub const TIMEOUT_SECONDS: u64 = 30;

pub struct Fixture {
    pub moto: MotoServer,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub run: RunId,
    pub proxy: TimingProxy,
    table: String,
    dlq_url: String,
    secret_arn: String,
    service: RunningService,
}

impl Fixture {
    /// Everything for a run of `items` children, the run started (`SPLITTING`: the
    /// forwarder counts children while the split goes on; without a seal there is no
    /// reduce, so every message is a process call).
    pub async fn start(items: u64) -> Fixture {
        let moto = MotoServer::start();
        let config = sdk_config(moto.endpoint()).await;
        let table = create_ledger_table(&config).await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let dlq_url = create_queue(&sqs, "scores-local-credit-scores-dlq", &[]).await;
        let dlq_arn = queue_arn(&sqs, &dlq_url).await;
        let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}).to_string();
        let queue_url = create_queue(
            &sqs,
            "scores-local-credit-scores",
            &[
                (QueueAttributeName::VisibilityTimeout, "180".into()),
                (QueueAttributeName::RedrivePolicy, redrive),
            ],
        )
        .await;
        let queue_arn = queue_arn(&sqs, &queue_url).await;
        aws_sdk_s3::Client::new(&config)
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot create the results bucket: {e:?}"));
        let secret_arn = create_secret(&config).await;
        let run = RunId::parse("forwarder-bench").expect("a valid run id");
        Ledger::from_config(&config, &table)
            .start_run(NAME, &run, Overlap::Allow, 30, Layout::SINGLE, Utc::now())
            .await
            .unwrap_or_else(|e| panic!("cannot start the run: {e}"));
        let service = DemoService::start(Config::new(SECRET).with_items(items))
            .await
            .unwrap_or_else(|e| panic!("cannot start the demo service: {e}"));
        let proxy = TimingProxy::start(service.queue_addr)
            .await
            .unwrap_or_else(|e| panic!("cannot start the timing proxy: {e}"));
        Fixture {
            moto,
            sqs,
            queue_url,
            queue_arn,
            run,
            proxy,
            table,
            dlq_url,
            secret_arn,
            service,
        }
    }

    /// Queues the process messages of seqs `0..items`, ten per request.
    pub async fn queue_children(&self, items: u64) {
        let seqs: Vec<u64> = (0..items).collect();
        for chunk in seqs.chunks(10) {
            let entries = chunk
                .iter()
                .map(|&seq| {
                    let body = QueueMessage::Process {
                        run: self.run.clone(),
                        seq,
                        item: demo_service::paging::item_id(seq),
                        payload: Some(demo_service::paging::item_payload(seq)),
                    }
                    .to_body();
                    SendMessageBatchRequestEntry::builder()
                        .id(seq.to_string())
                        .message_body(body)
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .unwrap_or_else(|e| panic!("cannot queue children: {e:?}"));
            assert!(
                out.failed().is_empty(),
                "queueing failed: {:?}",
                out.failed()
            );
        }
    }

    /// Seqs the service answered 2xx.
    pub fn succeeded(&self) -> u64 {
        self.service
            .stats()
            .run(NAME, self.run.as_str())
            .map_or(0, |r| r.succeeded)
    }

    /// The function's whole process environment but `AWS_LAMBDA_RUNTIME_API`: the
    /// variables `templates/microprocess.yaml` sets, then the ones the local runner adds
    /// as Lambda does (`microprocess local run`).
    pub fn environment(&self, code_dir: &Path) -> Vec<(String, String)> {
        let code_dir = code_dir.display().to_string();
        let function = ForwarderSettings {
            common: CommonSettings {
                microprocess_name: NAME.into(),
                ledger_table: self.table.clone(),
                queue_url: self.queue_url.clone(),
                queue_base_url: self.proxy.url.clone(),
                signing_secret_arn: self.secret_arn.clone(),
            },
            process_path: format!("/microprocesses/{NAME}/process"),
            reduce_path: format!("/microprocesses/{NAME}/reduce"),
            process_timeout: Duration::from_secs(10),
            max_attempts: 3,
            results_bucket: Some(BUCKET.into()),
            dead_letter_queue_url: self.dlq_url.clone(),
            result_storage: ResultStorage::Ledger,
            results_expiry_days: 30,
            rate_limit_per_second: None,
            max_concurrency: 10,
            batch_size: 10,
            backoff_base: Duration::from_millis(settings::DEFAULT_BACKOFF_BASE_MILLIS),
            max_retry_after: Duration::from_secs(settings::DEFAULT_MAX_RETRY_AFTER_SECONDS),
            result_limit: microprocess_shared::service_client::DEFAULT_RESULT_LIMIT,
            lease: None,
            callback_url: None,
            callback_function: None,
            tolerated_failure_percent: None,
        };
        let lambda = [
            (settings::MICROPROCESS_ENVIRONMENT, "local".to_string()),
            (settings::RUST_LOG, settings::DEFAULT_RUST_LOG.into()),
            ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION.into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{FUNCTION}"),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_ENDPOINT_URL", self.moto.endpoint().into()),
            (
                "AWS_ACCESS_KEY_ID",
                microprocess_kit::aws::LOCAL_ADMIN_ACCESS_KEY_ID.into(),
            ),
            (
                "AWS_SECRET_ACCESS_KEY",
                microprocess_kit::aws::LOCAL_ADMIN_SECRET_ACCESS_KEY.into(),
            ),
            ("_HANDLER", "bootstrap".into()),
            ("LAMBDA_TASK_ROOT", code_dir.clone()),
            ("LAMBDA_RUNTIME_DIR", code_dir),
            ("TZ", ":UTC".into()),
            ("LANG", "en_US.UTF-8".into()),
            ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ];
        function
            .to_environment()
            .into_iter()
            .chain(lambda)
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    pub async fn shutdown(self) {
        let _ = self.service.shutdown().await;
    }
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> String {
    let mut create = sqs.create_queue().queue_name(name);
    for (attribute, value) in attributes {
        create = create.attributes(attribute.clone(), value);
    }
    create
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot create queue `{name}`: {e:?}"))
        .queue_url()
        .expect("a created queue has a URL")
        .to_string()
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot read the ARN of `{url}`: {e:?}"))
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .expect("a queue has an ARN")
}

async fn create_secret(config: &SdkConfig) -> String {
    aws_sdk_secretsmanager::Client::new(config)
        .create_secret()
        .name("scores-local/microprocesses/signing-secret")
        .secret_string(SECRET)
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot create the signing secret: {e:?}"))
        .arn()
        .expect("a created secret has an ARN")
        .to_string()
}
