//! Lambda entry point of the forwarder: logging, settings, clients, then the runtime loop.

use aws_lambda_events::sqs::SqsEvent;
use forwarder::Forwarder;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use microprocess_shared::settings::ForwarderSettings;
use microprocess_shared::signing_secret::SigningKeys;
use microprocess_shared::{aws, logging};

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let mut settings = ForwarderSettings::from_env()
        .inspect_err(|error| tracing::error!(%error, "cannot start the forwarder"))?;
    let config = aws::config().await;
    if settings.lease.is_some() && settings.callback_url.is_none() {
        let url = forwarder::callback::url_of(&config, settings.callback_function.as_deref())
            .await
            .inspect_err(|error| tracing::error!(%error, "cannot start the forwarder"))?;
        tracing::info!(%url, "callback completion: reports go to the callback");
        settings.callback_url = Some(url);
    }
    let secret = SigningKeys::fetch(&config, &settings.common.signing_secret_arn)
        .await
        .inspect_err(|error| tracing::error!(%error, "cannot start the forwarder"))?;
    let forwarder = Forwarder::new(settings, &config, secret)?;
    let forwarder = &forwarder;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        forwarder.handle(event).await
    }))
    .await
}
