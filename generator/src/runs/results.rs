//! A run's results as JSON lines, one child per line in seq order, streamed page by page
//! from the ledger. A result stored in S3 (over 64 KiB, or `results.storage = "bucket"`) is
//! fetched and inlined unless the caller only wants its location.

use std::io::Write;

use serde_json::{json, Map, Value};

use microprocess_shared::ledger::{ChildRecord, ChildResult, Ledger};
use microprocess_shared::ledger_keys::ChildState;
use microprocess_shared::run_id::RunId;

use super::RunsError;

/// Which children to print, and how.
#[derive(Debug, Clone, Copy, Default)]
pub struct Select {
    /// Only `FAILED` children (with their reasons).
    pub failed_only: bool,
    /// Print `result_s3` locations instead of fetching stored results.
    pub no_fetch: bool,
}

/// Lines written, by state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub succeeded: u64,
    pub failed: u64,
}

/// Writes the children of `run` to `out`, one JSON object per line.
pub async fn write(
    ledger: &Ledger,
    s3: &aws_sdk_s3::Client,
    microprocess: &str,
    run: &RunId,
    select: Select,
    out: &mut dyn Write,
) -> Result<Written, RunsError> {
    let mut written = Written::default();
    let mut after = None;
    loop {
        let (page, next) = ledger.children_page(microprocess, run, after).await?;
        for child in page {
            if select.failed_only && child.state != ChildState::Failed {
                continue;
            }
            let line = line(s3, &child, select).await?;
            writeln!(out, "{line}").map_err(|e| RunsError::Other(format!("cannot write: {e}")))?;
            match child.state {
                ChildState::Failed => written.failed += 1,
                _ => written.succeeded += 1,
            }
        }
        match next {
            Some(seq) => after = Some(seq),
            None => return Ok(written),
        }
    }
}

async fn line(
    s3: &aws_sdk_s3::Client,
    child: &ChildRecord,
    select: Select,
) -> Result<Value, RunsError> {
    let mut object = Map::new();
    object.insert("seq".into(), json!(child.seq));
    object.insert("item".into(), json!(child.item));
    object.insert("state".into(), json!(child.state.as_str()));
    object.insert("attempts".into(), json!(child.attempts));
    match &child.result {
        Some(ChildResult::Inline(text)) => {
            // Stored as JSON text by the forwarder; a record edited by hand stays a string.
            let value = serde_json::from_str(text).unwrap_or_else(|_| json!(text));
            object.insert("result".into(), value);
        }
        Some(ChildResult::Stored { s3_uri }) if select.no_fetch => {
            object.insert("result_s3".into(), json!(s3_uri));
        }
        Some(ChildResult::Stored { s3_uri }) => {
            object.insert("result".into(), fetch(s3, s3_uri).await?);
        }
        None => {}
    }
    if let Some(reason) = &child.reason {
        object.insert("reason".into(), json!(reason));
    }
    Ok(Value::Object(object))
}

/// The JSON stored at `s3://bucket/key`.
async fn fetch(s3: &aws_sdk_s3::Client, uri: &str) -> Result<Value, RunsError> {
    let (bucket, key) = parse_s3_uri(uri)
        .ok_or_else(|| RunsError::Other(format!("`{uri}` in the ledger is not an s3:// URI")))?;
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| RunsError::aws(format!("S3 GetObject of `{uri}`"), &e))?;
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| RunsError::Other(format!("cannot read `{uri}`: {e}")))?
        .into_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| RunsError::Other(format!("`{uri}` does not hold JSON: {e}")))
}

fn parse_s3_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris_split_into_bucket_and_key() {
        assert_eq!(
            parse_s3_uri("s3://b/results/credit-scores/r1/7.json"),
            Some(("b", "results/credit-scores/r1/7.json"))
        );
        assert_eq!(parse_s3_uri("s3://b/"), None);
        assert_eq!(parse_s3_uri("https://b/k"), None);
    }
}
