//! The run control the forwarder applies itself: the rate cap an operator set with
//! `microprocess throttle` (`Ledger::controls`), read at most every [`CONTROLS_EVERY`], so
//! a new cap reaches every forwarder within that time and costs one read per forwarder
//! per period. Pause and concurrency act on the event source mapping, not here; the
//! concurrency override still matters here, as it changes each forwarder's share of the
//! cap.
//!
//! The read is off the batch's path: it has a client of its own and a short timeout, and
//! a read that fails or is slow keeps the cap in force, so it never holds a batch up or
//! changes what the batch's own requests are.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use microprocess_shared::ledger::Ledger;

use crate::rate::RateLimiter;
use crate::Forwarder;

/// How often a forwarder reads the controls.
pub const CONTROLS_EVERY: Duration = Duration::from_secs(10);
/// How long a read of the controls may take before the cap in force is kept.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// The rate cap and the concurrency it is shared by.
type Shape = (Option<u32>, u32);

/// The limiter in force and when the controls were last read.
pub struct Limits {
    limiter: Mutex<(Shape, Arc<RateLimiter>)>,
    read_at: Mutex<Option<Instant>>,
    /// The ledger the controls are read from, on a client of its own.
    ledger: Ledger,
}

impl Limits {
    pub fn new(ledger: Ledger, rate: Option<u32>, concurrency: u32, burst: u32) -> Limits {
        Limits {
            ledger,
            limiter: Mutex::new((
                (rate, concurrency),
                Arc::new(RateLimiter::new(rate, concurrency, burst)),
            )),
            read_at: Mutex::new(None),
        }
    }

    /// The limiter in force.
    pub fn limiter(&self) -> Arc<RateLimiter> {
        self.limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    fn due(&self) -> bool {
        let mut read_at = self.read_at.lock().unwrap_or_else(|p| p.into_inner());
        if read_at.is_some_and(|at| at.elapsed() < CONTROLS_EVERY) {
            return false;
        }
        *read_at = Some(Instant::now());
        true
    }

    /// Puts a limiter of `shape` in force unless it already is; `true` when it changed.
    fn shape(&self, shape: Shape, burst: u32) -> bool {
        let mut held = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        if held.0 == shape {
            return false;
        }
        *held = (shape, Arc::new(RateLimiter::new(shape.0, shape.1, burst)));
        true
    }
}

impl Forwarder {
    /// Reads the controls when they are due, and puts the rate cap they give in force.
    pub(crate) async fn apply_controls(&self) {
        if !self.limits.due() {
            return;
        }
        let read =
            tokio::time::timeout(READ_TIMEOUT, self.limits.ledger.controls(self.name())).await;
        let controls = match read {
            Ok(Ok(c)) => c,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot read the run controls; the rate cap in force stays");
                return;
            }
            Err(_) => {
                tracing::warn!(
                    "the run controls took over 1 s to read; the rate cap in force stays"
                );
                return;
            }
        };
        let rate = match controls.rate_limit_per_second {
            Some(0) => None,
            Some(r) => Some(r),
            None => self.settings.rate_limit_per_second,
        };
        let concurrency = controls
            .max_concurrency
            .unwrap_or(self.settings.max_concurrency);
        if self
            .limits
            .shape((rate, concurrency), self.settings.batch_size)
        {
            tracing::info!(rate = ?rate, concurrency, "the rate cap in force changed (run controls)");
        }
    }
}
