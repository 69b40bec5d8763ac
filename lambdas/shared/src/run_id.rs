//! Run ids.
//!
//! A run id travels in DynamoDB keys (`RUN#<name>#<run>`), in HTTP headers
//! (`X-Microprocess-Run`), in idempotency keys (`<run>/<seq>`) and possibly in URLs and
//! object keys, so it is limited to `[A-Za-z0-9._-]`, 1 to 64 characters, starting with
//! a letter or a digit (which rules out `.` and `..`).
//!
//! A scheduled run's id is derived from its schedule time alone, so a repeated delivery
//! of one schedule event (EventBridge and async-invoke retries) names the same run and
//! never starts a second one.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A validated run id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

/// Why a run id or a schedule time was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RunIdError {
    #[error("run id is empty; use 1 to 64 letters, digits, `.`, `_` or `-`")]
    Empty,
    #[error("run id is {len} characters long; use at most 64 letters, digits, `.`, `_` or `-`")]
    TooLong { len: usize },
    #[error(
        "run id `{id}` contains {found:?} at position {index}; \
         use only letters, digits, `.`, `_` or `-`"
    )]
    BadCharacter {
        id: String,
        found: char,
        index: usize,
    },
    #[error("run id `{id}` starts with {found:?}; start it with a letter or a digit")]
    BadStart { id: String, found: char },
    #[error(
        "schedule time `{value}` is not an RFC 3339 timestamp ({reason}); \
         expected something like `2026-11-01T02:00:00Z`"
    )]
    BadScheduleTime { value: String, reason: String },
    #[error("schedule time is in the year {year}; only the years 0 to 9999 make a run id")]
    ScheduleYearOutOfRange { year: i32 },
}

impl RunId {
    /// The longest run id accepted.
    pub const MAX_LEN: usize = 64;

    /// Validates a run id given by hand (a manual start, a CLI argument, a header).
    pub fn parse(id: &str) -> Result<RunId, RunIdError> {
        let Some(first) = id.chars().next() else {
            return Err(RunIdError::Empty);
        };
        // Counted in characters so a long non-ASCII id reports its length, not a byte
        // position; any non-ASCII character is rejected below anyway.
        let len = id.chars().count();
        if len > Self::MAX_LEN {
            return Err(RunIdError::TooLong { len });
        }
        if let Some((index, found)) = id.char_indices().find(|(_, c)| !is_run_id_char(*c)) {
            return Err(RunIdError::BadCharacter {
                id: id.to_owned(),
                found,
                index,
            });
        }
        if !first.is_ascii_alphanumeric() {
            return Err(RunIdError::BadStart {
                id: id.to_owned(),
                found: first,
            });
        }
        Ok(RunId(id.to_owned()))
    }

    /// The run id of the run scheduled at `time`, such as `2026-11-01T02-00-00Z`.
    ///
    /// Fractions of a second are dropped: EventBridge schedule times are whole seconds,
    /// and a retry of one delivery carries the same `time`.
    pub fn from_schedule_time(time: DateTime<Utc>) -> Result<RunId, RunIdError> {
        let year = time.year();
        if !(0..=9999).contains(&year) {
            return Err(RunIdError::ScheduleYearOutOfRange { year });
        }
        Ok(RunId(time.format("%Y-%m-%dT%H-%M-%SZ").to_string()))
    }

    /// Like [`RunId::from_schedule_time`], from the RFC 3339 text of an event's `time`
    /// field; an offset other than `Z` is converted to UTC first.
    pub fn from_schedule_time_str(value: &str) -> Result<RunId, RunIdError> {
        let time =
            DateTime::parse_from_rfc3339(value).map_err(|error| RunIdError::BadScheduleTime {
                value: value.to_owned(),
                reason: error.to_string(),
            })?;
        Self::from_schedule_time(time.with_timezone(&Utc))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_run_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RunId {
    type Err = RunIdError;

    fn from_str(id: &str) -> Result<RunId, RunIdError> {
        RunId::parse(id)
    }
}

impl AsRef<str> for RunId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RunId {
    type Error = RunIdError;

    fn try_from(id: String) -> Result<RunId, RunIdError> {
        RunId::parse(&id)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedule_time_gives_a_key_safe_id() {
        let time = Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 0).unwrap();
        let run = RunId::from_schedule_time(time).unwrap();
        assert_eq!(run.as_str(), "2026-11-01T02-00-00Z");
        assert_eq!(RunId::parse(run.as_str()).unwrap(), run);
    }

    #[test]
    fn schedule_time_text_is_converted_to_utc_and_seconds() {
        let run = RunId::from_schedule_time_str("2026-11-01T03:00:00.750+01:00").unwrap();
        assert_eq!(run.as_str(), "2026-11-01T02-00-00Z");
    }

    #[test]
    fn the_same_schedule_time_gives_the_same_id() {
        let a = RunId::from_schedule_time_str("2026-11-01T02:00:00Z").unwrap();
        let b = RunId::from_schedule_time_str("2026-11-01T02:00:00Z").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_schedule_time_names_the_value() {
        let error = RunId::from_schedule_time_str("yesterday").unwrap_err();
        assert!(matches!(error, RunIdError::BadScheduleTime { .. }));
        assert!(error
            .to_string()
            .starts_with("schedule time `yesterday` is not an RFC 3339"));
    }

    #[test]
    fn years_past_9999_are_rejected() {
        let time = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            RunId::from_schedule_time(time),
            Err(RunIdError::ScheduleYearOutOfRange { year: 10000 })
        );
    }

    #[test]
    fn manual_ids_accept_the_charset() {
        for id in [
            "a",
            "rerun-2026-11-01",
            "Backfill_1.2",
            "0",
            &"x".repeat(64),
        ] {
            assert_eq!(RunId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn manual_ids_reject_empty_long_and_odd_characters() {
        assert_eq!(RunId::parse(""), Err(RunIdError::Empty));
        assert_eq!(
            RunId::parse(&"x".repeat(65)),
            Err(RunIdError::TooLong { len: 65 })
        );
        for (id, found, index) in [
            ("a b", ' ', 1),
            ("a/b", '/', 1),
            ("a#b", '#', 1),
            ("run\n", '\n', 3),
            ("é", 'é', 0),
        ] {
            assert_eq!(
                RunId::parse(id),
                Err(RunIdError::BadCharacter {
                    id: id.to_owned(),
                    found,
                    index
                }),
                "{id:?}"
            );
        }
        assert!(matches!(
            RunId::parse(".."),
            Err(RunIdError::BadStart { .. })
        ));
        assert!(matches!(
            RunId::parse("-x"),
            Err(RunIdError::BadStart { .. })
        ));
    }

    #[test]
    fn error_messages_name_the_fix() {
        assert_eq!(
            RunId::parse("a b").unwrap_err().to_string(),
            "run id `a b` contains ' ' at position 1; use only letters, digits, `.`, `_` or `-`"
        );
    }

    #[test]
    fn serde_validates() {
        let run: RunId = serde_json::from_str("\"2026-11-01T02-00-00Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&run).unwrap(),
            "\"2026-11-01T02-00-00Z\""
        );
        assert!(serde_json::from_str::<RunId>("\"a b\"").is_err());
    }
}
