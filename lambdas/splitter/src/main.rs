//! Lambda entry point of the splitter: logging, settings, then the runtime loop.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use microprocess_shared::{logging, settings::SplitterSettings};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let settings = SplitterSettings::from_env()
        .inspect_err(|error| tracing::error!(%error, "cannot start the splitter"))?;
    let settings = &settings;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        splitter::start_run(settings, event).await
    }))
    .await
}
