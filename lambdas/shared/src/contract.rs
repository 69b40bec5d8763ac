//! The HTTP contract v1 between the kit and a service (CONTRACT.md): the bodies of the
//! split, process and reduce calls, the header names, the limits on split items, the
//! idempotency keys and how the kit reads a process or reduce response.

use std::io;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::run_id::RunId;

/// The value of [`HEADER_CONTRACT`] on every request of this contract.
pub const CONTRACT_VERSION: &str = "1";

/// Contract version, always [`CONTRACT_VERSION`].
pub const HEADER_CONTRACT: &str = "X-Microprocess-Contract";
/// The microprocess name from config, such as `credit-scores`.
pub const HEADER_NAME: &str = "X-Microprocess-Name";
/// The run id.
pub const HEADER_RUN: &str = "X-Microprocess-Run";
/// `t=<unix seconds>,v1=<hex>[,v1=<hex>]`, see [`crate::signing`].
pub const HEADER_SIGNATURE: &str = "X-Microprocess-Signature";
/// Process calls only: the child's `seq`.
pub const HEADER_SEQ: &str = "X-Microprocess-Seq";
/// Process calls only: the attempt number, 1-based.
pub const HEADER_ATTEMPT: &str = "X-Microprocess-Attempt";
/// Process calls of a microprocess with callback completion (1.1): where the service
/// reports the outcome of a `202 Accepted` (the body's `"callback"` too).
pub const HEADER_CALLBACK: &str = "X-Microprocess-Callback";
/// The path of the kit's callback: a service reports to the URL it is given, which ends
/// in this path.
pub const CALLBACK_PATH: &str = "/report";
/// `<run>/<seq>` on a process call, `<run>/reduce` on the reduce call.
pub const HEADER_IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// `Content-Type` of every POST.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Longest item id, in bytes of UTF-8.
pub const MAX_ITEM_ID_BYTES: usize = 512;
/// Largest item payload, serialized as compact JSON.
pub const MAX_ITEM_PAYLOAD_BYTES: usize = 64 * 1024;

/// One page of `GET <split.path>?limit=<n>[&cursor=<opaque>]`.
///
/// `next` must be present: `null` ends the split, so a page that leaves it out is
/// malformed rather than read as the last page. An item that is not an object with a
/// string `id` also makes the page malformed; an item that only breaks the limits is
/// caught by [`validate_item`] and becomes a failed child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitPage {
    pub items: Vec<SplitItem>,
    #[serde(deserialize_with = "required_nullable")]
    pub next: Option<String>,
}

/// One item of a split page; it becomes one child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitItem {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// Body of `POST <process.path>`. `payload` is always sent, as `null` when the item had
/// none, so the body has one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessRequest {
    pub microprocess: String,
    pub run: RunId,
    pub seq: u64,
    pub item: String,
    #[serde(default)]
    pub payload: Option<Value>,
    pub attempt: u32,
    /// Callback completion only (1.1): the URL the service reports a `202`'s outcome to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<String>,
}

/// What a service reports to the callback (1.1, section 2b).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    /// The child is done: `result` is stored as a 2xx body would be.
    Succeeded,
    /// A permanent failure, with `reason`.
    Failed,
    /// Still working: the lease is renewed.
    Heartbeat,
}

/// Body of `POST <callback>`, signed by the service as the kit signs its requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackReport {
    pub run: RunId,
    pub seq: u64,
    pub attempt: u32,
    pub outcome: ReportOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Body of `POST <reduce.path>`, sent once every child is `SUCCEEDED` or `FAILED`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReduceRequest {
    pub microprocess: String,
    pub run: RunId,
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub started_at: DateTime<Utc>,
    pub split_done_at: DateTime<Utc>,
    pub results: ResultsLocator,
}

/// Where the children's results of a run are: the ledger table and every partition key
/// holding the run's children (see [`crate::ledger_keys`]), and the bucket holding
/// results over 64 KiB. `partition_key` is sent only when there is exactly one key
/// (contract 1.1), so a service that reads one key fails loudly on a spread run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultsLocator {
    pub table: String,
    pub partition_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    pub bucket: Option<String>,
}

