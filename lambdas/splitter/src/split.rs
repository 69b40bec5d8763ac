//! The page loop of a split.
//!
//! From the run's checkpoint (`cursor` of the next page, `enqueued` = seq of the next
//! item, `pages` read), each round:
//!
//! 1. hands the rest to a fresh invocation when the deadline is near ([`crate::deadline`]);
//! 2. reads the page, retrying a failing one with capped exponential backoff and jitter
//!    (a `Retry-After` is honoured); after `SPLIT_MAX_ATTEMPTS` failed attempts the run
//!    ends `SPLIT_FAILED` with the reason;
//! 3. numbers the items from `enqueued`; an item that breaks the contract's limits
//!    becomes a `FAILED` child with the reason (it keeps its seq), the others become
//!    `process` messages, sent with `SendMessageBatch`;
//! 4. checkpoints `cursor`, `enqueued` and `pages` (on the last page, `next` null, the
//!    checkpoint has no cursor), then, after the last page, seals the run with
//!    `total = enqueued`, and claims the reduce if the run is already complete (no
//!    children, every item invalid, or every child done before the seal).
//!
//! A crash between 3 and 4 re-reads that page on resume and sends its messages again:
//! the forwarder counts each seq once. A checkpoint without a cursor means the first
//! page when no page was read yet, and "no more pages" after one: a crash between the
//! last checkpoint and the seal resumes straight to the seal.

use std::time::Duration;

use chrono::Utc;
use microprocess_shared::contract::{validate_item, SplitItem, SplitPage};
use microprocess_shared::ledger::{InvalidItem, LedgerError, RunRecord};
use microprocess_shared::ledger_keys::MAX_SEQ;
use microprocess_shared::queue_message::QueueMessage;
use microprocess_shared::run_id::RunId;
use microprocess_shared::service_client::SplitPageError;
use tokio::time::Instant;

use crate::deadline::{Deadline, Pace};
use crate::enqueue::{enqueue, Entry};
use crate::event::resume_payload;
use crate::lease;
use crate::{reduce, Outcome, Splitter, SplitterError, Tuning};

/// Time kept back from the deadline when a page's timeout is chosen.
const PAGE_TIMEOUT_RESERVE: Duration = Duration::from_secs(5);
/// Shortest page timeout, whatever the time left.
const MIN_PAGE_TIMEOUT: Duration = Duration::from_secs(1);

/// Splits the `SPLITTING` run `record` from its checkpoint under the split's lease
/// `owner`; `failed_attempts` are the failed attempts at the checkpoint's page that a
/// hand-off carried over.
pub async fn split(
    splitter: &Splitter,
    record: RunRecord,
    mut failed_attempts: u32,
    owner: &str,
    deadline: Deadline,
) -> Result<Outcome, SplitterError> {
    let microprocess = splitter.name();
    let tuning = &splitter.tuning;
    let limit = splitter.settings.split_page_size;
    let max_attempts = splitter.settings.split_max_attempts;
    let run = record.run;
    if record.cursor.is_none() && record.pages > 0 {
        // Every page was read and checkpointed; only the seal is left.
        return seal(splitter, run, record.enqueued, record.pages).await;
    }
    let mut cursor = record.cursor;
    let mut enqueued = record.enqueued;
    let mut pages = record.pages;
    let mut pace = Pace::default();
    loop {
        if tuning
            .handoff
            .should_hand_off(deadline.remaining(), pace.slowest, pace.pages)
        {
            return hand_off(splitter, run, enqueued, pages, failed_attempts, owner).await;
        }
        let started = Instant::now();
        let timeout = tuning
            .page_timeout
            .min(deadline.remaining().saturating_sub(PAGE_TIMEOUT_RESERVE))
            .max(MIN_PAGE_TIMEOUT);
        let fetched = splitter
            .pages
            .page(&run, limit, cursor.as_deref(), timeout)
            .await
            .and_then(|page| check_page(page, cursor.as_deref(), enqueued));
        let page = match fetched {
            Ok(page) => page,
            Err(error) => {
                failed_attempts += 1;
                let reason = format!(
                    "page {} (cursor {}) failed {failed_attempts} of {max_attempts} attempts; \
                     last: {}",
                    pages + 1,
                    cursor.as_deref().unwrap_or("none: the first page"),
                    error.reason
                );
                if failed_attempts >= max_attempts {
                    return split_failed(splitter, run, owner, reason, enqueued, pages).await;
                }
                let wait = page_backoff(tuning, failed_attempts, error.retry_after);
                tracing::warn!(
                    %microprocess,
                    %run,
                    pages,
                    enqueued,
                    attempt = failed_attempts,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    %reason,
                    "split page failed; retrying"
                );
                let remaining = deadline.remaining();
                if tuning.handoff.wait_fits(remaining, pace.slowest, wait) {
                    tokio::time::sleep(wait).await;
                    continue;
                }
                // Wait what fits, then let a fresh invocation retry the page.
                let fits = remaining.saturating_sub(tuning.handoff.margin(pace.slowest));
                tokio::time::sleep(fits.min(wait)).await;
                return hand_off(splitter, run, enqueued, pages, failed_attempts, owner).await;
            }
        };
        let first_seq = enqueued;
        let next_seq = first_seq + page.items.len() as u64;
        let next = page.next;
        let (entries, invalid) = number_items(&run, first_seq, page.items);
        if !invalid.is_empty() {
            tracing::warn!(
                %microprocess,
                %run,
                page = pages + 1,
                invalid = invalid.len(),
                first_seq = invalid[0].seq,
                first_reason = %invalid[0].reason,
                "items break the contract's limits; recorded as failed children"
            );
            splitter
                .ledger
                .record_invalid_items(microprocess, &run, &invalid, Utc::now())
                .await?;
        }
        enqueue(&*splitter.queue, entries, &tuning.enqueue)
            .await
            .map_err(|source| SplitterError::Enqueue {
                run: run.clone(),
                page: pages + 1,
                first_seq,
                next_seq,
                source,
            })?;
        enqueued = next_seq;
        pages += 1;
        failed_attempts = 0;
        match splitter
            .ledger
            .checkpoint(
                microprocess,
                &run,
                owner,
                lease::until(&deadline),
                next.as_deref(),
                enqueued,
                pages,
            )
            .await
        {
            Ok(()) => {}
            Err(LedgerError::Refused { why, .. }) => {
                return Ok(stopped(microprocess, run, why, enqueued, pages));
            }
            Err(error) => return Err(error.into()),
        }
        let Some(next) = next else {
            return seal(splitter, run, enqueued, pages).await;
        };
        cursor = Some(next);
        let took = started.elapsed();
        pace.record(took);
        tracing::info!(
            %microprocess,
            %run,
            pages,
            enqueued,
            page_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            "page checkpointed"
        );
    }
}

