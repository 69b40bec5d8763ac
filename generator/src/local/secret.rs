//! The signing secret the functions read from Secrets Manager (`SIGNING_SECRET_ARN`),
//! made resolvable in the emulator, whose CloudFormation accepts
//! `AWS::SecretsManager::Secret` without creating it.
//!
//! A function whose `SIGNING_SECRET_ARN` resolves keeps it. Any other one is pointed at
//! the runner's secret, `<prefix>/microprocesses/signing-secret`, created in the emulator
//! when missing. The value is the one given (`--signing-secret`, or
//! `MICROPROCESS_SIGNING_SECRET`, which the demo service also reads), else the stored
//! one, else a fresh random one; the runner prints it, because the service must verify
//! signatures with the same key.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::Client;

use super::discover::FunctionSpec;
use super::{emulator_error, LocalError};

/// The environment variable a function reads its secret's ARN from.
pub const SIGNING_SECRET_ARN: &str = "SIGNING_SECRET_ARN";

/// Where a secret's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--signing-secret` / `MICROPROCESS_SIGNING_SECRET`.
    Given,
    /// Already stored in the emulator.
    Stored,
    /// Made up by the runner.
    Generated,
}

/// A secret the functions sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningSecret {
    pub arn: String,
    /// The secret string (a key, or the rotation JSON).
    pub value: String,
    pub origin: Origin,
    /// The functions that read it.
    pub functions: Vec<String>,
}

/// The secrets in use, and `SIGNING_SECRET_ARN` for the functions that need another one.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub secrets: Vec<SigningSecret>,
    /// Function name → the ARN it gets instead of its own.
    pub overrides: BTreeMap<String, String>,
}

/// Makes every function's signing secret resolvable; see the module documentation.
pub async fn resolve(
    client: &Client,
    functions: &[FunctionSpec],
    given: Option<&str>,
    runner_secret_name: &str,
) -> Result<Resolution, LocalError> {
    let mut by_arn: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in functions {
        if let Some(arn) = f.environment.get(SIGNING_SECRET_ARN) {
            by_arn.entry(arn.clone()).or_default().push(f.name.clone());
        }
    }
    let mut resolution = Resolution::default();
    let mut orphans = Vec::new();
    for (arn, names) in by_arn {
        match stored_value(client, &arn).await {
            Some((arn, stored)) => {
                let (value, origin) = match given {
                    Some(given) if given != stored => {
                        put(client, &arn, given).await?;
                        (given.to_string(), Origin::Given)
                    }
                    Some(given) => (given.to_string(), Origin::Given),
                    None => (stored, Origin::Stored),
                };
                resolution.secrets.push(SigningSecret {
                    arn,
                    value,
                    origin,
                    functions: names,
                });
            }
            None => orphans.extend(names),
        }
    }
    if orphans.is_empty() {
        return Ok(resolution);
    }
    let (arn, value, origin) = match stored_value(client, runner_secret_name).await {
        Some((arn, stored)) => match given {
            Some(given) if given != stored => {
                put(client, &arn, given).await?;
                (arn, given.to_string(), Origin::Given)
            }
            Some(given) => (arn, given.to_string(), Origin::Given),
            None => (arn, stored, Origin::Stored),
        },
        None => {
            let (value, origin) = match given {
                Some(given) => (given.to_string(), Origin::Given),
                None => (generate(), Origin::Generated),
            };
            let created = client
                .create_secret()
                .name(runner_secret_name)
                .description("Signing secret of the local runner's functions")
                .secret_string(&value)
                .send()
                .await
                .map_err(|e| {
                    emulator_error(
                        &format!("create the signing secret `{runner_secret_name}`"),
                        &e,
                    )
                })?;
            (created.arn().unwrap_or_default().to_string(), value, origin)
        }
    };
    for name in &orphans {
        resolution.overrides.insert(name.clone(), arn.clone());
    }
    resolution.secrets.push(SigningSecret {
        arn,
        value,
        origin,
        functions: orphans,
    });
    Ok(resolution)
}

/// The ARN and value of secret `id`, when the emulator has it.
async fn stored_value(client: &Client, id: &str) -> Option<(String, String)> {
    let out = client.get_secret_value().secret_id(id).send().await.ok()?;
    Some((
        out.arn().unwrap_or(id).to_string(),
        out.secret_string()?.to_string(),
    ))
}

async fn put(client: &Client, arn: &str, value: &str) -> Result<(), LocalError> {
    client
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value)
        .send()
        .await
        .map_err(|e| emulator_error(&format!("store the given signing secret in `{arn}`"), &e))?;
    Ok(())
}

/// 48 random letters and digits.
fn generate() -> String {
    (0..48).map(|_| fastrand::alphanumeric()).collect()
}
