//! A microprocess's run controls, set by operators while runs go on (`microprocess pause`,
//! `resume`, `throttle`): one item per microprocess, `pk = CONTROL#<microprocess>`,
//! `sk = CONTROL`. Pause and concurrency act on the event source mapping (Lambda stops
//! polling, or polls with fewer instances); the item records them so `status` shows them
//! and `deploy` keeps them. The rate cap is read from here by the forwarders themselves.

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use chrono::{DateTime, Utc};

use super::attrs::{key, n, s, time_text, Item, Reader};
use super::error::{LedgerError, Step};
use super::retry::retrying;
use super::Ledger;

/// Partition key prefix of a microprocess's controls.
pub const CONTROL_KEY_PREFIX: &str = "CONTROL#";
/// Sort key of the controls item.
pub const CONTROL_SORT_KEY: &str = "CONTROL";

mod control_attr {
    pub const MICROPROCESS: &str = "microprocess";
    pub const PAUSED_AT: &str = "paused_at";
    pub const PAUSED_REASON: &str = "paused_reason";
    pub const MAX_CONCURRENCY: &str = "max_concurrency";
    pub const RATE_LIMIT_PER_SECOND: &str = "rate_limit_per_second";
    pub const THROTTLED_AT: &str = "throttled_at";
}

/// What operators set on a microprocess; all `None` is the config's behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Controls {
    /// Deliveries are paused since then (the event source mapping is disabled).
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_reason: Option<String>,
    /// The event source mapping's `MaximumConcurrency`, instead of the config's.
    pub max_concurrency: Option<u32>,
    /// Process calls a second for the whole microprocess, instead of the config's cap.
    pub rate_limit_per_second: Option<u32>,
    /// When the concurrency or rate override was set.
    pub throttled_at: Option<DateTime<Utc>>,
}

impl Controls {
    pub fn is_default(&self) -> bool {
        *self == Controls::default()
    }

    pub fn throttled(&self) -> bool {
        self.max_concurrency.is_some() || self.rate_limit_per_second.is_some()
    }
}

fn control_key(microprocess: &str) -> Item {
    key(
        &format!("{CONTROL_KEY_PREFIX}{microprocess}"),
        CONTROL_SORT_KEY,
    )
}

impl Ledger {
    /// The controls of `microprocess` (the default when none are set), strongly
    /// consistent.
    pub async fn controls(&self, microprocess: &str) -> Result<Controls, LedgerError> {
        let context = self.context(Step::Controls, microprocess, None);
        let got = retrying(&self.retry, || {
            self.client
                .get_item()
                .table_name(&self.table)
                .consistent_read(true)
                .set_key(Some(control_key(microprocess)))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await
        .map_err(|e| e.into_ledger(context.clone()))?;
        self.count_reads(got.consumed_capacity());
        let Some(item) = got.item else {
            return Ok(Controls::default());
        };
        let r = Reader::new(&item);
        let read = || -> Result<Controls, String> {
            let number = |name: &str| -> Result<Option<u32>, String> {
                r.opt_u64(name)?
                    .map(|v| u32::try_from(v).map_err(|_| format!("`{name}` is {v}, out of range")))
                    .transpose()
            };
            Ok(Controls {
                paused_at: r.opt_time(control_attr::PAUSED_AT)?,
                paused_reason: r.opt_str(control_attr::PAUSED_REASON)?.map(str::to_owned),
                max_concurrency: number(control_attr::MAX_CONCURRENCY)?,
                rate_limit_per_second: number(control_attr::RATE_LIMIT_PER_SECOND)?,
                throttled_at: r.opt_time(control_attr::THROTTLED_AT)?,
            })
        };
        read().map_err(|why| LedgerError::Malformed {
            context,
            key: r.key_text(),
            why,
        })
    }

    /// Replaces the controls of `microprocess` (the item is deleted when they are all
    /// the default).
    pub async fn set_controls(
        &self,
        microprocess: &str,
        controls: &Controls,
    ) -> Result<(), LedgerError> {
        let context = self.context(Step::Controls, microprocess, None);
        if controls.is_default() {
            let out = retrying(&self.retry, || {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(control_key(microprocess)))
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
            })
            .await
            .map_err(|e| e.into_ledger(context.clone()))?;
            self.count_writes(out.consumed_capacity());
            return Ok(());
        }
        let mut item = control_key(microprocess);
        item.insert(control_attr::MICROPROCESS.into(), s(microprocess));
        if let Some(at) = controls.paused_at {
            item.insert(control_attr::PAUSED_AT.into(), s(time_text(at)));
        }
        if let Some(reason) = &controls.paused_reason {
            item.insert(
                control_attr::PAUSED_REASON.into(),
                s(super::records::cut(reason)),
            );
        }
        if let Some(c) = controls.max_concurrency {
            item.insert(control_attr::MAX_CONCURRENCY.into(), n(c));
        }
        if let Some(r) = controls.rate_limit_per_second {
            item.insert(control_attr::RATE_LIMIT_PER_SECOND.into(), n(r));
        }
        if let Some(at) = controls.throttled_at {
            item.insert(control_attr::THROTTLED_AT.into(), s(time_text(at)));
        }
        let out = retrying(&self.retry, || {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
        })
        .await
        .map_err(|e| e.into_ledger(context.clone()))?;
        self.count_writes(out.consumed_capacity());
        Ok(())
    }
}
