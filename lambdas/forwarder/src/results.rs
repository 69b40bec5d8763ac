//! Where a child's 2xx body goes: into its ledger record when small, into the results
//! bucket (tagged for the lifecycle rule of its retention) when large or when configured.

use microprocess_shared::ledger::ChildResult;
use microprocess_shared::run_id::RunId;
use microprocess_shared::settings::ResultStorage;

/// Largest result kept inline in a child record.
pub const MAX_INLINE_BYTES: usize = 64 * 1024;

/// The body as JSON text: a JSON body as it came, anything else as a JSON string, an
/// empty body as nothing.
pub fn as_json_text(body: &[u8]) -> Option<String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        if let Ok(text) = std::str::from_utf8(body) {
            return Some(text.trim().to_string());
        }
    }
    serde_json::to_string(&String::from_utf8_lossy(body)).ok()
}

/// Where the result of one child should be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Nowhere,
    Inline(String),
    Bucket { key: String, text: String },
}

pub fn place(
    storage: ResultStorage,
    microprocess: &str,
    run: &RunId,
    seq: u64,
    body: &[u8],
) -> Placement {
    if storage == ResultStorage::Discard {
        return Placement::Nowhere;
    }
    let Some(text) = as_json_text(body) else {
        return Placement::Nowhere;
    };
    if storage == ResultStorage::Ledger && text.len() <= MAX_INLINE_BYTES {
        return Placement::Inline(text);
    }
    Placement::Bucket {
        key: format!("results/{microprocess}/{run}/{seq}.json"),
        text,
    }
}

/// The tag the results bucket's lifecycle rules match (`templates/core.yaml`).
pub fn expiry_tagging(days: u32) -> String {
    format!("microprocess%3Aexpire-after-days={days}")
}

pub fn stored(bucket: &str, key: &str) -> ChildResult {
    ChildResult::Stored {
        s3_uri: format!("s3://{bucket}/{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunId {
        RunId::parse("r1").unwrap()
    }

    #[test]
    fn bodies_become_json_text() {
        assert_eq!(as_json_text(b""), None);
        assert_eq!(as_json_text(b"  \n"), None);
        assert_eq!(
            as_json_text(b" {\"score\": 7} "),
            Some("{\"score\": 7}".into())
        );
        assert_eq!(as_json_text(b"ok"), Some("\"ok\"".into()));
    }

    #[test]
    fn large_results_go_to_the_bucket() {
        let small = b"{\"a\":1}";
        assert_eq!(
            place(ResultStorage::Ledger, "m", &run(), 3, small),
            Placement::Inline("{\"a\":1}".into())
        );
        let big = format!("\"{}\"", "x".repeat(MAX_INLINE_BYTES));
        match place(ResultStorage::Ledger, "m", &run(), 3, big.as_bytes()) {
            Placement::Bucket { key, .. } => assert_eq!(key, "results/m/r1/3.json"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            place(ResultStorage::Bucket, "m", &run(), 3, small),
            Placement::Bucket { .. }
        ));
        assert_eq!(
            place(ResultStorage::Discard, "m", &run(), 3, small),
            Placement::Nowhere
        );
    }
}
