//! The environment's signing secret, read from Secrets Manager when a process starts and
//! again when a service refuses a signature.
//!
//! The secret string is either the key itself or, during a rotation, JSON
//! `{"current": "...", "previous": "..."}`: the kit signs every request with both (one
//! `v1` each), so a service that has already rolled and one that has not both accept it.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::errors::error_chain;

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("cannot read the signing secret `{arn}`: {detail}")]
    Read { arn: String, detail: String },
    #[error("the signing secret `{arn}` is empty")]
    Empty { arn: String },
}

/// The keys a process signs with, and where to read them again.
#[derive(Debug)]
pub struct SigningKeys {
    keys: RwLock<Vec<String>>,
    source: Option<(aws_sdk_secretsmanager::Client, String)>,
    /// When the secret was last read again: a service that refuses every call (a wrong
    /// secret, not a rotation) costs one read per [`REREAD_EVERY`], not one per call.
    /// Held across the read, so calls refused at the same time wait for one read.
    reread_at: tokio::sync::Mutex<Option<Instant>>,
}

/// The least time between two reads of the secret after a 401.
pub const REREAD_EVERY: Duration = Duration::from_secs(30);

impl From<String> for SigningKeys {
    /// Fixed keys: the key itself, or the rotation JSON.
    fn from(secret: String) -> Self {
        SigningKeys {
            keys: RwLock::new(signing_keys(&secret)),
            source: None,
            reread_at: tokio::sync::Mutex::new(None),
        }
    }
}

impl SigningKeys {
    /// Reads the secret `arn`; [`SigningKeys::reread`] reads it again.
    pub async fn fetch(config: &aws_config::SdkConfig, arn: &str) -> Result<Self, SecretError> {
        let client = aws_sdk_secretsmanager::Client::new(config);
        let keys = read(&client, arn).await?;
        Ok(SigningKeys {
            keys: RwLock::new(keys),
            source: Some((client, arn.to_string())),
            reread_at: tokio::sync::Mutex::new(None),
        })
    }

    /// The keys to sign with, `current` first.
    pub fn current(&self) -> Vec<String> {
        self.keys.read().map(|k| k.clone()).unwrap_or_default()
    }

    /// After a service refused `signed_with`: reads the secret again (it may have been
    /// rotated since this process started), at most once per [`REREAD_EVERY`]. `true`
    /// when the keys are now other than `signed_with`, so the call is worth sending again
    /// (also when another call's reread found the change first).
    pub async fn reread(&self, signed_with: &[String]) -> bool {
        if let Some((client, arn)) = &self.source {
            let mut at = self.reread_at.lock().await;
            if at.is_none_or(|t| t.elapsed() >= REREAD_EVERY) {
                *at = Some(Instant::now());
                match read(client, arn).await {
                    Ok(keys) => {
                        if let Ok(mut held) = self.keys.write() {
                            if *held != keys {
                                tracing::info!(secret = %arn, "the signing secret changed; signing with its new keys");
                                *held = keys;
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot read the signing secret again"),
                }
            }
        }
        self.current() != signed_with
    }
}

async fn read(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<Vec<String>, SecretError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| SecretError::Read {
            arn: arn.to_string(),
            detail: error_chain(&e),
        })?;
    let keys = signing_keys(out.secret_string().unwrap_or_default());
    if keys.is_empty() {
        return Err(SecretError::Empty {
            arn: arn.to_string(),
        });
    }
    Ok(keys)
}

/// Every key in a secret string: the plain key, or `current` then `previous` of the
/// rotation JSON. Empty keys are left out.
pub fn signing_keys(secret: &str) -> Vec<String> {
    match serde_json::from_str::<serde_json::Value>(secret) {
        Ok(serde_json::Value::Object(map)) => ["current", "previous"]
            .iter()
            .filter_map(|k| map.get(*k)?.as_str())
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect(),
        _ if secret.is_empty() => Vec::new(),
        _ => vec![secret.to_string()],
    }
}

/// The signing key in a secret string (plain, or `current` of the rotation JSON).
pub fn signing_key(secret: &str) -> Option<String> {
    let key = match serde_json::from_str::<serde_json::Value>(secret) {
        Ok(serde_json::Value::Object(map)) => map.get("current")?.as_str()?.to_string(),
        _ => secret.to_string(),
    };
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_rotation_signs() {
        assert_eq!(signing_keys("abc"), ["abc"]);
        assert_eq!(
            signing_keys(r#"{"current":"new","previous":"old"}"#),
            ["new", "old"]
        );
        assert_eq!(signing_keys(r#"{"current":"new","previous":""}"#), ["new"]);
        assert!(signing_keys("").is_empty());
    }

    #[test]
    fn plain_or_rotating() {
        assert_eq!(signing_key("abc").as_deref(), Some("abc"));
        assert_eq!(
            signing_key(r#"{"current":"new","previous":"old"}"#).as_deref(),
            Some("new")
        );
        assert_eq!(signing_key(""), None);
        assert_eq!(signing_key(r#"{"previous":"old"}"#), None);
    }
}