/// Rejects a page that cannot be used as is: one whose `next` is the cursor it was asked
/// with (the split would never end), or one past the ledger's largest seq.
fn check_page(
    page: SplitPage,
    cursor: Option<&str>,
    first_seq: u64,
) -> Result<SplitPage, SplitPageError> {
    let fail = |reason: String| SplitPageError {
        cursor: cursor.map(str::to_owned),
        reason,
        retry_after: None,
    };
    if page.next.is_some() && page.next.as_deref() == cursor {
        return Err(fail(
            "the page's `next` is the cursor it was asked with, so the split would never \
             end; paging must move forward"
                .to_owned(),
        ));
    }
    let last = first_seq.saturating_add(page.items.len() as u64);
    if last > MAX_SEQ + 1 {
        return Err(fail(format!(
            "the split has more than {} items, more than the ledger's seq can number",
            MAX_SEQ + 1
        )));
    }
    Ok(page)
}

/// Numbers a page's items from `first_seq`: the `process` messages of the valid ones,
/// and the ones that break the contract's limits, with their reasons.
pub fn number_items(
    run: &RunId,
    first_seq: u64,
    items: Vec<SplitItem>,
) -> (Vec<Entry>, Vec<InvalidItem>) {
    let mut entries = Vec::with_capacity(items.len());
    let mut invalid = Vec::new();
    for (seq, item) in (first_seq..).zip(items) {
        match validate_item(&item) {
            Ok(()) => entries.push(Entry {
                id: seq.to_string(),
                body: QueueMessage::Process {
                    run: run.clone(),
                    seq,
                    item: item.id,
                    payload: item.payload,
                }
                .to_body(),
            }),
            Err(error) => invalid.push(InvalidItem {
                seq,
                item: item.id,
                reason: error.reason(),
            }),
        }
    }
    (entries, invalid)
}

/// The wait after failed attempt `failed_attempts` (1-based) at a page: half the capped
/// exponential plus a random part up to the other half, or the `Retry-After` (capped)
/// when that is longer.
pub fn page_backoff(
    tuning: &Tuning,
    failed_attempts: u32,
    retry_after: Option<Duration>,
) -> Duration {
    let exponential = tuning
        .page_backoff_base
        .saturating_mul(1u32 << failed_attempts.saturating_sub(1).min(20))
        .min(tuning.page_backoff_cap);
    let half = exponential / 2;
    let jittered = half + half.mul_f64(fastrand::f64());
    match retry_after {
        Some(asked) => jittered.max(asked.min(tuning.max_retry_after)),
        None => jittered,
    }
}

async fn hand_off(
    splitter: &Splitter,
    run: RunId,
    enqueued: u64,
    pages: u64,
    failed_attempts: u32,
    owner: &str,
) -> Result<Outcome, SplitterError> {
    let payload = resume_payload(&run, failed_attempts, Some(owner));
    if let Err(reason) = splitter.handoff.hand_off(&payload).await {
        return Err(SplitterError::Handoff { run, reason });
    }
    tracing::info!(
        microprocess = %splitter.name(),
        %run,
        pages,
        enqueued,
        failed_attempts,
        "deadline near; the rest of the split is handed to a new invocation"
    );
    Ok(Outcome::HandedOff {
        run,
        enqueued,
        pages,
        failed_attempts,
    })
}

