//! JSON logs for Lambda.
//!
//! One JSON object per line on stdout (which Lambda sends to CloudWatch Logs), without
//! ANSI colours, with the level, the target and the fields of the event and its spans.
//! The filter comes from `RUST_LOG` (such as `info` or `forwarder=debug,info`), else
//! from Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber. Calling it again (tests, a second `main`) does nothing.
pub fn init() {
    let _already_installed = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter_from(
            std::env::var("RUST_LOG").ok(),
            std::env::var("AWS_LAMBDA_LOG_LEVEL").ok(),
        ))
        .with_ansi(false)
        .with_target(true)
        .with_level(true)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .try_init();
}

/// The filter for the given `RUST_LOG` and `AWS_LAMBDA_LOG_LEVEL`; a value that does not
/// parse falls through to the next one rather than silencing the function.
fn filter_from(rust_log: Option<String>, lambda_level: Option<String>) -> EnvFilter {
    [
        rust_log,
        lambda_level.map(|level| level.to_ascii_lowercase()),
    ]
    .into_iter()
    .flatten()
    .filter(|directives| !directives.trim().is_empty())
    .find_map(|directives| EnvFilter::try_new(directives).ok())
    .unwrap_or_else(|| EnvFilter::new("info"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_then_lambda_level_then_info() {
        assert_eq!(
            filter_from(Some("debug".into()), Some("ERROR".into())).to_string(),
            "debug"
        );
        assert_eq!(filter_from(None, Some("WARN".into())).to_string(), "warn");
        assert_eq!(filter_from(Some(String::new()), None).to_string(), "info");
        assert_eq!(filter_from(None, None).to_string(), "info");
    }

    #[test]
    fn bad_directives_fall_through() {
        assert_eq!(
            filter_from(Some("[[[".into()), Some("ERROR".into())).to_string(),
            "error"
        );
    }

    #[test]
    fn init_twice_is_harmless() {
        init();
        init();
        tracing::info!(check = true, "logging initialised");
    }
}
