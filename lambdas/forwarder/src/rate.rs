//! The optional cap on process calls a second. The cap is for the whole microprocess; each
//! of the `max_concurrency` forwarder instances takes its share, so the instances need no
//! coordination and together never exceed it.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    /// Time between two calls of this instance; `None` when there is no cap.
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// `per_second` across `instances` concurrent forwarders.
    pub fn new(per_second: Option<u32>, instances: u32) -> Self {
        let interval = per_second
            .filter(|r| *r > 0)
            .map(|r| Duration::from_secs_f64(f64::from(instances.max(1)) / f64::from(r)));
        RateLimiter {
            interval,
            next: Mutex::new(Instant::now()),
        }
    }

    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Waits for this instance's next slot.
    pub async fn acquire(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(Instant::now());
            *next = at + interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_the_cap_between_instances() {
        assert_eq!(
            RateLimiter::new(Some(100), 10).interval(),
            Some(Duration::from_millis(100))
        );
        assert_eq!(RateLimiter::new(None, 10).interval(), None);
        assert_eq!(RateLimiter::new(Some(0), 10).interval(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn spaces_calls() {
        let limiter = RateLimiter::new(Some(10), 1);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // The first call goes at once, the next four 100 ms apart.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }
}
