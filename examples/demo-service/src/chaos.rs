//! The chaos knobs: how the service misbehaves, on purpose, so the kit's retry, timeout,
//! dead-letter and redrive paths can be tested against a real HTTP service. The
//! `*_report_seqs` knobs spoil the reports of long tasks (contract 1.1, section 2b; see
//! [`crate::long_task`]): lost, duplicated, late, or first signed with a wrong key.
//!
//! One struct is both the binary's flags (with their environment variables) and the JSON
//! that `PUT /_demo/chaos` takes, so the two cannot drift. Every random choice is a hash
//! of the seed and what it is about (run, seq, attempt), never a shared generator, so a
//! scenario replays the same way whatever the order or concurrency of the calls.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::score::{fnv1a, mix};

/// How the process, reduce and split endpoints misbehave. The default misbehaves in no
/// way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Chaos {
    /// Seed of every random choice below.
    #[arg(long, env = "DEMO_SEED", default_value_t = 0)]
    pub seed: u64,

    /// Fraction (0 to 1) of process attempts answered with a 5xx (500, 502, 503 or 504),
    /// drawn per run, seq and attempt.
    #[arg(long = "fail-rate-5xx", env = "DEMO_FAIL_RATE_5XX", default_value_t = 0.0, value_parser = parse_fraction)]
    pub fail_rate_5xx: f64,

    /// Seqs answered 422 on every attempt until `POST /_demo/fix`: a list such as
    /// `3,7,10-12`, or a fraction of all seqs such as `0.01`.
    #[arg(long = "fail-seqs-4xx", env = "DEMO_FAIL_SEQS_4XX", default_value_t)]
    pub fail_seqs_4xx: SeqSelector,

    /// Answer process calls 429 with `Retry-After` for this many seconds: from the run's
    /// first request, or, with `--retry-after-seqs`, from each listed seq's first call.
    /// 0 turns it off.
    #[arg(long = "retry-after", env = "DEMO_RETRY_AFTER", default_value_t = 0)]
    pub retry_after: u64,

    /// The seqs `--retry-after` applies to (a list or a fraction); none means every
    /// process call in the run's first seconds.
    #[arg(
        long = "retry-after-seqs",
        env = "DEMO_RETRY_AFTER_SEQS",
        default_value_t
    )]
    pub retry_after_seqs: SeqSelector,

    /// Delay before every process answer, in milliseconds.
    #[arg(long = "delay-ms", env = "DEMO_DELAY_MS", default_value_t = 0)]
    pub delay_ms: u64,

    /// Seqs answered only after `--slow-ms` (a list or a fraction), to outlast the
    /// caller's timeout.
    #[arg(long = "slow-seqs", env = "DEMO_SLOW_SEQS", default_value_t)]
    pub slow_seqs: SeqSelector,

    /// Delay of a slow seq, in milliseconds.
    #[arg(long = "slow-ms", env = "DEMO_SLOW_MS", default_value_t = DEFAULT_SLOW_MS)]
    pub slow_ms: u64,

    /// A slow seq is slow on attempts 1 to N only, so a retry can succeed; unset: on
    /// every attempt.
    #[arg(long = "slow-attempts", env = "DEMO_SLOW_ATTEMPTS")]
    pub slow_attempts: Option<u32>,

    /// A slow seq does its work and records its answer at once, and only the answer
    /// waits `--slow-ms`: a caller that gives up first finds the work done (a replay)
    /// when it comes back. Off: the work waits too, and a caller that gives up cancels it.
    #[arg(long = "late-answers", env = "DEMO_LATE_ANSWERS")]
    pub late_answers: bool,

    /// The first K reduce calls of each run are answered 503.
    #[arg(
        long = "reduce-failures",
        env = "DEMO_REDUCE_FAILURES",
        default_value_t = 0
    )]
    pub reduce_failures: u32,

    /// The first K split calls of each run are answered 500.
    #[arg(
        long = "split-failures",
        env = "DEMO_SPLIT_FAILURES",
        default_value_t = 0
    )]
    pub split_failures: u32,

    /// Fraction (0 to 1) of process attempts answered 200 with a body that is not JSON,
    /// drawn per run, seq and attempt.
    #[arg(long = "garbage-rate", env = "DEMO_GARBAGE_RATE", default_value_t = 0.0, value_parser = parse_fraction)]
    pub garbage_rate: f64,

    /// Seqs whose result carries `--large-result-bytes` of detail (a list or a fraction),
    /// to exercise results stored in the bucket rather than the ledger.
    #[arg(
        long = "large-result-seqs",
        env = "DEMO_LARGE_RESULT_SEQS",
        default_value_t
    )]
    pub large_result_seqs: SeqSelector,

    /// Size of the detail a large result carries, in bytes.
    #[arg(long = "large-result-bytes", env = "DEMO_LARGE_RESULT_BYTES", default_value_t = DEFAULT_LARGE_RESULT_BYTES)]
    pub large_result_bytes: usize,

    /// Seqs whose item id ends in U+FFFF, a character SQS cannot carry (a list or a
    /// fraction): the kit must fail them as children and split on.
    #[arg(
        long = "uncarriable-seqs",
        env = "DEMO_UNCARRIABLE_SEQS",
        default_value_t
    )]
    pub uncarriable_seqs: SeqSelector,

    /// Seqs answered 422 with a raw text body full of control bytes and terminal escape
    /// sequences (a list or a fraction), as a hostile or broken service might.
    #[arg(
        long = "hostile-error-seqs",
        env = "DEMO_HOSTILE_ERROR_SEQS",
        default_value_t
    )]
    pub hostile_error_seqs: SeqSelector,

    /// Every split page carries one item more than `limit` asked for (a malformed page).
    #[arg(long = "split-overfill", env = "DEMO_SPLIT_OVERFILL")]
    pub split_overfill: bool,

    /// Pad every `next` cursor to this many bytes (0: no padding); over 4 KiB the page is
    /// malformed.
    #[arg(long = "cursor-bytes", env = "DEMO_CURSOR_BYTES", default_value_t = 0)]
    pub cursor_bytes: usize,

    /// Long tasks only: attempt 1 of these seqs (a list or a fraction) sends no report at
    /// all, not even a heartbeat, and its work is lost, so the kit's lease runs out and
    /// it calls again; later attempts report normally.
    #[arg(
        long = "lost-report-seqs",
        env = "DEMO_LOST_REPORT_SEQS",
        default_value_t
    )]
    pub lost_report_seqs: SeqSelector,

    /// Long tasks only: these seqs (a list or a fraction) send their `succeeded` report
    /// twice, then a third report with outcome `failed` (reason "changed my mind"); the
    /// kit must count only the first.
    #[arg(
        long = "duplicate-report-seqs",
        env = "DEMO_DUPLICATE_REPORT_SEQS",
        default_value_t
    )]
    pub duplicate_report_seqs: SeqSelector,

    /// Long tasks only: attempt 1 of these seqs (a list or a fraction) sends no heartbeat
    /// and holds its `succeeded` report until a process call for a later attempt of the
    /// same seq arrives, then sends it (a report for an earlier attempt); the later
    /// attempt reports normally, after it.
    #[arg(
        long = "late-report-seqs",
        env = "DEMO_LATE_REPORT_SEQS",
        default_value_t
    )]
    pub late_report_seqs: SeqSelector,

    /// Long tasks only: the first final report of these seqs (a list or a fraction) is
    /// signed with a wrong key (the kit should answer 401), then sent again correctly
    /// signed.
    #[arg(
        long = "bad-signature-report-seqs",
        env = "DEMO_BAD_SIGNATURE_REPORT_SEQS",
        default_value_t
    )]
    pub bad_signature_report_seqs: SeqSelector,
}

