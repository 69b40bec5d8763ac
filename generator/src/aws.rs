//! One SDK configuration for the whole CLI.
//!
//! Credentials come from the standard chain (environment, `AWS_PROFILE`, SSO, web identity,
//! container or instance role), the endpoint from `AWS_ENDPOINT_URL` when set. The region is
//! the environment's own: a stack belongs where its environment file says. Two guards run
//! before anything is touched: the `local` environment only ever talks to a loopback
//! endpoint (the emulator), and an environment that pins `account_id` is only deployed into
//! that account, checked with STS `GetCallerIdentity`.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::Credentials;
use aws_sdk_sts::error::DisplayErrorContext;
use thiserror::Error;

/// The environment whose stacks go to the local emulator.
pub const LOCAL_ENVIRONMENT: &str = "local";

/// Whether an environment deploys to the local emulator: `local` and its sandboxes
/// (`local-NAME`, from `--env local --sandbox NAME`). Such an environment only talks to a
/// loopback endpoint and renders the templates the emulator takes.
pub fn is_local(env: &str) -> bool {
    env == LOCAL_ENVIRONMENT
        || env
            .strip_prefix(LOCAL_ENVIRONMENT)
            .is_some_and(|rest| rest.starts_with('-'))
}

#[derive(Debug, Error)]
pub enum AwsError {
    #[error("the `local` environment deploys to the emulator, but `AWS_ENDPOINT_URL` is not set\n  hint: run `make emulator-start`, then `export AWS_ENDPOINT_URL=http://127.0.0.1:5000`")]
    NoLocalEndpoint,
    #[error("the `local` environment only talks to a loopback endpoint, not `{url}`\n  hint: point `AWS_ENDPOINT_URL` at the emulator, e.g. `http://127.0.0.1:5000` (`make emulator-start`)")]
    NotLoopback { url: String },
    #[error("cannot tell who the credentials belong to (STS GetCallerIdentity at {place}): {detail}\n  hint: {hint}")]
    Identity {
        place: String,
        detail: String,
        hint: String,
    },
    #[error("environment `{env}` is pinned to account `{expected}`, but the credentials are for account `{actual}`\n  hint: switch credentials (`AWS_PROFILE`) to account {expected}; the kit never deploys an environment into another account")]
    WrongAccount {
        env: String,
        expected: String,
        actual: String,
    },
}

impl AwsError {
    /// Errors the user must resolve on purpose, as opposed to a failed call.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, AwsError::Identity { .. })
    }
}

/// Where and as whom the CLI acts.
#[derive(Debug, Clone)]
pub struct Aws {
    pub config: SdkConfig,
    /// The account the credentials belong to.
    pub account: String,
    pub region: String,
    /// `AWS_ENDPOINT_URL`, when set (the emulator).
    pub endpoint: Option<String>,
}

/// The access key of the emulator's administrator (`tools/moto_kit/iam.py` creates it).
pub const LOCAL_ADMIN_ACCESS_KEY_ID: &str = "AKIAKITLOCALADMIN000";
/// Its secret.
pub const LOCAL_ADMIN_SECRET_ACCESS_KEY: &str = "kit-local-admin-secret";

/// The credentials of the emulator's administrator.
pub fn local_admin_credentials() -> Credentials {
    Credentials::new(
        LOCAL_ADMIN_ACCESS_KEY_ID,
        LOCAL_ADMIN_SECRET_ACCESS_KEY,
        None,
        None,
        "microprocess-local-admin",
    )
}

/// What the process environment says, read once so tests can pass their own.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub access_key_id: Option<String>,
}

impl Settings {
    pub fn from_process() -> Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Settings {
            endpoint_url: var("AWS_ENDPOINT_URL"),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            profile: var("AWS_PROFILE"),
            access_key_id: var("AWS_ACCESS_KEY_ID"),
        }
    }
}

