//! Write units by DynamoDB's pricing rules, computed from the items written, for
//! endpoints that report no consumed capacity (moto reports none for transactions).
//!
//! Rules (DynamoDB developer guide, "Item sizes" and "Read/write capacity mode"): an item's
//! size is the UTF-8 length of each attribute name plus the size of its value (string:
//! UTF-8 length; number: about one byte per two significant digits plus one; boolean and
//! null: one byte); a standard write costs one unit per started KB, a transactional write
//! two. An update is billed on the larger of the item before and after it; the counter
//! items (run record, shards) are a few hundred bytes, so an update counts as one KB here.

use aws_sdk_dynamodb::types::AttributeValue;

use super::attrs::Item;

/// The size DynamoDB bills for `item`, in bytes.
pub(crate) fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number_size(number),
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(values) => 3 + values.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 0,
    }
}

fn number_size(number: &str) -> usize {
    let digits = number
        .bytes()
        .filter(u8::is_ascii_digit)
        .skip_while(|d| *d == b'0')
        .count()
        .max(1);
    digits.div_ceil(2) + 1
}

/// Units of one write of `size` bytes: one per started KB, at least one.
pub(crate) fn units(size: usize) -> u64 {
    u64::try_from(size.div_ceil(1024).max(1)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::attrs::{b, n, s};
    use std::collections::HashMap;

    #[test]
    fn sizes_follow_the_billing_rules() {
        let item: Item = HashMap::from([
            ("pk".to_owned(), s("RUN#a#b")),
            ("seq".to_owned(), n(41)),
            ("split_done".to_owned(), b(true)),
        ]);
        assert_eq!(item_size(&item), 2 + 7 + 3 + 2 + 10 + 1);
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("123456"), 4);
    }

    #[test]
    fn units_start_at_one_per_started_kilobyte() {
        assert_eq!(units(0), 1);
        assert_eq!(units(1024), 1);
        assert_eq!(units(1025), 2);
    }
}