/// Default of [`Chaos::large_result_bytes`]: over the 64 KiB a child record keeps inline.
pub const DEFAULT_LARGE_RESULT_BYTES: usize = 100 * 1024;

/// Default of [`Chaos::slow_ms`]: longer than any sensible process timeout in a test.
pub const DEFAULT_SLOW_MS: u64 = 30_000;

impl Default for Chaos {
    fn default() -> Chaos {
        Chaos {
            seed: 0,
            fail_rate_5xx: 0.0,
            fail_seqs_4xx: SeqSelector::None,
            retry_after: 0,
            retry_after_seqs: SeqSelector::None,
            delay_ms: 0,
            slow_seqs: SeqSelector::None,
            slow_ms: DEFAULT_SLOW_MS,
            slow_attempts: None,
            late_answers: false,
            reduce_failures: 0,
            split_failures: 0,
            garbage_rate: 0.0,
            large_result_seqs: SeqSelector::None,
            large_result_bytes: DEFAULT_LARGE_RESULT_BYTES,
            uncarriable_seqs: SeqSelector::None,
            hostile_error_seqs: SeqSelector::None,
            split_overfill: false,
            cursor_bytes: 0,
            lost_report_seqs: SeqSelector::None,
            duplicate_report_seqs: SeqSelector::None,
            late_report_seqs: SeqSelector::None,
            bad_signature_report_seqs: SeqSelector::None,
        }
    }
}

