//! AWS SDK configuration, one way for every binary of the kit.
//!
//! [`config`] loads the standard chain: credentials from the environment, the web
//! identity token, the profile (`AWS_PROFILE`) or the container/instance role; region
//! from `AWS_REGION` or the profile; endpoint from `AWS_ENDPOINT_URL` (and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>`) when set, which is how the local emulator is reached. No
//! emulator is special-cased here.

pub use aws_config::SdkConfig;

/// The SDK configuration from the standard chain, with the latest behavior version.
pub async fn config() -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}