impl ResultsLocator {
    /// The locator of `partition_keys`, with `partition_key` when there is one key.
    pub fn new(table: String, partition_keys: Vec<String>, bucket: Option<String>) -> Self {
        let partition_key = match partition_keys.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        };
        ResultsLocator {
            table,
            partition_keys,
            partition_key,
            bucket,
        }
    }
}

/// Why a split item becomes a failed child; the message is the reason stored with it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ItemError {
    #[error("item id is empty; an id must be 1 to 512 bytes of UTF-8")]
    EmptyId,
    #[error("item id is {len} bytes long; an id must be at most 512 bytes of UTF-8")]
    IdTooLong { len: usize },
    #[error(
        "item id contains the control character U+{code:04X} at byte {index}; \
         an id must not contain control characters"
    )]
    ControlCharacter { index: usize, code: u32 },
    #[error(
        "item payload is {len} bytes serialized; a payload must be at most 65536 bytes (64 KiB)"
    )]
    PayloadTooLarge { len: usize },
    #[error(
        "item {part} contains U+{code:04X}, which an SQS message cannot carry; ids and \
         payloads must stay within U+0009, U+000A, U+000D, U+0020 to U+D7FF, U+E000 to \
         U+FFFD and U+10000 to U+10FFFF"
    )]
    NotCarriable { part: &'static str, code: u32 },
}

impl ItemError {
    /// The human reason stored with the failed child.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

/// Checks an item against the contract's limits: an id of 1 to 512 bytes of UTF-8
/// without control characters, a payload of at most 64 KiB serialized, and nothing an SQS
/// message cannot carry.
pub fn validate_item(item: &SplitItem) -> Result<(), ItemError> {
    validate_item_id(&item.id)?;
    if let Some(payload) = &item.payload {
        let len = serialized_len(payload);
        if len > MAX_ITEM_PAYLOAD_BYTES {
            return Err(ItemError::PayloadTooLarge { len });
        }
        // Serialized, control characters are escapes; what is left that SQS refuses is in
        // the text as is.
        let text = serde_json::to_string(payload).unwrap_or_default();
        if let Some(c) = text.chars().find(|c| !sqs_carries(*c)) {
            return Err(ItemError::NotCarriable {
                part: "payload",
                code: u32::from(c),
            });
        }
    }
    Ok(())
}

/// Whether an SQS message body may hold `c` (the XML 1.0 characters SQS accepts).
pub fn sqs_carries(c: char) -> bool {
    matches!(u32::from(c), 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x1_0000..=0x10_FFFF)
}

/// The id half of [`validate_item`].
pub fn validate_item_id(id: &str) -> Result<(), ItemError> {
    if id.is_empty() {
        return Err(ItemError::EmptyId);
    }
    if id.len() > MAX_ITEM_ID_BYTES {
        return Err(ItemError::IdTooLong { len: id.len() });
    }
    if let Some((index, c)) = id.char_indices().find(|(_, c)| c.is_control()) {
        return Err(ItemError::ControlCharacter {
            index,
            code: u32::from(c),
        });
    }
    if let Some(c) = id.chars().find(|c| !sqs_carries(*c)) {
        return Err(ItemError::NotCarriable {
            part: "id",
            code: u32::from(c),
        });
    }
    Ok(())
}

/// Length of `value` as compact JSON, counted without building the string.
fn serialized_len(value: &Value) -> usize {
    struct ByteCounter(usize);
    impl io::Write for ByteCounter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = ByteCounter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        // A `Value` has string keys and a counter never fails, so this cannot happen;
        // if it did, the payload is treated as too large rather than let through.
        Err(_) => usize::MAX,
    }
}

/// `Idempotency-Key` of a process call: `<run>/<seq>`.
pub fn process_idempotency_key(run: &RunId, seq: u64) -> String {
    format!("{run}/{seq}")
}

/// `Idempotency-Key` of the reduce call: `<run>/reduce`.
pub fn reduce_idempotency_key(run: &RunId) -> String {
    format!("{run}/reduce")
}

/// How one attempt of a process or reduce call ended, as seen by the kit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    /// The service answered with this HTTP status (redirects are not followed).
    Status(u16),
    /// No complete answer within the process timeout.
    TimedOut,
    /// No connection, or the connection broke before an answer.
    ConnectionFailed,
}

