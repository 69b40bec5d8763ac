//! When an invocation stops paging and hands the rest of the split to a fresh one.
//!
//! A Lambda invocation lasts at most 15 minutes; a split of millions of items takes
//! longer. Before each page but the first of an invocation, the splitter compares the
//! time left with a margin: the larger of a fixed minimum (60 s by default) and a
//! multiple (3 by default) of the slowest page of this invocation so far, so that a page
//! is never started that could not be finished, checkpointed and handed off in time.
//! Every invocation reads at least one page, so a split always moves forward, even with
//! a margin larger than the function's timeout.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// When the invocation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// From the Lambda context's deadline, in milliseconds since the Unix epoch.
    pub fn from_epoch_millis(deadline_ms: u64) -> Deadline {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Deadline::after(Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
    }

    /// `left` from now.
    pub fn after(left: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + left,
        }
    }

    /// Time left before the deadline (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// How the hand-off decision is made; [`HandoffRule::default`] is what runs in Lambda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffRule {
    /// The smallest margin kept before the deadline.
    pub min_margin: Duration,
    /// The margin is at least this many times the slowest page of the invocation.
    pub slowest_page_factor: u32,
    /// Hand off after this many pages in one invocation, whatever the time left (`None`
    /// in Lambda; tests and operators use it to bound an invocation).
    pub max_pages_per_invocation: Option<u64>,
}

impl Default for HandoffRule {
    fn default() -> HandoffRule {
        HandoffRule {
            min_margin: Duration::from_secs(60),
            slowest_page_factor: 3,
            max_pages_per_invocation: None,
        }
    }
}

impl HandoffRule {
    /// The margin kept before the deadline, given the slowest page so far.
    pub fn margin(&self, slowest_page: Duration) -> Duration {
        self.min_margin
            .max(slowest_page.saturating_mul(self.slowest_page_factor))
    }

    /// Whether to hand off before reading the next page, given the time left, the
    /// slowest page and the pages read by this invocation so far.
    pub fn should_hand_off(
        &self,
        remaining: Duration,
        slowest_page: Duration,
        pages_this_invocation: u64,
    ) -> bool {
        if pages_this_invocation == 0 {
            return false;
        }
        if self
            .max_pages_per_invocation
            .is_some_and(|max| pages_this_invocation >= max)
        {
            return true;
        }
        remaining <= self.margin(slowest_page)
    }

    /// Whether a wait of `wait` before retrying a page still leaves the margin; if not,
    /// the retry is handed off instead.
    pub fn wait_fits(&self, remaining: Duration, slowest_page: Duration, wait: Duration) -> bool {
        remaining > wait.saturating_add(self.margin(slowest_page))
    }
}

/// The pages of one invocation: how many, and the slowest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pace {
    pub pages: u64,
    pub slowest: Duration,
}

impl Pace {
    pub fn record(&mut self, took: Duration) {
        self.pages += 1;
        self.slowest = self.slowest.max(took);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_margin_is_a_minute_or_three_slowest_pages() {
        let rule = HandoffRule::default();
        assert_eq!(rule.margin(Duration::ZERO), S(60));
        assert_eq!(rule.margin(S(10)), S(60));
        assert_eq!(rule.margin(S(20)), S(60));
        assert_eq!(rule.margin(S(25)), S(75));
    }

    #[test]
    fn hands_off_when_the_time_left_is_within_the_margin() {
        let rule = HandoffRule::default();
        assert!(!rule.should_hand_off(S(600), S(2), 5));
        assert!(!rule.should_hand_off(S(61), S(2), 5));
        assert!(rule.should_hand_off(S(60), S(2), 5));
        assert!(rule.should_hand_off(S(0), S(2), 5));
        // A slow page widens the margin.
        assert!(!rule.should_hand_off(S(121), S(40), 5));
        assert!(rule.should_hand_off(S(120), S(40), 5));
    }

    #[test]
    fn every_invocation_reads_at_least_one_page() {
        let rule = HandoffRule {
            min_margin: S(3600),
            ..HandoffRule::default()
        };
        assert!(!rule.should_hand_off(Duration::ZERO, Duration::ZERO, 0));
        assert!(rule.should_hand_off(S(900), Duration::ZERO, 1));
    }

    #[test]
    fn a_page_cap_hands_off_whatever_the_time_left() {
        let rule = HandoffRule {
            max_pages_per_invocation: Some(3),
            ..HandoffRule::default()
        };
        assert!(!rule.should_hand_off(S(900), S(1), 2));
        assert!(rule.should_hand_off(S(900), S(1), 3));
    }

    #[test]
    fn a_retry_wait_must_leave_the_margin() {
        let rule = HandoffRule::default();
        assert!(rule.wait_fits(S(100), S(1), S(30)));
        assert!(!rule.wait_fits(S(90), S(1), S(30)));
        assert!(!rule.wait_fits(S(100), S(1), Duration::MAX));
    }

    #[test]
    fn pace_keeps_the_slowest_page() {
        let mut pace = Pace::default();
        for took in [S(2), S(7), S(3)] {
            pace.record(took);
        }
        assert_eq!(
            pace,
            Pace {
                pages: 3,
                slowest: S(7)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_count_down() {
        let deadline = Deadline::after(S(10));
        tokio::time::advance(S(4)).await;
        assert_eq!(deadline.remaining(), S(6));
        tokio::time::advance(S(10)).await;
        assert_eq!(deadline.remaining(), Duration::ZERO);
        let past = Deadline::from_epoch_millis(0);
        assert_eq!(past.remaining(), Duration::ZERO);
    }
}