impl Chaos {
    /// Checks the fractions, which serde alone lets through out of range.
    pub fn validate(&self) -> Result<(), ChaosError> {
        check_fraction("fail_rate_5xx", self.fail_rate_5xx)?;
        check_fraction("garbage_rate", self.garbage_rate)?;
        for (knob, selector) in [
            ("fail_seqs_4xx", &self.fail_seqs_4xx),
            ("retry_after_seqs", &self.retry_after_seqs),
            ("slow_seqs", &self.slow_seqs),
            ("uncarriable_seqs", &self.uncarriable_seqs),
            ("hostile_error_seqs", &self.hostile_error_seqs),
            ("lost_report_seqs", &self.lost_report_seqs),
            ("duplicate_report_seqs", &self.duplicate_report_seqs),
            ("late_report_seqs", &self.late_report_seqs),
            ("bad_signature_report_seqs", &self.bad_signature_report_seqs),
        ] {
            if let SeqSelector::Fraction(fraction) = selector {
                check_fraction(knob, *fraction)?;
            }
        }
        Ok(())
    }

    /// Whether attempt `attempt` of `seq` in `run` gets a 5xx, and which.
    pub(crate) fn injected_5xx(&self, run: &str, seq: u64, attempt: u32) -> Option<u16> {
        let draw = self.draw("fail-5xx", run, seq, attempt);
        if draw.unit < self.fail_rate_5xx {
            Some([500, 502, 503, 504][(draw.bits % 4) as usize])
        } else {
            None
        }
    }

    /// Whether attempt `attempt` of `seq` in `run` is answered with a non-JSON 2xx.
    pub(crate) fn garbage(&self, run: &str, seq: u64, attempt: u32) -> bool {
        self.draw("garbage", run, seq, attempt).unit < self.garbage_rate
    }

    /// The size of extra detail seq's result carries, when it is a large one.
    pub(crate) fn large_result(&self, seq: u64) -> Option<usize> {
        self.large_result_seqs
            .contains(self.seed, "large", seq)
            .then_some(self.large_result_bytes)
    }

    pub(crate) fn hostile_error(&self, seq: u64) -> bool {
        self.hostile_error_seqs
            .contains(self.seed, "hostile-error", seq)
    }

    pub(crate) fn uncarriable(&self, seq: u64) -> bool {
        self.uncarriable_seqs
            .contains(self.seed, "uncarriable", seq)
    }

    pub(crate) fn fails_4xx(&self, seq: u64) -> bool {
        self.fail_seqs_4xx.contains(self.seed, "fail-4xx", seq)
    }

    pub(crate) fn is_slow(&self, seq: u64, attempt: u32) -> bool {
        self.slow_seqs.contains(self.seed, "slow", seq)
            && self.slow_attempts.is_none_or(|last| attempt <= last)
    }

    /// Long tasks: attempt 1 of a lost-report seq sends nothing.
    pub(crate) fn lost_report(&self, seq: u64, attempt: u32) -> bool {
        attempt == 1
            && self
                .lost_report_seqs
                .contains(self.seed, "lost-report", seq)
    }

    /// Long tasks: the `succeeded` report goes twice, then a `failed` one.
    pub(crate) fn duplicate_report(&self, seq: u64) -> bool {
        self.duplicate_report_seqs
            .contains(self.seed, "duplicate-report", seq)
    }

    /// Long tasks: attempt 1 holds its report until a later attempt arrives.
    pub(crate) fn late_report(&self, seq: u64, attempt: u32) -> bool {
        attempt == 1
            && self
                .late_report_seqs
                .contains(self.seed, "late-report", seq)
    }

    /// Long tasks: the first final report is signed with a wrong key.
    pub(crate) fn bad_signature_report(&self, seq: u64) -> bool {
        self.bad_signature_report_seqs
            .contains(self.seed, "bad-signature-report", seq)
    }

    fn draw(&self, salt: &str, run: &str, seq: u64, attempt: u32) -> Draw {
        let key = format!("{salt}\u{0}{run}\u{0}{seq}\u{0}{attempt}");
        Draw::new(mix(self.seed ^ fnv1a(key.as_bytes())))
    }
}

