//! The partial batch response never names an id Lambda would reject: every reported id
//! is a non-empty id of the batch, reported once, and exactly the ids asked for.

use std::collections::BTreeSet;

use aws_lambda_events::sqs::SqsMessage;
use forwarder::{batch_response, receive_count};
use proptest::prelude::*;

fn message(id: Option<String>) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = id;
    m
}

proptest! {
    #[test]
    fn reports_known_ids_once(
        ids in prop::collection::vec(prop::option::of("[a-c]{0,2}"), 0..12),
        keep in prop::collection::vec("[a-d]{0,2}", 0..12),
    ) {
        let batch: Vec<SqsMessage> = ids.iter().cloned().map(message).collect();
        let response = batch_response(&batch, keep.iter().map(String::as_str));
        let reported: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        let unique: BTreeSet<&str> = reported.iter().copied().collect();
        prop_assert_eq!(unique.len(), reported.len(), "an id reported twice");
        let known: BTreeSet<&str> = ids.iter().flatten().map(String::as_str).filter(|i| !i.is_empty()).collect();
        let wanted: BTreeSet<&str> = keep.iter().map(String::as_str).filter(|k| known.contains(k)).collect();
        prop_assert_eq!(unique, wanted);
    }
}

#[test]
fn receive_count_is_the_attempt() {
    let mut m = message(Some("a".into()));
    assert_eq!(receive_count(&m), 1);
    m.attributes
        .insert("ApproximateReceiveCount".into(), "4".into());
    assert_eq!(receive_count(&m), 4);
    m.attributes
        .insert("ApproximateReceiveCount".into(), "garbage".into());
    assert_eq!(receive_count(&m), 1);
}