/// What the kit does with an attempt, per the contract's response table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the child is `SUCCEEDED` (or the run `COMPLETED` after a reduce).
    Succeeded,
    /// 408, 425, 429, 5xx, timeout, connection error: try again with backoff, up to
    /// `max_attempts`.
    Retry,
    /// Anything else, 3xx included: `FAILED` at once, message to the dead-letter queue.
    Failed,
}

impl Outcome {
    /// Classifies an HTTP status.
    pub fn from_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Succeeded,
            408 | 425 | 429 | 500..=599 => Outcome::Retry,
            _ => Outcome::Failed,
        }
    }

    /// Classifies how an attempt ended.
    pub fn classify(result: CallResult) -> Outcome {
        match result {
            CallResult::Status(status) => Outcome::from_status(status),
            CallResult::TimedOut | CallResult::ConnectionFailed => Outcome::Retry,
        }
    }
}

/// Deserializes an `Option` whose field must be present, `null` allowed.
fn required_nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn run() -> RunId {
        RunId::parse("2026-11-01T02-00-00Z").unwrap()
    }

    #[test]
    fn split_page_reads_the_contract_example() {
        let page: SplitPage = serde_json::from_str(
            r#"{"items": [{"id": "ACN-000000001", "payload": {"any": "json"}},
                          {"id": "ACN-000000002"}],
                "next": "opaque-cursor"}"#,
        )
        .unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[0].payload, Some(json!({"any": "json"})));
        assert_eq!(page.items[1].payload, None);
        assert_eq!(page.next.as_deref(), Some("opaque-cursor"));
    }

    #[test]
    fn split_page_next_null_ends_but_missing_next_is_malformed() {
        let last: SplitPage = serde_json::from_str(r#"{"items": [], "next": null}"#).unwrap();
        assert_eq!(last.next, None);
        let error = serde_json::from_str::<SplitPage>(r#"{"items": []}"#).unwrap_err();
        assert!(
            error.to_string().contains("missing field `next`"),
            "{error}"
        );
    }

    #[test]
    fn split_page_with_a_non_string_id_is_malformed() {
        assert!(
            serde_json::from_str::<SplitPage>(r#"{"items": [{"id": 7}], "next": null}"#).is_err()
        );
    }

    #[test]
    fn item_limits() {
        let item = |id: &str| SplitItem {
            id: id.to_owned(),
            payload: None,
        };
        assert_eq!(validate_item(&item("ACN-1")), Ok(()));
        assert_eq!(validate_item(&item(&"é".repeat(256))), Ok(()));
        assert_eq!(validate_item(&item("")), Err(ItemError::EmptyId));
        assert_eq!(
            validate_item(&item(&"x".repeat(513))),
            Err(ItemError::IdTooLong { len: 513 })
        );
        assert_eq!(
            validate_item(&item(&"é".repeat(257))),
            Err(ItemError::IdTooLong { len: 514 })
        );
        assert_eq!(
            validate_item(&item("a\tb")),
            Err(ItemError::ControlCharacter {
                index: 1,
                code: 0x09
            })
        );
        assert_eq!(
            validate_item(&item("é\u{85}")),
            Err(ItemError::ControlCharacter {
                index: 2,
                code: 0x85
            })
        );
    }

    #[test]
    fn payload_limit_is_on_compact_json() {
        // `"` + n bytes + `"` serialized.
        let at_limit = SplitItem {
            id: "a".into(),
            payload: Some(Value::String("x".repeat(MAX_ITEM_PAYLOAD_BYTES - 2))),
        };
        assert_eq!(validate_item(&at_limit), Ok(()));
        let uncarriable = SplitItem {
            id: "ACN-\u{FFFF}".into(),
            payload: None,
        };
        assert_eq!(
            validate_item(&uncarriable),
            Err(ItemError::NotCarriable {
                part: "id",
                code: 0xFFFF
            })
        );
        let in_payload = SplitItem {
            id: "ACN-1".into(),
            payload: Some(serde_json::json!({"name": "a\u{FFFE}", "ok": "\u{1}\u{7F}\u{1F600}"})),
        };
        assert_eq!(
            validate_item(&in_payload),
            Err(ItemError::NotCarriable {
                part: "payload",
                code: 0xFFFE
            })
        );
        let over = SplitItem {
            id: "a".into(),
            payload: Some(Value::String("x".repeat(MAX_ITEM_PAYLOAD_BYTES - 1))),
        };
        assert_eq!(
            validate_item(&over),
            Err(ItemError::PayloadTooLarge { len: 65537 })
        );
    }

    #[test]
    fn item_error_reasons_are_human() {
        assert_eq!(
            ItemError::ControlCharacter { index: 3, code: 10 }.reason(),
            "item id contains the control character U+000A at byte 3; \
             an id must not contain control characters"
        );
    }

    #[test]
    fn process_request_matches_the_contract_example() {
        let request = ProcessRequest {
            microprocess: "credit-scores".into(),
            run: run(),
            seq: 41,
            item: "ACN-000000042".into(),
            payload: Some(json!({"any": "json"})),
            attempt: 1,
            callback: None,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"microprocess": "credit-scores", "run": "2026-11-01T02-00-00Z", "seq": 41,
                   "item": "ACN-000000042", "payload": {"any": "json"}, "attempt": 1})
        );
        let without_payload = ProcessRequest {
            payload: None,
            ..request
        };
        assert_eq!(
            serde_json::to_value(&without_payload).unwrap()["payload"],
            Value::Null
        );
    }

    #[test]
    fn reduce_request_matches_the_contract_example() {
        let request = ReduceRequest {
            microprocess: "credit-scores".into(),
            run: run(),
            total: 19_000_000,
            succeeded: 18_999_990,
            failed: 10,
            started_at: Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 0).unwrap(),
            split_done_at: Utc.with_ymd_and_hms(2026, 11, 1, 2, 7, 12).unwrap(),
            results: ResultsLocator::new(
                "ledger".into(),
                vec![
                    "RUN#credit-scores#2026-11-01T02-00-00Z#0".into(),
                    "RUN#credit-scores#2026-11-01T02-00-00Z#1".into(),
                ],
                None,
            ),
        };
        let value = serde_json::to_value(&request).unwrap();
        assert_eq!(
            value,
            json!({"microprocess": "credit-scores", "run": "2026-11-01T02-00-00Z",
                   "total": 19_000_000, "succeeded": 18_999_990, "failed": 10,
                   "started_at": "2026-11-01T02:00:00Z", "split_done_at": "2026-11-01T02:07:12Z",
                   "results": {"table": "ledger",
                               "partition_keys": ["RUN#credit-scores#2026-11-01T02-00-00Z#0",
                                                  "RUN#credit-scores#2026-11-01T02-00-00Z#1"],
                               "bucket": null}})
        );
        let back: ReduceRequest = serde_json::from_value(value).unwrap();
        assert_eq!(back, request);
        // One key: `partition_key` is sent beside `partition_keys`.
        let one = ResultsLocator::new("ledger".into(), vec!["RUN#m#r#0".into()], None);
        assert_eq!(
            serde_json::to_value(&one).unwrap(),
            json!({"table": "ledger", "partition_keys": ["RUN#m#r#0"],
                   "partition_key": "RUN#m#r#0", "bucket": null})
        );
    }

    #[test]
    fn idempotency_keys() {
        assert_eq!(
            process_idempotency_key(&run(), 41),
            "2026-11-01T02-00-00Z/41"
        );
        assert_eq!(
            reduce_idempotency_key(&run()),
            "2026-11-01T02-00-00Z/reduce"
        );
    }

    #[test]
    fn response_classification_follows_the_table() {
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(Outcome::from_status(status), Outcome::Succeeded, "{status}");
        }
        for status in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(Outcome::from_status(status), Outcome::Retry, "{status}");
        }
        for status in [
            100, 199, 300, 301, 302, 304, 307, 308, 400, 401, 403, 404, 409, 422, 600,
        ] {
            assert_eq!(Outcome::from_status(status), Outcome::Failed, "{status}");
        }
        assert_eq!(Outcome::classify(CallResult::TimedOut), Outcome::Retry);
        assert_eq!(
            Outcome::classify(CallResult::ConnectionFailed),
            Outcome::Retry
        );
        assert_eq!(Outcome::classify(CallResult::Status(302)), Outcome::Failed);
    }
}
