//! Bounded retries of throttled and conflicting writes, with capped exponential backoff
//! and full jitter.
//!
//! The SDK's own retry layer already retries a few throttling codes a few times; this one
//! adds what it does not cover: a `TransactionCanceledException` whose only reasons are
//! `TransactionConflict` or throttling (two writers of one run record at the same time), a
//! `TransactionConflictException`, and throttling that outlasted the SDK's attempts. A
//! cancellation caused by a failed condition is never retried here: the caller decides.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::Error;

use super::error::{Context, LedgerError};

/// How often and how long to retry a throttled or conflicting call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls made in all, the first included.
    pub max_attempts: u32,
    /// Upper bound of the first wait.
    pub base_delay: Duration,
    /// Upper bound of any wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 8 attempts, waits drawn from 0..25 ms doubling up to 0..2 s: about 4 s at worst.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(25),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The upper bound of the wait after failed attempt `attempt` (1-based):
    /// `min(max_delay, base_delay * 2^(attempt - 1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The longest a call can wait in all before its retries are exhausted: the sum of
    /// the waits' ceilings (the calls' own time not included).
    pub fn worst_case(&self) -> Duration {
        (1..self.max_attempts.max(1))
            .map(|attempt| self.ceiling(attempt))
            .sum()
    }

    /// The wait after failed attempt `attempt`: uniform in `0..=ceiling` ("full jitter"),
    /// drawn from `random`.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let ceiling = u64::try_from(self.ceiling(attempt).as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(random % ceiling.saturating_add(1))
    }
}

/// A random number from the standard library's per-process random hash keys and the clock.
fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    hasher.write_u32(nanos);
    hasher.finish()
}

/// Error codes worth waiting for.
const TRANSIENT_CODES: [&str; 7] = [
    "TransactionConflictException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
];

/// Cancellation reason codes worth waiting for; `None` marks an item that was fine.
const TRANSIENT_REASONS: [&str; 3] = [
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
];

/// A short description of `error` when it is worth retrying, else `None`.
pub(crate) fn transient(error: &Error) -> Option<String> {
    if let Error::TransactionCanceledException(cancelled) = error {
        let codes: Vec<&str> = cancelled
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None"))
            .collect();
        let all_retryable = codes
            .iter()
            .all(|c| *c == "None" || TRANSIENT_REASONS.contains(c));
        let any_retryable = codes.iter().any(|c| TRANSIENT_REASONS.contains(c));
        return (all_retryable && any_retryable)
            .then(|| format!("transaction cancelled: {}", codes.join(", ")));
    }
    let code = error.code()?;
    TRANSIENT_CODES.contains(&code).then(|| code.to_owned())
}

/// A call that did not succeed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// A DynamoDB error not worth retrying (a failed condition, a validation error, ...).
    Service(Box<Error>),
    /// Transient errors outlasted the policy.
    Exhausted { attempts: u32, last: String },
}

impl CallError {
    pub fn into_ledger(self, context: Context) -> LedgerError {
        match self {
            CallError::Service(source) => LedgerError::Dynamo {
                context,
                detail: DisplayErrorContext(&*source).to_string(),
                source,
            },
            CallError::Exhausted { attempts, last } => LedgerError::RetriesExhausted {
                context,
                attempts,
                last,
            },
        }
    }
}

/// Calls `op` until it succeeds, fails for good, or transient failures use up `policy`.
pub(crate) async fn retrying<T, E, F, Fut>(policy: &RetryPolicy, mut op: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<Error>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await.map_err(Into::into) {
            Ok(value) => return Ok(value),
            Err(error) => match transient(&error) {
                Some(last) if attempt >= policy.max_attempts => {
                    return Err(CallError::Exhausted {
                        attempts: attempt,
                        last,
                    })
                }
                Some(last) => {
                    let wait = policy.delay(attempt, random());
                    tracing::debug!(attempt, ?wait, error = %last, "ledger write retried");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(CallError::Service(Box::new(error))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::error::{
        ConditionalCheckFailedException, TransactionCanceledException, TransactionConflictException,
    };
    use aws_sdk_dynamodb::types::CancellationReason;

    fn cancelled(codes: &[&str]) -> Error {
        let mut builder = TransactionCanceledException::builder();
        for code in codes {
            builder =
                builder.cancellation_reasons(CancellationReason::builder().code(*code).build());
        }
        Error::TransactionCanceledException(builder.build())
    }

    #[test]
    fn waits_double_up_to_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.ceiling(1), Duration::from_millis(25));
        assert_eq!(policy.ceiling(2), Duration::from_millis(50));
        assert_eq!(policy.ceiling(7), Duration::from_millis(1600));
        assert_eq!(policy.ceiling(8), Duration::from_secs(2));
        assert_eq!(policy.ceiling(1000), Duration::from_secs(2));
        for random in [0, 1, 12_345, u64::MAX] {
            assert!(policy.delay(3, random) <= policy.ceiling(3));
        }
        assert_eq!(policy.delay(3, 0), Duration::ZERO);
    }

    #[test]
    fn conflicts_and_throttling_are_retried_failed_conditions_are_not() {
        assert!(transient(&cancelled(&["None", "TransactionConflict"])).is_some());
        assert!(transient(&cancelled(&["ThrottlingError", "None"])).is_some());
        assert!(transient(&cancelled(&[
            "ConditionalCheckFailed",
            "TransactionConflict"
        ]))
        .is_none());
        assert!(transient(&cancelled(&["None", "ValidationError"])).is_none());
        assert!(transient(&cancelled(&["None", "None"])).is_none());
        let conflict = Error::TransactionConflictException(
            TransactionConflictException::builder()
                .meta(
                    aws_sdk_dynamodb::error::ErrorMetadata::builder()
                        .code("TransactionConflictException")
                        .build(),
                )
                .build(),
        );
        assert_eq!(
            transient(&conflict).as_deref(),
            Some("TransactionConflictException")
        );
        let condition = Error::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .meta(
                    aws_sdk_dynamodb::error::ErrorMetadata::builder()
                        .code("ConditionalCheckFailedException")
                        .build(),
                )
                .build(),
        );
        assert!(transient(&condition).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_bounded_attempts() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let mut calls = 0;
        let result: Result<(), CallError> = retrying(&policy, || {
            calls += 1;
            async { Err::<(), Error>(cancelled(&["TransactionConflict"])) }
        })
        .await;
        assert!(matches!(
            result,
            Err(CallError::Exhausted { attempts: 3, .. })
        ));
        assert_eq!(calls, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn succeeds_after_a_conflict_and_stops_at_a_failed_condition() {
        let policy = RetryPolicy::default();
        let mut calls = 0;
        let result = retrying(&policy, || {
            calls += 1;
            let call = calls;
            async move {
                if call == 1 {
                    Err::<i32, Error>(cancelled(&["TransactionConflict"]))
                } else {
                    Ok(call)
                }
            }
        })
        .await;
        assert_eq!(result.ok(), Some(2));
        let result: Result<(), CallError> = retrying(&policy, || async {
            Err::<(), Error>(cancelled(&["ConditionalCheckFailed"]))
        })
        .await;
        assert!(matches!(result, Err(CallError::Service(_))));
    }
}
