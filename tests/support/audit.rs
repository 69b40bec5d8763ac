//! Bookkeeping of a run, as queue checkers keep it: from what was split (seqs `0..total`,
//! whose items the demo service names deterministically), what the ledger recorded (the
//! run's counters and its child records), what the service saw (every process call of
//! every seq) and what sits in the dead-letter queue, compute what was lost, counted
//! twice, or seen without being split, and whether the failures and the dead letters are
//! the same seqs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use demo_service::paging::item_id;
use demo_service::RunStats;
use microprocess_shared::ledger::{ChildRecord, RunRecord};
use microprocess_shared::ledger_keys::ChildState;
use microprocess_shared::queue_message::QueueMessage;

/// What an audit compares.
pub struct Evidence<'a> {
    /// What the row is about, such as the scenario.
    pub label: &'a str,
    /// Items split: seqs `0..total`.
    pub total: u64,
    pub run: &'a RunRecord,
    pub children: &'a [ChildRecord],
    /// The service's calls of the run (`None`: it saw none).
    pub service: Option<&'a RunStats>,
    /// Messages of the dead-letter queue, of any run.
    pub dead_letters: &'a [QueueMessage],
}

/// The result of [`check`]: counts, and the findings that must all be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub label: String,
    pub total: u64,
    /// Child records `SUCCEEDED` and `FAILED`.
    pub succeeded: u64,
    pub failed: u64,
    /// Process messages of the run in the dead-letter queue (a seq delivered twice and
    /// failing twice is there twice).
    pub dead_lettered: u64,
    /// Process calls the service saw, retries and replays included.
    pub service_calls: u64,
    /// Seqs split with no terminal child record.
    pub lost: Vec<u64>,
    /// Counters that disagree with the child records, and seqs recorded more than once.
    pub double_counted: Vec<String>,
    /// Child records, service calls or dead letters of seqs never split (or naming
    /// another item than the split did).
    pub unexpected: Vec<String>,
    /// `FAILED` seqs with no dead letter.
    pub failed_not_dead_lettered: Vec<u64>,
    /// Dead-lettered seqs whose child is not `FAILED`.
    pub dead_lettered_not_failed: Vec<u64>,
    /// Dead letters of children that then succeeded: one copy of a duplicated message
    /// failed for good, the other succeeded and moved the child to `SUCCEEDED` (as a
    /// redrive does). The stale dead letter changes nothing if sent back.
    pub superseded: Vec<u64>,
    /// `SUCCEEDED` seqs the service never answered with a 2xx.
    pub unconfirmed: Vec<u64>,
}

impl Audit {
    /// The header of the table [`Audit`]'s `Display` writes rows of.
    pub const HEADER: &'static str = "| scenario | split | succeeded | failed | dead letters | service calls | lost | double-counted | unexpected | failed vs DLQ | unconfirmed |\n|---|---|---|---|---|---|---|---|---|---|---|";

    /// Whether nothing was lost, counted twice, unexpected or unconfirmed, and the
    /// failures are exactly the dead-lettered seqs.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.double_counted.is_empty()
            && self.unexpected.is_empty()
            && self.failed_not_dead_lettered.is_empty()
            && self.dead_lettered_not_failed.is_empty()
            && self.unconfirmed.is_empty()
    }

    /// Panics with every finding unless the audit [`Audit::is_clean`].
    pub fn assert_clean(&self) {
        assert!(self.is_clean(), "{}\n{self}\n{self:#?}", Audit::HEADER);
    }
}

impl fmt::Display for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mismatched = self.failed_not_dead_lettered.len() + self.dead_lettered_not_failed.len();
        write!(
            f,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.label,
            self.total,
            self.succeeded,
            self.failed,
            self.dead_lettered,
            self.service_calls,
            self.lost.len(),
            self.double_counted.len(),
            self.unexpected.len(),
            mismatched,
            self.unconfirmed.len(),
        )
    }
}

