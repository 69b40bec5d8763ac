//! Validation of an environment file: account, region, service, and the rules that span
//! all microprocesses (account concurrency, the queue ALB's idle timeout).

use std::sync::Arc;

use microprocess_shared::queue_host::{BaseUrlError, QueueBase};
use toml::Spanned;

use super::checks::{is_kebab_name, Checker, Located};
use super::diagnostic::{Place, SourceFile};
use super::fargate::{fargate_keys_present, validate_fargate};
use super::model::{Microprocess, Service};
use super::raw::{RawEnvironment, RawService};

/// Retention values CloudWatch Logs accepts.
pub const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Unreserved concurrency Lambda insists on keeping per account and region.
pub const UNRESERVED_FLOOR: u32 = 100;

pub struct EnvironmentSettings {
    pub account_id: Option<String>,
    pub region: String,
    pub protected: bool,
    pub architecture: String,
    pub lambda_concurrency_limit: u32,
    pub log_retention_days: u32,
    pub alarm_email: Option<String>,
    pub expires_after_days: Option<u32>,
}

fn loc<T: Clone>(s: &Spanned<T>, file: &Arc<SourceFile>) -> Located<T> {
    Located::from_spanned(s, file)
}

pub fn validate_settings(
    c: &mut Checker,
    raw: &RawEnvironment,
    file: &Arc<SourceFile>,
    host_arch: &str,
) -> EnvironmentSettings {
    if let Some(a) = &raw.account_id {
        let a = loc(a, file);
        if a.value.len() != 12 || !a.value.bytes().all(|b| b.is_ascii_digit()) {
            c.error(&a.place, format!("`account_id` must be 12 digits, got `{}`", a.value), "the CLI refuses to deploy into any other account; copy it from `aws sts get-caller-identity`");
        }
    }
    let region = loc(&raw.region, file);
    if !is_region(&region.value) {
        c.error(
            &region.place,
            format!("`{}` is not an AWS region name", region.value),
            "use a region code such as `eu-west-1` or `ap-southeast-2`",
        );
    }
    let arch = loc(&raw.architecture, file);
    let architecture = match c.choice(&arch, "architecture", &["arm64", "x86_64", "host"]) {
        Some("host") => host_arch.to_string(),
        Some(a) => a.to_string(),
        None => "arm64".to_string(),
    };
    let lambda_concurrency_limit = c.int(
        raw.lambda_concurrency_limit.as_ref().map(|v| loc(v, file)),
        "lambda_concurrency_limit",
        1000,
        UNRESERVED_FLOOR + 2,
        1_000_000,
        "the account's Lambda concurrent executions quota in this region",
    );
    let log_retention_days = match &raw.log_retention_days {
        None => 365,
        Some(v) => {
            let v = loc(v, file);
            match u32::try_from(v.value)
                .ok()
                .filter(|d| LOG_RETENTION_DAYS.contains(d))
            {
                Some(d) => d,
                None => {
                    let nearest = LOG_RETENTION_DAYS
                        .iter()
                        .min_by_key(|d| (i64::from(**d) - v.value).abs())
                        .copied()
                        .unwrap_or(365);
                    c.error(&v.place, format!("`log_retention_days` cannot be `{}`", v.value), format!("CloudWatch Logs takes 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653; nearest is {nearest}"));
                    365
                }
            }
        }
    };
    let alarm_email = raw.alarm_email.as_ref().map(|e| {
        let e = loc(e, file);
        if !e.value.contains('@') || e.value.contains(char::is_whitespace) {
            c.error(
                &e.place,
                format!("`alarm_email` `{}` is not an e-mail address", e.value),
                "alarms go to an SNS topic; this address is subscribed to it",
            );
        }
        e.value
    });
    let protected = *raw.protected.get_ref();
    let expires_after_days = raw.expires_after_days.as_ref().and_then(|v| {
        let v = loc(v, file);
        if protected {
            c.error(
                &v.place,
                "`expires_after_days` is only for unprotected environments",
                "a protected environment never expires; remove the key or set `protected = false`",
            );
            return None;
        }
        c.int_at(
            &v,
            "expires_after_days",
            1,
            90,
            "sandboxes past their expiry are removed by `teardown --expired`",
        )
    });
    EnvironmentSettings {
        account_id: raw.account_id.as_ref().map(|a| a.get_ref().clone()),
        region: region.value,
        protected,
        architecture,
        lambda_concurrency_limit,
        log_retention_days,
        alarm_email,
        expires_after_days,
    }
}

fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    (3..=4).contains(&parts.len())
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

pub fn validate_service(
    c: &mut Checker,
    raw: &Spanned<RawService>,
    file: &Arc<SourceFile>,
    microprocesses: &[Microprocess],
) -> Service {
    let table = Place::new(file, raw.span());
    let raw = raw.get_ref();
    let name = loc(&raw.name, file);
    if !is_kebab_name(&name.value, 20) {
        c.error(
            &name.place,
            format!("`{}` is not a valid service name", name.value),
            "use 2 to 20 lowercase letters, digits and single hyphens, starting with a letter",
        );
    }
    let mode = loc(&raw.mode, file);
    match c.choice(&mode, "service.mode", &["fargate", "external"]) {
        Some("external") => {
            for (key, place) in fargate_keys_present(raw, file) {
                c.error(
                    &place,
                    format!("`service.{key}` only applies to `mode = \"fargate\"`"),
                    "an external service is reached at `queue_base_url`; remove the key",
                );
            }
            let url = match &raw.queue_base_url {
                None => {
                    c.error(&table, "`service` with `mode = \"external\"` has no `queue_base_url`", "add `queue_base_url = \"http://127.0.0.1:8081\"` (loopback) or an https:// URL");
                    String::new()
                }
                Some(u) => {
                    let u = loc(u, file);
                    check_base_url(c, &u);
                    u.value
                }
            };
            Service::External {
                name: name.value,
                queue_base_url: url,
            }
        }
        _ => {
            if let Some(u) = &raw.queue_base_url {
                c.error(
                    &Place::new(file, u.span()),
                    "`service.queue_base_url` only applies to `mode = \"external\"`",
                    "a Fargate service is reached at `https://<queue_host>`; remove the key",
                );
            }
            Service::Fargate(Box::new(validate_fargate(
                c,
                raw,
                &table,
                file,
                name.value,
                microprocesses,
            )))
        }
    }
}

fn check_base_url(c: &mut Checker, u: &Located<String>) {
    let v = &u.value;
    if let Err(error) = QueueBase::parse(v) {
        let hint = match error {
            BaseUrlError::PlainHttpToRemote(..) => {
                "the kit sends only over TLS: use https://, or a loopback address for local runs"
            }
            BaseUrlError::UserInfo(_) => {
                "remove the `user@` part; the service checks the kit's signature instead"
            }
            BaseUrlError::QueryOrFragment(_) => {
                "write `https://host[:port][/prefix]`; the microprocess paths carry the rest"
            }
            _ => "write `https://host[:port][/prefix]` or `http://127.0.0.1:PORT`",
        };
        c.error(&u.place, format!("`queue_base_url` {error}"), hint);
    }
    if v.ends_with('/') {
        c.error(
            &u.place,
            "`queue_base_url` must not end with `/`",
            "the microprocess paths start with `/`",
        );
    }
}

/// Every function's reserved concurrency together must leave the account's floor free.
pub fn check_concurrency(
    c: &mut Checker,
    settings: &EnvironmentSettings,
    raw: &RawEnvironment,
    env_table: &Place,
    file: &Arc<SourceFile>,
    microprocesses: &[Microprocess],
) {
    let reserved: u32 = microprocesses
        .iter()
        .map(|m| {
            m.delivery.reserved_concurrency
                + m.split.reserved_concurrency
                + m.callback_reserved_concurrency().unwrap_or(0)
        })
        .sum();
    let available = settings
        .lambda_concurrency_limit
        .saturating_sub(UNRESERVED_FLOOR);
    if reserved > available {
        let place = raw
            .lambda_concurrency_limit
            .as_ref()
            .map(|l| Place::new(file, l.span()))
            .unwrap_or_else(|| env_table.clone());
        let largest = microprocesses
            .iter()
            .max_by_key(|m| m.delivery.reserved_concurrency)
            .map(|m| format!("`{}` reserves {}", m.name, m.delivery.reserved_concurrency))
            .unwrap_or_default();
        c.error(
            &place,
            format!("the microprocesses reserve {reserved} concurrent executions, but only {available} of the account's {} can be reserved", settings.lambda_concurrency_limit),
            format!("Lambda keeps {UNRESERVED_FLOOR} unreserved; lower `delivery.reserved_concurrency` ({largest}) or set `lambda_concurrency_limit` after a quota increase"),
        );
    }
}
