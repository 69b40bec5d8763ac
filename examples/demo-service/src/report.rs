//! The reduce's report: the kit's counts from the reduce request next to what this
//! service itself answered for the run, with a histogram of the scores it gave.
//!
//! The demo keeps its own record of what it scored instead of reading the ledger, so it
//! runs without AWS; a real service reads its children from `results` (docs/contract.md).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use microprocess_shared::contract::ReduceRequest;
use serde_json::{json, Map, Value};

use crate::score::{bucket_index, bucket_labels};
use crate::stats::RunStats;

/// The report of `request`'s run. Deterministic: the same calls make the same report.
pub fn build(request: &ReduceRequest, run: &RunStats) -> Value {
    let labels = bucket_labels();
    let mut counts = vec![0u64; labels.len()];
    let mut succeeded = 0u64;
    let mut not_json = 0u64;
    let mut failed = 0u64;
    for child in run.children.values() {
        if child.succeeded {
            succeeded += 1;
            match child.score {
                Some(score) => counts[bucket_index(score)] += 1,
                None => not_json += 1,
            }
        } else if child.last_status.is_some() {
            failed += 1;
        }
    }
    let histogram: Map<String, Value> = labels
        .into_iter()
        .zip(counts)
        .map(|(label, count)| (label, Value::from(count)))
        .collect();
    json!({
        "microprocess": request.microprocess,
        "run": request.run,
        "total": request.total,
        "succeeded": request.succeeded,
        "failed": request.failed,
        "started_at": request.started_at,
        "split_done_at": request.split_done_at,
        "results": request.results,
        "service": {
            "seqs_seen": run.children.len(),
            "succeeded": succeeded,
            "failed": failed,
            "not_json": not_json,
            "process_calls": run.process_calls,
        },
        "histogram": histogram,
    })
}

/// `<dir>/<microprocess>/<run>.json`. Both names are checked to be safe file names (the
/// microprocess by the config, the run id by its type).
pub fn path(dir: &Path, microprocess: &str, run: &str) -> PathBuf {
    dir.join(microprocess).join(format!("{run}.json"))
}

/// Writes the report through a temporary file and a rename, so a reader never sees half
/// of one.
pub async fn write(path: &Path, report: &Value) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut text = serde_json::to_vec_pretty(report).map_err(io::Error::other)?;
    text.push(b'\n');
    // Unique per write, so two deliveries of one reduce never share a temporary file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let temporary = path.with_extension(format!(
        "json.{}.tmp",
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    tokio::fs::write(&temporary, text).await?;
    tokio::fs::rename(&temporary, path).await
}
