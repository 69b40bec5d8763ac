//! Lambda entry point of the forwarder: logging, settings, then the runtime loop.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use microprocess_shared::{logging, settings::ForwarderSettings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let settings = ForwarderSettings::from_env()
        .inspect_err(|error| tracing::error!(%error, "cannot start the forwarder"))?;
    let settings = &settings;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        forwarder::forward_batch(settings, event).await
    }))
    .await
}