/// A set of seqs: none, listed ones, or a fraction of all of them chosen by the seed.
///
/// As a flag: empty or `none`; a list of seqs and inclusive ranges such as `3,7,10-12`;
/// or a fraction written with a decimal point, such as `0.05` (so `1` is seq 1, and
/// `1.0` is every seq). As JSON: `"none"`, `{"seqs": [3, 7]}` or `{"fraction": 0.05}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeqSelector {
    #[default]
    None,
    Seqs(BTreeSet<u64>),
    Fraction(f64),
}

impl SeqSelector {
    pub fn is_none(&self) -> bool {
        match self {
            SeqSelector::None => true,
            SeqSelector::Seqs(seqs) => seqs.is_empty(),
            SeqSelector::Fraction(fraction) => *fraction <= 0.0,
        }
    }

    /// Whether `seq` is selected; a fraction selects the same seqs for a given seed and
    /// knob, in every run.
    pub fn contains(&self, seed: u64, salt: &str, seq: u64) -> bool {
        match self {
            SeqSelector::None => false,
            SeqSelector::Seqs(seqs) => seqs.contains(&seq),
            SeqSelector::Fraction(fraction) => {
                let key = format!("{salt}\u{0}{seq}");
                Draw::new(mix(seed ^ fnv1a(key.as_bytes()))).unit < *fraction
            }
        }
    }
}

impl fmt::Display for SeqSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeqSelector::None => Ok(()),
            SeqSelector::Seqs(seqs) => {
                let list: Vec<String> = seqs.iter().map(u64::to_string).collect();
                f.write_str(&list.join(","))
            }
            // `{:?}` keeps the decimal point on whole numbers (`1.0`), so it parses back
            // as a fraction.
            SeqSelector::Fraction(fraction) => write!(f, "{fraction:?}"),
        }
    }
}

impl FromStr for SeqSelector {
    type Err = ChaosError;

    fn from_str(value: &str) -> Result<SeqSelector, ChaosError> {
        let value = value.trim();
        if value.is_empty() || value == "none" {
            return Ok(SeqSelector::None);
        }
        if value.contains('.') {
            let fraction = parse_fraction(value)?;
            return Ok(SeqSelector::Fraction(fraction));
        }
        let bad = |part: &str| ChaosError::BadSeqs {
            value: value.to_owned(),
            part: part.to_owned(),
        };
        let mut seqs = BTreeSet::new();
        for part in value.split(',').map(str::trim) {
            let (low, high) = match part.split_once('-') {
                Some((low, high)) => (low.trim(), high.trim()),
                None => (part, part),
            };
            let low: u64 = low.parse().map_err(|_| bad(part))?;
            let high: u64 = high.parse().map_err(|_| bad(part))?;
            if low > high || high - low >= MAX_RANGE {
                return Err(bad(part));
            }
            seqs.extend(low..=high);
        }
        Ok(SeqSelector::Seqs(seqs))
    }
}

/// Longest range one `a-b` may name; longer ones are meant as a fraction.
const MAX_RANGE: u64 = 1_000_000;

/// A chaos setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ChaosError {
    #[error("`{knob}` is {value}; a fraction must be between 0 and 1, such as `0.05`")]
    FractionOutOfRange { knob: &'static str, value: f64 },
    #[error("`{value}` is not a fraction; write one between 0 and 1 with a decimal point, such as `0.05`")]
    BadFraction { value: String },
    #[error(
        "`{part}` in `{value}` is not a seq or a range; write seqs and ranges such as \
         `3,7,10-12` (at most {MAX_RANGE} seqs per range), or a fraction such as `0.05`"
    )]
    BadSeqs { value: String, part: String },
}

fn check_fraction(knob: &'static str, value: f64) -> Result<(), ChaosError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ChaosError::FractionOutOfRange { knob, value })
    }
}

/// The flag parser of the fraction knobs.
fn parse_fraction(value: &str) -> Result<f64, ChaosError> {
    let bad = || ChaosError::BadFraction {
        value: value.to_owned(),
    };
    let fraction: f64 = value.trim().parse().map_err(|_| bad())?;
    if (0.0..=1.0).contains(&fraction) {
        Ok(fraction)
    } else {
        Err(bad())
    }
}

/// One random draw: `unit` in `[0, 1)` and the bits it came from.
struct Draw {
    unit: f64,
    bits: u64,
}