async fn split_failed(
    splitter: &Splitter,
    run: RunId,
    owner: &str,
    reason: String,
    enqueued: u64,
    pages: u64,
) -> Result<Outcome, SplitterError> {
    let microprocess = splitter.name();
    match splitter
        .ledger
        .split_failed(microprocess, &run, Some(owner), &reason, Utc::now())
        .await
    {
        Ok(()) => {}
        Err(LedgerError::Refused { why, .. }) => {
            return Ok(stopped(microprocess, run, why, enqueued, pages));
        }
        Err(error) => return Err(error.into()),
    }
    tracing::error!(
        %microprocess,
        %run,
        pages,
        enqueued,
        %reason,
        "the split failed; the run is SPLIT_FAILED"
    );
    Ok(Outcome::SplitFailed { run, reason })
}

async fn seal(
    splitter: &Splitter,
    run: RunId,
    total: u64,
    pages: u64,
) -> Result<Outcome, SplitterError> {
    let microprocess = splitter.name();
    let sealed = match splitter
        .ledger
        .seal(microprocess, &run, total, Utc::now())
        .await
    {
        Ok(sealed) => sealed,
        Err(LedgerError::Refused { why, .. }) => {
            return Ok(stopped(microprocess, run, why, total, pages));
        }
        Err(error) => return Err(error.into()),
    };
    let total = sealed.total.unwrap_or(total);
    tracing::info!(
        %microprocess,
        %run,
        pages,
        enqueued = total,
        total,
        invalid = sealed.failed,
        "split sealed"
    );
    let reduce_queued =
        sealed.all_children_done() && reduce::claim_and_send(splitter, &run).await?;
    Ok(Outcome::Sealed {
        run,
        total,
        pages,
        reduce_queued,
    })
}

fn stopped(microprocess: &str, run: RunId, why: String, enqueued: u64, pages: u64) -> Outcome {
    tracing::warn!(
        %microprocess,
        %run,
        pages,
        enqueued,
        %why,
        "another invocation is ahead of this one or ended the run; stopping"
    );
    Outcome::Stopped { run, why }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run() -> RunId {
        RunId::parse("2026-11-01T02-00-00Z").unwrap()
    }

    fn item(id: &str) -> SplitItem {
        SplitItem {
            id: id.to_owned(),
            payload: Some(json!({"n": 1})),
        }
    }

    #[test]
    fn items_are_numbered_from_the_checkpoint_and_invalid_ones_keep_their_seq() {
        let items = vec![item("A"), item(""), item("C"), item("bad\nid"), item("E")];
        let (entries, invalid) = number_items(&run(), 200, items);
        assert_eq!(
            entries.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["200", "202", "204"]
        );
        assert_eq!(
            QueueMessage::parse(&entries[1].body).unwrap(),
            QueueMessage::Process {
                run: run(),
                seq: 202,
                item: "C".into(),
                payload: Some(json!({"n": 1})),
            }
        );
        assert_eq!(
            invalid.iter().map(|i| i.seq).collect::<Vec<_>>(),
            [201, 203]
        );
        assert!(invalid[0].reason.starts_with("item id is empty"));
        assert_eq!(invalid[1].item, "bad\nid");
        assert!(invalid[1].reason.contains("control character"));
    }

    #[test]
    fn a_page_that_does_not_move_forward_is_rejected() {
        let page = |next: Option<&str>| SplitPage {
            items: vec![],
            next: next.map(str::to_owned),
        };
        assert!(check_page(page(Some("c1")), Some("c1"), 0).is_err());
        assert!(check_page(page(Some("c2")), Some("c1"), 0).is_ok());
        assert!(check_page(page(None), Some("c1"), 0).is_ok());
        assert!(check_page(page(Some("c1")), None, 0).is_ok());
        let full = SplitPage {
            items: vec![item("A"), item("B")],
            next: None,
        };
        assert!(check_page(full.clone(), None, MAX_SEQ - 1).is_ok());
        assert!(check_page(full, None, MAX_SEQ).is_err());
    }

    #[test]
    fn page_backoff_doubles_is_capped_and_honours_retry_after() {
        let tuning = Tuning::default();
        let s = Duration::from_secs;
        for (attempt, low, high) in [(1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (9, 30.0, 60.0)] {
            let wait = page_backoff(&tuning, attempt, None);
            assert!(
                wait >= Duration::from_secs_f64(low) && wait <= Duration::from_secs_f64(high),
                "{attempt}: {wait:?}"
            );
        }
        assert!(page_backoff(&tuning, 40, None) <= s(60));
        assert_eq!(page_backoff(&tuning, 1, Some(s(20))), s(20));
        assert_eq!(page_backoff(&tuning, 1, Some(s(3600))), s(300));
        assert!(page_backoff(&tuning, 9, Some(s(1))) >= s(30));
    }
}
