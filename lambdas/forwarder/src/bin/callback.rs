//! Lambda entry point of the callback (behind its function URL): the forwarder's settings
//! and clients, then one report per invocation (see `forwarder::callback`).

use aws_lambda_events::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use forwarder::Forwarder;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use microprocess_shared::settings::ForwarderSettings;
use microprocess_shared::signing_secret::SigningKeys;
use microprocess_shared::{aws, logging};

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let settings = ForwarderSettings::from_env()
        .inspect_err(|error| tracing::error!(%error, "cannot start the callback"))?;
    if settings.lease.is_none() {
        let error = "LEASE_SECONDS is not set: the callback serves microprocesses with callback completion only";
        tracing::error!(error, "cannot start the callback");
        return Err(error.into());
    }
    let config = aws::config().await;
    let secret = SigningKeys::fetch(&config, &settings.common.signing_secret_arn)
        .await
        .inspect_err(|error| tracing::error!(%error, "cannot start the callback"))?;
    let callback = Forwarder::new(settings, &config, secret)?;
    let callback = &callback;
    run(service_fn(
        move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
            Ok::<LambdaFunctionUrlResponse, Error>(
                callback.report(&event.payload).await.into_response(),
            )
        },
    ))
    .await
}