/// Compares the evidence; see the module documentation.
pub fn check(evidence: Evidence<'_>) -> Audit {
    let Evidence {
        label,
        total,
        run,
        children,
        service,
        dead_letters,
    } = evidence;
    let mut double_counted = Vec::new();
    let mut unexpected = Vec::new();

    // The ledger: one terminal record per seq, counted once.
    let mut states: BTreeMap<u64, ChildState> = BTreeMap::new();
    for child in children {
        if states.insert(child.seq, child.state).is_some() {
            double_counted.push(format!("seq {} has two child records", child.seq));
        }
        if child.seq >= total {
            unexpected.push(format!("child record of seq {} (never split)", child.seq));
        } else if child.item != item_id(child.seq) {
            unexpected.push(format!(
                "child record of seq {} names `{}`, the split `{}`",
                child.seq,
                child.item,
                item_id(child.seq)
            ));
        }
    }
    let in_state = |state: ChildState| -> BTreeSet<u64> {
        states
            .iter()
            .filter(|(_, s)| **s == state)
            .map(|(seq, _)| *seq)
            .collect()
    };
    let succeeded = in_state(ChildState::Succeeded);
    let failed = in_state(ChildState::Failed);
    for (counter, value, records) in [
        ("succeeded", run.succeeded, succeeded.len() as u64),
        ("failed", run.failed, failed.len() as u64),
        ("done", run.done, (succeeded.len() + failed.len()) as u64),
    ] {
        if value != records {
            double_counted.push(format!(
                "the run counts {counter} = {value}, the child records {records}"
            ));
        }
    }
    if run.total.is_some_and(|sealed| sealed != total) {
        double_counted.push(format!(
            "the run is sealed with total {:?}, the split had {total} items",
            run.total
        ));
    }
    let lost: Vec<u64> = (0..total)
        .filter(|seq| !succeeded.contains(seq) && !failed.contains(seq))
        .collect();

    // The service: calls only for split seqs, each success counted once.
    let mut service_calls = 0;
    let mut confirmed = BTreeSet::new();
    if let Some(stats) = service {
        service_calls = stats.process_calls;
        for (seq, child) in &stats.children {
            if *seq >= total {
                unexpected.push(format!(
                    "the service was called for seq {seq} (never split)"
                ));
            }
            if child.succeeded {
                confirmed.insert(*seq);
            }
        }
        if stats.succeeded != confirmed.len() as u64 {
            double_counted.push(format!(
                "the service counts {} successes for {} seqs",
                stats.succeeded,
                confirmed.len()
            ));
        }
    }
    let unconfirmed = succeeded.difference(&confirmed).copied().collect();

    // The dead letters: exactly the failed seqs.
    let mut dead = BTreeSet::new();
    let mut dead_lettered = 0;
    for message in dead_letters {
        if let QueueMessage::Process { run: of, seq, .. } = message {
            if *of == run.run {
                dead_lettered += 1;
                dead.insert(*seq);
                if *seq >= total {
                    unexpected.push(format!("dead letter of seq {seq} (never split)"));
                }
            }
        }
    }

    Audit {
        label: label.to_owned(),
        total,
        succeeded: succeeded.len() as u64,
        failed: failed.len() as u64,
        dead_lettered,
        service_calls,
        lost,
        double_counted,
        unexpected,
        failed_not_dead_lettered: failed.difference(&dead).copied().collect(),
        dead_lettered_not_failed: dead
            .difference(&failed)
            .filter(|seq| !succeeded.contains(seq))
            .copied()
            .collect(),
        superseded: dead.intersection(&succeeded).copied().collect(),
        unconfirmed,
    }
}

/// The audits of several runs as one row labelled `label`: counts added, findings joined.
pub fn sum(label: &str, audits: &[Audit]) -> Audit {
    let mut total = Audit {
        label: label.to_owned(),
        total: 0,
        succeeded: 0,
        failed: 0,
        dead_lettered: 0,
        service_calls: 0,
        lost: Vec::new(),
        double_counted: Vec::new(),
        unexpected: Vec::new(),
        failed_not_dead_lettered: Vec::new(),
        dead_lettered_not_failed: Vec::new(),
        superseded: Vec::new(),
        unconfirmed: Vec::new(),
    };
    for audit in audits {
        total.total += audit.total;
        total.succeeded += audit.succeeded;
        total.failed += audit.failed;
        total.dead_lettered += audit.dead_lettered;
        total.service_calls += audit.service_calls;
        total.lost.extend(&audit.lost);
        total
            .double_counted
            .extend(audit.double_counted.iter().cloned());
        total.unexpected.extend(audit.unexpected.iter().cloned());
        total
            .failed_not_dead_lettered
            .extend(&audit.failed_not_dead_lettered);
        total
            .dead_lettered_not_failed
            .extend(&audit.dead_lettered_not_failed);
        total.superseded.extend(&audit.superseded);
        total.unconfirmed.extend(&audit.unconfirmed);
    }
    total
}
