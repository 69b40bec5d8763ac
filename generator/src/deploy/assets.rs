//! Uploads into the core stack's bucket, keyed by content hash: a key that exists already
//! holds the same bytes, so it is never uploaded twice.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use super::DeployError;

pub struct Bucket {
    client: Client,
    pub name: String,
    region: String,
}

/// What [`Bucket::put_once`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Upload {
    Uploaded,
    AlreadyThere,
}

impl Bucket {
    pub fn new(config: &aws_config::SdkConfig, name: &str, region: &str) -> Bucket {
        Bucket {
            client: s3_client(config),
            name: name.to_string(),
            region: region.to_string(),
        }
    }

    /// Puts `bytes` at `key` unless the key exists.
    pub async fn put_once(
        &self,
        key: &str,
        bytes: Vec<u8>,
        what: &str,
    ) -> Result<Upload, DeployError> {
        let failed = |detail: String| DeployError::Upload {
            what: what.to_string(),
            bucket: self.name.clone(),
            key: key.to_string(),
            detail,
        };
        match self
            .client
            .head_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
        {
            Ok(_) => return Ok(Upload::AlreadyThere),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
            Err(e) => return Err(failed(super::sdk_detail(&e))),
        }
        self.client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| failed(super::sdk_detail(&e)))?;
        Ok(Upload::Uploaded)
    }

    /// The URL CloudFormation reads a template from.
    pub fn url(&self, key: &str) -> String {
        format!(
            "https://{}.s3.{}.amazonaws.com/{key}",
            self.name, self.region
        )
    }
}

/// An S3 client; path-style addressing when an endpoint is set (the emulator has no
/// per-bucket host names).
pub fn s3_client(config: &aws_config::SdkConfig) -> Client {
    let path_style = config.endpoint_url().is_some();
    Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build(),
    )
}
