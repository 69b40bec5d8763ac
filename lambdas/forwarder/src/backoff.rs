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
/// `u64` (the caller draws it), which keeps this function pure. A `Retry-After` is
/// honoured up to `max_retry_after` (and SQS's 12 hours): a longer one is capped, not
/// ignored.
pub fn delay(
    base: Duration,
    attempt: u32,
    retry_after: Option<Duration>,
    max_retry_after: Duration,
    random: u64,
) -> Duration {
    if let Some(asked) = retry_after {
        return asked.min(max_retry_after).min(MAX_VISIBILITY);
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

/// Time allowed between SQS's receive of a batch and the forwarder's start: the 12 hours
/// of visibility a receive allows began before the forwarder could see the clock.
pub const RECEIVE_MARGIN: Duration = Duration::from_secs(30);

/// Whole seconds for `ChangeMessageVisibility`, rounded up so a wait is never shortened,
/// and capped so the message's visibility never passes 12 hours from its receive: SQS
/// refuses a change past that (`InvalidParameterValue`), and the message would then come
/// back after the queue's visibility timeout instead of the wait asked for. `elapsed` is
/// how long the forwarder has held the batch.
pub fn visibility_seconds(wait: Duration, elapsed: Duration) -> i32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let left = MAX_VISIBILITY.saturating_sub(elapsed + RECEIVE_MARGIN);
    secs.min(left.as_secs()) as i32
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
                let d = delay(base, attempt, None, MAX_VISIBILITY, random);
                assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
            }
        }
        assert_eq!(delay(base, 1000, None, MAX_VISIBILITY, 0), MAX_BACKOFF / 2);
    }

    #[test]
    fn retry_after_wins_up_to_the_sqs_cap() {
        let base = Duration::from_secs(2);
        assert_eq!(
            delay(base, 1, Some(Duration::from_secs(60)), MAX_VISIBILITY, 7),
            Duration::from_secs(60)
        );
        assert_eq!(
            delay(
                base,
                1,
                Some(Duration::from_secs(90_000)),
                MAX_VISIBILITY,
                7
            ),
            MAX_VISIBILITY
        );
    }

    #[test]
    fn visibility_rounds_up() {
        let now = Duration::ZERO;
        assert_eq!(visibility_seconds(Duration::from_millis(1500), now), 2);
        assert_eq!(visibility_seconds(Duration::from_secs(3), now), 3);
    }

    #[test]
    fn retry_after_is_capped_at_the_configured_longest() {
        let asked = Some(Duration::from_secs(7_200));
        let cap = Duration::from_secs(3_600);
        assert_eq!(delay(Duration::from_secs(2), 1, asked, cap, 0), cap);
    }

    #[test]
    fn a_wait_past_twelve_hours_from_the_receive_is_capped_not_refused() {
        // A `Retry-After` of a day, answered 20 s into the batch: SQS allows 12 hours from
        // its receive, which was before the forwarder started.
        let asked = delay(
            Duration::from_secs(2),
            1,
            Some(Duration::from_secs(86_400)),
            MAX_VISIBILITY,
            0,
        );
        let seconds = visibility_seconds(asked, Duration::from_secs(20));
        assert_eq!(seconds, 43_200 - 20 - 30);
        assert_eq!(
            visibility_seconds(Duration::from_secs(100_000), Duration::ZERO),
            43_170
        );
        // Short waits are untouched.
        assert_eq!(
            visibility_seconds(Duration::from_secs(60), Duration::from_secs(20)),
            60
        );
    }
}
