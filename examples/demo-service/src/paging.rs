//! The split: a fixed list of accounts, served in deterministic pages.
//!
//! Item `seq` (0-based) is the account `ACN-<seq + 1, 9 digits>`. A cursor is `c1-<offset>`,
//! the position of the first item of the page it asks for: asking again for one cursor
//! always returns the same items, and the pages cover every item exactly once, in order,
//! whatever `limit` each request uses.

use microprocess_shared::contract::{SplitItem, SplitPage};
use serde_json::json;
use thiserror::Error;

/// Largest page served, whatever `limit` asks for.
pub const MAX_PAGE: u64 = 10_000;
/// Page size when the request has no `limit`.
pub const DEFAULT_LIMIT: u64 = 100;

const CURSOR_PREFIX: &str = "c1-";
const SEGMENTS: [&str; 3] = ["retail", "small-business", "private-banking"];
const REGIONS: [&str; 4] = ["north", "south", "east", "west"];

/// The id of the item at `seq`.
pub fn item_id(seq: u64) -> String {
    format!("ACN-{:09}", seq + 1)
}

/// The payload of the item at `seq`: a small, deterministic application.
pub fn item_payload(seq: u64) -> serde_json::Value {
    let account = seq + 1;
    json!({
        "account": account,
        "segment": SEGMENTS[(account % 3) as usize],
        "region": REGIONS[(account % 4) as usize],
        "requested_limit": (account % 50 + 1) * 1000,
    })
}

/// The seq of the first item of the page at `cursor`.
pub fn start_of(items: u64, cursor: Option<&str>) -> Result<u64, PagingError> {
    match cursor {
        None => Ok(0),
        Some(cursor) => decode_cursor(cursor, items),
    }
}

/// The page that starts at `cursor` (the first page when `None`).
pub fn page(items: u64, cursor: Option<&str>, limit: u64) -> Result<SplitPage, PagingError> {
    let start = start_of(items, cursor)?;
    let end = start.saturating_add(limit.min(MAX_PAGE)).min(items);
    let next = (end < items).then(|| encode_cursor(end));
    let items = (start..end)
        .map(|seq| SplitItem {
            id: item_id(seq),
            payload: Some(item_payload(seq)),
        })
        .collect();
    Ok(SplitPage { items, next })
}

/// Reads `limit`: a whole number of at least 1.
pub fn parse_limit(limit: Option<&str>) -> Result<u64, PagingError> {
    let Some(text) = limit else {
        return Ok(DEFAULT_LIMIT);
    };
    match text.parse::<u64>() {
        Ok(limit) if limit >= 1 => Ok(limit),
        _ => Err(PagingError::BadLimit {
            limit: text.to_owned(),
        }),
    }
}

pub fn encode_cursor(offset: u64) -> String {
    format!("{CURSOR_PREFIX}{offset}")
}

fn decode_cursor(cursor: &str, items: u64) -> Result<u64, PagingError> {
    let bad = || PagingError::BadCursor {
        cursor: cursor.to_owned(),
    };
    // Chaos may pad a cursor with dots (`--cursor-bytes`).
    let digits = cursor
        .strip_prefix(CURSOR_PREFIX)
        .ok_or_else(bad)?
        .trim_end_matches('.');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let offset: u64 = digits.parse().map_err(|_| bad())?;
    if offset >= items {
        return Err(PagingError::CursorPastEnd {
            cursor: cursor.to_owned(),
            items,
        });
    }
    Ok(offset)
}

/// A split request this service cannot answer; it is answered 400.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PagingError {
    #[error("`limit={limit}` is not a page size; send a whole number of at least 1")]
    BadLimit { limit: String },
    #[error("cursor `{cursor}` was not made by this service; send back a `next` it returned")]
    BadCursor { cursor: String },
    #[error(
        "cursor `{cursor}` is past the last of the {items} items; send back a `next` it returned"
    )]
    CursorPastEnd { cursor: String, items: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_contract_example() {
        assert_eq!(item_id(0), "ACN-000000001");
        assert_eq!(item_id(41), "ACN-000000042");
    }

    #[test]
    fn pages_cover_every_item_once_in_order_whatever_the_limit() {
        for (items, limit) in [(0, 10), (1, 10), (10, 10), (1005, 100), (7, 3), (5, 1)] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = page(items, cursor.as_deref(), limit).unwrap();
                assert!(page.items.len() as u64 <= limit);
                seen.extend(page.items.into_iter().map(|item| item.id));
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let expected: Vec<String> = (0..items).map(item_id).collect();
            assert_eq!(seen, expected, "items {items}, limit {limit}");
        }
    }

    #[test]
    fn a_page_is_the_same_when_asked_again() {
        let first = page(50, Some("c1-20"), 7).unwrap();
        assert_eq!(first, page(50, Some("c1-20"), 7).unwrap());
        assert_eq!(first.items[0].id, "ACN-000000021");
        assert_eq!(first.next.as_deref(), Some("c1-27"));
    }

    #[test]
    fn limits_and_cursors_are_checked() {
        assert_eq!(parse_limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(parse_limit(Some("5")), Ok(5));
        for bad in ["0", "-1", "x", ""] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
        for bad in ["", "c1-", "c1-x", "c2-5", "5", "c1--5"] {
            assert_eq!(
                page(10, Some(bad), 5),
                Err(PagingError::BadCursor { cursor: bad.into() })
            );
        }
        assert_eq!(
            page(10, Some("c1-10"), 5),
            Err(PagingError::CursorPastEnd {
                cursor: "c1-10".into(),
                items: 10
            })
        );
        assert_eq!(
            page(100_000, None, u64::MAX).unwrap().items.len() as u64,
            MAX_PAGE
        );
    }
}
