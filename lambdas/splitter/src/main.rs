//! Lambda entry point of the splitter: logging, settings, clients, then the runtime loop.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use microprocess_shared::settings::SplitterSettings;
use microprocess_shared::signing_secret::SigningKeys;
use microprocess_shared::{aws, logging};
use serde_json::Value;
use splitter::{handle, Deadline, Splitter};
use tracing::Instrument;

/// Set by Lambda: the function's own name, the target of its hand-offs.
const FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let settings = SplitterSettings::from_env()
        .inspect_err(|error| tracing::error!(%error, "cannot start the splitter"))?;
    let function_name = std::env::var(FUNCTION_NAME)
        .ok()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            format!("environment variable `{FUNCTION_NAME}` is not set; Lambda sets it to the function's name")
        })
        .inspect_err(|error| tracing::error!(%error, "cannot start the splitter"))?;
    let config = aws::config().await;
    let secret = SigningKeys::fetch(&config, &settings.common.signing_secret_arn)
        .await
        .inspect_err(|error| tracing::error!(%error, "cannot start the splitter"))?;
    let splitter = Splitter::new(settings, &config, secret, &function_name)
        .inspect_err(|error| tracing::error!(%error, "cannot start the splitter"))?;
    let splitter = &splitter;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (payload, context) = event.into_parts();
        let span = tracing::info_span!("invocation", request_id = %context.request_id);
        handle(
            splitter,
            payload,
            Deadline::from_epoch_millis(context.deadline),
        )
        .instrument(span)
        .await
    }))
    .await
}
