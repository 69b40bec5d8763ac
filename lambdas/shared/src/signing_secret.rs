//! The environment's signing secret, read once per process from Secrets Manager.
//!
//! The secret string is either the key itself or, during a rotation, JSON
//! `{"current": "...", "previous": "..."}`: the kit signs with `current`, and services
//! accept either until the roll is over.

use thiserror::Error;

use crate::errors::error_chain;

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("cannot read the signing secret `{arn}`: {detail}")]
    Read { arn: String, detail: String },
    #[error("the signing secret `{arn}` is empty")]
    Empty { arn: String },
}

/// The key to sign with.
pub async fn fetch(config: &aws_config::SdkConfig, arn: &str) -> Result<String, SecretError> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| SecretError::Read {
            arn: arn.to_string(),
            detail: error_chain(&e),
        })?;
    signing_key(out.secret_string().unwrap_or_default()).ok_or(SecretError::Empty {
        arn: arn.to_string(),
    })
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
