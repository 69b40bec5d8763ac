//! Reading and writing DynamoDB attribute values.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::ledger_keys::{PARTITION_KEY_ATTRIBUTE, SORT_KEY_ATTRIBUTE};

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn b(value: bool) -> AttributeValue {
    AttributeValue::Bool(value)
}

/// RFC 3339 in UTC, whole seconds, `Z`: the form of every time in the ledger.
pub(crate) fn time_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The TTL value: `now` plus `retention_days`, in epoch seconds.
pub(crate) fn expires_at(now: DateTime<Utc>, retention_days: u32) -> i64 {
    now.timestamp()
        .saturating_add(i64::from(retention_days).saturating_mul(86_400))
}

/// The key of an item.
pub(crate) fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([
        (PARTITION_KEY_ATTRIBUTE.to_owned(), s(pk)),
        (SORT_KEY_ATTRIBUTE.to_owned(), s(sk)),
    ])
}

/// `#name` → `name` for each attribute an expression names. Every attribute goes through
/// a placeholder, so reserved words (`state`, `cursor`, `result`, ...) never matter.
pub(crate) fn names(attributes: &[&str]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|a| (format!("#{a}"), (*a).to_owned()))
        .collect()
}

/// Typed reads of one item's attributes; an error names the attribute and what was
/// expected, and the caller adds the item's key.
pub(crate) struct Reader<'a> {
    pub item: &'a Item,
}

impl<'a> Reader<'a> {
    pub fn new(item: &'a Item) -> Self {
        Reader { item }
    }

    /// `pk/sk` of the item, for messages.
    pub fn key_text(&self) -> String {
        let part = |name| match self.item.get(name) {
            Some(AttributeValue::S(v)) => v.as_str(),
            _ => "?",
        };
        format!(
            "{}/{}",
            part(PARTITION_KEY_ATTRIBUTE),
            part(SORT_KEY_ATTRIBUTE)
        )
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, String> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.as_str())),
            Some(other) => Err(format!("`{name}` is {other:?}, expected a string")),
        }
    }

    pub fn str(&self, name: &str) -> Result<&'a str, String> {
        self.opt_str(name)?
            .ok_or_else(|| format!("`{name}` is missing"))
    }

    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, String> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("`{name}` is {v}, expected a whole number")),
            Some(other) => Err(format!("`{name}` is {other:?}, expected a number")),
        }
    }

    /// A counter: absent counts as 0; a negative value is an error.
    pub fn count(&self, name: &str) -> Result<u64, String> {
        let value = self.opt_i64(name)?.unwrap_or(0);
        u64::try_from(value).map_err(|_| format!("`{name}` is {value}, expected 0 or more"))
    }

    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, String> {
        match self.opt_i64(name)? {
            None => Ok(None),
            Some(v) => u64::try_from(v)
                .map(Some)
                .map_err(|_| format!("`{name}` is {v}, expected 0 or more")),
        }
    }

    pub fn u32_or(&self, name: &str, default: u32) -> Result<u32, String> {
        match self.opt_i64(name)? {
            None => Ok(default),
            Some(v) => u32::try_from(v).map_err(|_| format!("`{name}` is {v}, out of range")),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool, String> {
        match self.item.get(name) {
            None => Ok(false),
            Some(AttributeValue::Bool(v)) => Ok(*v),
            Some(other) => Err(format!("`{name}` is {other:?}, expected a boolean")),
        }
    }

    pub fn opt_time(&self, name: &str) -> Result<Option<DateTime<Utc>>, String> {
        match self.opt_str(name)? {
            None => Ok(None),
            Some(text) => DateTime::parse_from_rfc3339(text)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| format!("`{name}` is `{text}`, not an RFC 3339 time ({e})")),
        }
    }

    pub fn time(&self, name: &str) -> Result<DateTime<Utc>, String> {
        self.opt_time(name)?
            .ok_or_else(|| format!("`{name}` is missing"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_are_whole_seconds_in_utc() {
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 0).unwrap();
        assert_eq!(time_text(t), "2026-11-01T02:00:00Z");
        assert_eq!(expires_at(t, 1), t.timestamp() + 86_400);
    }

    #[test]
    fn reader_names_the_bad_attribute() {
        let item: Item = HashMap::from([
            ("pk".to_owned(), s("RUN#a#b")),
            ("sk".to_owned(), s("RUN")),
            ("done".to_owned(), n(-1)),
            ("total".to_owned(), s("7")),
            ("pages".to_owned(), n(3)),
        ]);
        let r = Reader::new(&item);
        assert_eq!(r.key_text(), "RUN#a#b/RUN");
        assert_eq!(r.count("pages"), Ok(3));
        assert_eq!(r.count("missing"), Ok(0));
        assert_eq!(
            r.count("done"),
            Err("`done` is -1, expected 0 or more".into())
        );
        assert!(r
            .opt_u64("total")
            .unwrap_err()
            .contains("expected a number"));
        assert_eq!(r.str("state"), Err("`state` is missing".into()));
        assert!(!r.bool("split_done").unwrap());
    }

    #[test]
    fn names_are_placeholders_for_every_attribute() {
        let map = names(&["state", "cursor"]);
        assert_eq!(map.get("#state").map(String::as_str), Some("state"));
        assert_eq!(map.get("#cursor").map(String::as_str), Some("cursor"));
    }
}