impl Draw {
    fn new(bits: u64) -> Draw {
        // The top 53 bits make an exactly representable fraction below 1.
        let unit = (bits >> 11) as f64 / (1u64 << 53) as f64;
        Draw { unit, bits }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_lists_ranges_and_fractions() {
        assert_eq!("".parse::<SeqSelector>(), Ok(SeqSelector::None));
        assert_eq!("none".parse::<SeqSelector>(), Ok(SeqSelector::None));
        assert_eq!(
            "3, 7,10-12".parse::<SeqSelector>(),
            Ok(SeqSelector::Seqs(BTreeSet::from([3, 7, 10, 11, 12])))
        );
        assert_eq!("1".parse(), Ok(SeqSelector::Seqs(BTreeSet::from([1]))));
        assert_eq!("1.0".parse(), Ok(SeqSelector::Fraction(1.0)));
        assert_eq!("0.05".parse(), Ok(SeqSelector::Fraction(0.05)));
        for bad in ["x", "3,,4", "5-2", "1.5", "-3", "0-2000000"] {
            assert!(bad.parse::<SeqSelector>().is_err(), "{bad}");
        }
        assert_eq!(
            "3,x".parse::<SeqSelector>().unwrap_err().to_string(),
            "`x` in `3,x` is not a seq or a range; write seqs and ranges such as `3,7,10-12` \
             (at most 1000000 seqs per range), or a fraction such as `0.05`"
        );
    }

    #[test]
    fn selectors_print_back_to_what_parses() {
        for text in ["", "3,7,10", "1.0", "0.25"] {
            let selector: SeqSelector = text.parse().unwrap();
            assert_eq!(selector.to_string(), text);
        }
    }

    #[test]
    fn selectors_read_json() {
        let chaos: Chaos = serde_json::from_str(
            r#"{"fail_seqs_4xx": {"seqs": [1, 2]}, "slow_seqs": {"fraction": 0.5},
                "retry_after_seqs": "none"}"#,
        )
        .unwrap();
        assert_eq!(
            chaos.fail_seqs_4xx,
            SeqSelector::Seqs(BTreeSet::from([1, 2]))
        );
        assert_eq!(chaos.slow_seqs, SeqSelector::Fraction(0.5));
        assert_eq!(chaos.slow_ms, DEFAULT_SLOW_MS);
        assert!(serde_json::from_str::<Chaos>(r#"{"fail_rate": 1}"#).is_err());
    }

    #[test]
    fn fractions_select_about_that_share_deterministically() {
        let selector = SeqSelector::Fraction(0.1);
        let chosen: Vec<u64> = (0..10_000)
            .filter(|seq| selector.contains(7, "slow", *seq))
            .collect();
        assert!((800..1200).contains(&chosen.len()), "{}", chosen.len());
        let again: Vec<u64> = (0..10_000)
            .filter(|seq| selector.contains(7, "slow", *seq))
            .collect();
        assert_eq!(chosen, again);
        let other_seed: Vec<u64> = (0..10_000)
            .filter(|seq| selector.contains(8, "slow", *seq))
            .collect();
        assert_ne!(chosen, other_seed);
    }

    #[test]
    fn rates_are_drawn_per_attempt() {
        let chaos = Chaos {
            fail_rate_5xx: 0.5,
            seed: 42,
            ..Chaos::default()
        };
        let failures = (0..1000)
            .filter(|seq| chaos.injected_5xx("run-1", *seq, 1).is_some())
            .count();
        assert!((400..600).contains(&failures), "{failures}");
        // A retry is a fresh draw.
        assert!((0..1000)
            .any(|seq| chaos.injected_5xx("run-1", seq, 1) != chaos.injected_5xx("run-1", seq, 2)));
        let never = Chaos::default();
        assert!((0..1000).all(|seq| never.injected_5xx("r", seq, 1).is_none()));
        let always = Chaos {
            fail_rate_5xx: 1.0,
            ..Chaos::default()
        };
        assert!((0..1000).all(|seq| always.injected_5xx("r", seq, 1).is_some()));
    }

    #[test]
    fn validation_names_the_knob() {
        let chaos = Chaos {
            garbage_rate: 1.5,
            ..Chaos::default()
        };
        assert_eq!(
            chaos.validate().unwrap_err().to_string(),
            "`garbage_rate` is 1.5; a fraction must be between 0 and 1, such as `0.05`"
        );
    }
}
