//! The optional cap on process calls a second. The cap is for the whole microprocess; each
//! of the `max_concurrency` forwarder instances takes its share, so the instances need no
//! coordination and together never exceed it.
//!
//! Each instance's share is a token bucket that holds one batch: an instance that has
//! waited long enough sends a whole batch at once, and one that keeps up with its share
//! waits only for the tokens it lacks. Spacing every call by the share instead would make
//! each batch last `batch_size` intervals, inside the invocation, so Lambda time per child
//! would stay about `max_concurrency / rate_limit_per_second` seconds however few
//! forwarders run. Over any `t` seconds the instances together make at most
//! `rate_limit_per_second * t + max_concurrency * batch_size` calls.
//!
//! The bucket is kept as its theoretical arrival time (the generic cell rate algorithm):
//! the time at which the bucket would be empty again if no call came.
//!
//! A new instance starts with an empty bucket: an instance that replaces one stopped
//! mid-batch (a timeout, a crash) would otherwise send a full batch on top of what the
//! stopped one sent, and the instances together would pass the cap. A call is reserved
//! only if its turn comes by a latest start (the function's deadline less the call's
//! timeout and the time to record it); one that would start later takes no token.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    /// Time one call's token takes to come back; `None` when there is no cap.
    interval: Option<Duration>,
    /// How far ahead of now the bucket may be drained: `burst - 1` intervals.
    tolerance: Duration,
    /// When the bucket is full again if no more calls come.
    full_at: Mutex<Instant>,
}

impl RateLimiter {
    /// `per_second` across `instances` concurrent forwarders, each saving up to `burst`
    /// calls (its batch size).
    pub fn new(per_second: Option<u32>, instances: u32, burst: u32) -> Self {
        let interval = per_second
            .filter(|r| *r > 0)
            .map(|r| Duration::from_secs_f64(f64::from(instances.max(1)) / f64::from(r)));
        let tolerance = interval.map_or(Duration::ZERO, |i| i * burst.max(1).saturating_sub(1));
        RateLimiter {
            interval,
            tolerance,
            // Empty: the first batch waits for its tokens like any other.
            full_at: Mutex::new(Instant::now() + tolerance + interval.unwrap_or_default()),
        }
    }

    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Waits until this instance has a token for one call.
    pub async fn acquire(&self) {
        // With no latest start, a token is always reserved.
        let _ = self.acquire_by(None).await;
    }

    /// Reserves a token if its turn comes by `latest` and waits for it: `true`. A call
    /// whose turn would come later takes no token and returns at once: `false`.
    pub async fn acquire_by(&self, latest: Option<Instant>) -> bool {
        let Some(interval) = self.interval else {
            return latest.is_none_or(|l| Instant::now() <= l);
        };
        let at = {
            let mut full_at = self.full_at.lock().await;
            let now = Instant::now();
            // The bucket never holds more than `burst`, so time spent idle is not saved
            // beyond it.
            let base = (*full_at).max(now);
            let at = base
                .checked_sub(self.tolerance)
                .map_or(now, |earliest| earliest.max(now));
            if latest.is_some_and(|l| at > l) {
                return false;
            }
            *full_at = base + interval;
            at
        };
        tokio::time::sleep_until(at).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_the_cap_between_instances() {
        assert_eq!(
            RateLimiter::new(Some(100), 10, 10).interval(),
            Some(Duration::from_millis(100))
        );
        assert_eq!(RateLimiter::new(None, 10, 10).interval(), None);
        assert_eq!(RateLimiter::new(Some(0), 10, 10).interval(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_one_spaces_every_call() {
        let limiter = RateLimiter::new(Some(10), 1, 1);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // A new bucket is empty: every call waits its 100 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_instance_starts_with_an_empty_bucket() {
        let limiter = RateLimiter::new(Some(10), 1, 5);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // Five tokens, one every 100 ms: a replacement instance adds nothing to the cap.
        assert_eq!(start.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_whose_turn_comes_too_late_takes_no_token() {
        let limiter = RateLimiter::new(Some(10), 1, 5);
        let start = Instant::now();
        let latest = start + Duration::from_millis(250);
        let mut sent = 0;
        for _ in 0..5 {
            if limiter.acquire_by(Some(latest)).await {
                sent += 1;
            }
        }
        assert_eq!(sent, 2, "turns at 100 and 200 ms fit, 300 ms does not");
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        // The refused calls took nothing: the next token is the third.
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_sends_a_batch_at_once_then_waits_for_its_share() {
        let limiter = RateLimiter::new(Some(10), 1, 5);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "one batch at once");
        // The bucket is empty: the next batch waits for five tokens, one every 100 ms, and
        // its first call goes as soon as one is back.
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        // Ten calls in the first 500 ms, then never more than ten a second on average.
        for _ in 0..10 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_saves_at_most_one_batch() {
        let limiter = RateLimiter::new(Some(10), 1, 3);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_calls_never_exceed_the_share() {
        let limiter = std::sync::Arc::new(RateLimiter::new(Some(100), 10, 10));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = Instant::now();
        let calls = (0..40).map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter.acquire().await;
                start.elapsed()
            })
        });
        let mut at: Vec<Duration> = futures::future::join_all(calls)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        at.sort();
        // Ten tokens at once, then one every 100 ms: the 40th call 3 s in.
        assert_eq!(at[9], Duration::ZERO);
        assert_eq!(at[39], Duration::from_millis(3000));
        for (i, t) in at.iter().enumerate() {
            let allowed = 10 + (t.as_millis() / 100) as usize;
            assert!(i < allowed, "call {i} at {t:?}");
        }
    }
}
