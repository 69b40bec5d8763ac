//! Each function runs as its own execution role, as in Lambda.
//!
//! Lambda hands a function the credentials of a session of its execution role; so does
//! the runner: it assumes each function's role (STS `AssumeRole`, as the emulator's
//! administrator, which stands in for the Lambda service a Lambda role trusts) with the
//! function's name as the session name, and gives the function those credentials. The
//! emulator then holds every request of the function to the role's policies. What Lambda
//! itself does with the role, polling the mapped queue and sending failed asynchronous
//! events to the dead-letter queue, the runner does with the same credentials.

use aws_config::SdkConfig;
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};

use super::discover::FunctionSpec;
use super::{emulator_error, LocalError};

/// A session of a function's role.
#[derive(Debug, Clone)]
pub struct RoleSession {
    pub role_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl RoleSession {
    /// The variables Lambda sets for these credentials.
    pub fn environment(&self) -> [(&'static str, String); 3] {
        [
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_SESSION_TOKEN", self.session_token.clone()),
        ]
    }

    /// `sdk` signing as this session.
    pub fn sdk_config(&self, sdk: &SdkConfig) -> SdkConfig {
        sdk.to_builder()
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                self.access_key_id.clone(),
                self.secret_access_key.clone(),
                Some(self.session_token.clone()),
                None,
                "microprocess-local-role",
            )))
            .build()
    }
}

/// The role's name in its ARN (`arn:aws:iam::123456789012:role/path/name` → `name`).
pub fn role_name(role_arn: &str) -> &str {
    role_arn.rsplit('/').next().unwrap_or(role_arn)
}

/// Assumes the execution role of `function`.
pub async fn assume(
    sts: &aws_sdk_sts::Client,
    function: &FunctionSpec,
) -> Result<RoleSession, LocalError> {
    let session = sts
        .assume_role()
        .role_arn(&function.role)
        .role_session_name(session_name(&function.name))
        .duration_seconds(43_200)
        .send()
        .await
        .map_err(|e| {
            emulator_error(
                &format!(
                    "assume `{}`, the execution role of `{}` (STS AssumeRole)",
                    function.role, function.name
                ),
                &e,
            )
        })?;
    let credentials = session.credentials().ok_or_else(|| LocalError::Emulator {
        action: format!("assume `{}` (STS AssumeRole)", function.role),
        detail: "the answer holds no credentials".into(),
    })?;
    Ok(RoleSession {
        role_arn: function.role.clone(),
        access_key_id: credentials.access_key_id().to_string(),
        secret_access_key: credentials.secret_access_key().to_string(),
        session_token: credentials.session_token().to_string(),
    })
}

/// STS session names are at most 64 characters of `[\w+=,.@-]`.
fn session_name(function: &str) -> String {
    function
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/scores-local-fwd"),
            "scores-local-fwd"
        );
        assert_eq!(role_name("arn:aws:iam::123456789012:role/a/b/c"), "c");
        assert_eq!(
            session_name("scores-local-credit-scores-forwarder"),
            "scores-local-credit-scores-forwarder"
        );
        assert_eq!(session_name(&"x".repeat(80)).len(), 64);
        assert_eq!(session_name("a b"), "a-b");
    }
}
