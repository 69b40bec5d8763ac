//! How long a message waits before its next attempt: exponential with jitter, or what
//! the service asked for with `Retry-After`.

use std::time::Duration;

/// SQS caps a message's visibility timeout at 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);
/// Longest computed wait between two attempts; a `Retry-After` may ask for more.
pub const MAX_BACKOFF: Duration = Duration::from_secs(900);

/// The wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed.
///
/// `base × 2^(attempt-1)`, capped, then "equal jitter": a random point in the upper half,
/// so retries of a burst spread out but none comes back immediately. `random` is any
/// `u64` (the caller draws it), which keeps this function pure.
pub fn delay(base: Duration, attempt: u32, retry_after: Option<Duration>, random: u64) -> Duration {
    if let Some(asked) = retry_after {
        return asked.min(MAX_VISIBILITY);
    }
    let exponent = attempt.saturating_sub(1).min(20);
    let ceiling = base.saturating_mul(1 << exponent).min(MAX_BACKOFF);
    let half = ceiling / 2;
    let spread = (ceiling - half).as_millis() as u64;
    let jitter = if spread == 0 {
        0
    } else {
        random % (spread + 1)
    };
    half + Duration::from_millis(jitter)
}

/// Whole seconds for `ChangeMessageVisibility`, rounded up so a wait is never shortened.
pub fn visibility_seconds(wait: Duration) -> i32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.min(MAX_VISIBILITY.as_secs()) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_caps() {
        let base = Duration::from_secs(2);
        for attempt in 1..=12 {
            let ceiling = (base * 2u32.pow(attempt - 1)).min(MAX_BACKOFF);
            for random in [0, 1, 12_345, u64::MAX] {
                let d = delay(base, attempt, None, random);
                assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
            }
        }
        assert_eq!(delay(base, 1000, None, 0), MAX_BACKOFF / 2);
    }

    #[test]
    fn retry_after_wins_up_to_the_sqs_cap() {
        let base = Duration::from_secs(2);
        assert_eq!(
            delay(base, 1, Some(Duration::from_secs(60)), 7),
            Duration::from_secs(60)
        );
        assert_eq!(
            delay(base, 1, Some(Duration::from_secs(90_000)), 7),
            MAX_VISIBILITY
        );
    }

    #[test]
    fn visibility_rounds_up() {
        assert_eq!(visibility_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(visibility_seconds(Duration::from_secs(3)), 3);
        assert_eq!(visibility_seconds(Duration::from_secs(100_000)), 43_200);
    }
}
