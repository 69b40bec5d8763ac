//! The run controls a mapping the runner polls starts with: a pause or concurrency an
//! operator set (`microprocess pause`, `throttle`) is in the ledger's control item of the
//! forwarder's microprocess, and holds across a restart of the runner as it holds in AWS.

use std::sync::atomic::Ordering::Relaxed;

use aws_config::SdkConfig;
use microprocess_shared::ledger::Ledger;
use microprocess_shared::settings::{LEDGER_TABLE, MICROPROCESS_NAME};

use super::discover::FunctionSpec;
use super::logs::LogSink;
use super::poller::MappingControl;

/// Sets `control` from the control item of `spec`'s microprocess, if it has one.
pub(super) async fn restore(
    sdk: &SdkConfig,
    spec: &FunctionSpec,
    control: &MappingControl,
    logs: &LogSink,
) {
    let (Some(table), Some(name)) = (
        spec.environment.get(LEDGER_TABLE),
        spec.environment.get(MICROPROCESS_NAME),
    ) else {
        return;
    };
    let controls = match Ledger::from_config(sdk, table.clone()).controls(name).await {
        Ok(c) => c,
        Err(e) => {
            logs.note(format!(
                "`{}`: cannot read the run controls of `{name}`: {e}",
                spec.name
            ));
            return;
        }
    };
    if controls.paused_at.is_some() {
        control.enabled.store(false, Relaxed);
        logs.note(format!(
            "`{name}` is paused (`microprocess resume {name}` ends it): its queue is not polled"
        ));
    }
    if let Some(n) = controls.max_concurrency {
        control
            .concurrency
            .store(n.clamp(1, control.pollers), Relaxed);
        logs.note(format!("`{name}` is throttled to {n} forwarder(s) at once"));
    }
}