/// Builds the SDK configuration for environment `env` in `region` and checks the account.
/// `notes` receives remarks worth showing (an ignored `AWS_REGION`).
pub async fn connect(
    env: &str,
    region: &str,
    account_pin: Option<&str>,
    settings: &Settings,
    notes: &mut Vec<String>,
) -> Result<Aws, AwsError> {
    let local = is_local(env);
    if local {
        match &settings.endpoint_url {
            None => return Err(AwsError::NoLocalEndpoint),
            Some(url) if !is_loopback_url(url) => {
                return Err(AwsError::NotLoopback { url: url.clone() })
            }
            Some(_) => {}
        }
    }
    if let Some(r) = &settings.region {
        if r != region {
            notes.push(format!(
                "`AWS_REGION={r}` is ignored: environment `{env}` lives in `{region}`"
            ));
        }
    }
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_string()));
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    // The emulator enforces IAM: the local environment is deployed and operated as the
    // administrator the emulator creates at its start (`tools/moto_kit/iam.py`), whatever
    // the shell's credentials say.
    if local {
        if settings.access_key_id.is_some() || settings.profile.is_some() {
            notes.push(
                "the shell's AWS credentials are not used for `local`: the emulator's administrator is"
                    .to_string(),
            );
        }
        loader = loader.credentials_provider(local_admin_credentials());
    }
    let config = loader.load().await;

    let place = settings
        .endpoint_url
        .clone()
        .unwrap_or_else(|| format!("region {region}"));
    let identity = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::Identity {
            place: place.clone(),
            detail: DisplayErrorContext(&e).to_string(),
            hint: if local {
                "is the emulator running? `make emulator-start`".into()
            } else {
                "sign in (`aws sso login`), or set `AWS_PROFILE` or the `AWS_ACCESS_KEY_ID` pair"
                    .into()
            },
        })?;
    let account = identity.account().unwrap_or_default().to_string();
    if let Some(expected) = account_pin {
        if expected != account {
            return Err(AwsError::WrongAccount {
                env: env.to_string(),
                expected: expected.to_string(),
                actual: account,
            });
        }
    }
    Ok(Aws {
        config,
        account,
        region: region.to_string(),
        endpoint: settings.endpoint_url.clone(),
    })
}

/// Whether `url` is `http(s)://` to 127.0.0.0/8, `localhost` or `[::1]`.
pub fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, tail)) if tail.is_empty() || tail.starts_with(':') => h,
            _ => return false,
        }
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_its_sandboxes_deploy_to_the_emulator() {
        assert!(is_local("local"));
        assert!(is_local("local-alice"));
        assert!(!is_local("localhost"));
        assert!(!is_local("sandbox-local"));
        assert!(!is_local("dev"));
    }

    #[test]
    fn loopback_urls() {
        for ok in [
            "http://127.0.0.1:5000",
            "http://127.0.0.1:5000/",
            "http://127.1.2.3",
            "http://localhost:4566",
            "https://LOCALHOST",
            "http://[::1]:5000",
        ] {
            assert!(is_loopback_url(ok), "{ok}");
        }
        for bad in [
            "https://sqs.us-east-1.amazonaws.com",
            "http://10.0.0.1:5000",
            "http://127.0.0.1.example.com",
            "http://localhost.example.com:5000",
            "http://user@127.0.0.1:5000",
            "ftp://127.0.0.1",
            "127.0.0.1:5000",
            "http://[::2]:5000",
        ] {
            assert!(!is_loopback_url(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn local_needs_a_loopback_endpoint() {
        let mut notes = Vec::new();
        let none = connect("local", "us-east-1", None, &Settings::default(), &mut notes).await;
        assert!(matches!(none, Err(AwsError::NoLocalEndpoint)));
        let remote = Settings {
            endpoint_url: Some("https://cloudformation.us-east-1.amazonaws.com".into()),
            ..Settings::default()
        };
        let err = connect("local", "us-east-1", None, &remote, &mut notes)
            .await
            .unwrap_err();
        assert!(err.is_refusal());
        assert!(err
            .to_string()
            .contains("only talks to a loopback endpoint"));
    }
}
