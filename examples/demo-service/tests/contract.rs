//! The service side of contract v1 over real HTTP: signatures, headers, split, process,
//! reduce, idempotency, bookkeeping and the live host.

mod common;

use std::collections::HashSet;

use common::{get, now, start, Call, MP, RUN, SECRET};
use demo_service::{Config, HEADER_REPLAYED};
use microprocess_shared::contract::{HEADER_CONTRACT, HEADER_IDEMPOTENCY_KEY, HEADER_SEQ};
use microprocess_shared::signing::{sign, signature_header};
use serde_json::{json, Value};

// ---- signatures ---------------------------------------------------------------------

#[tokio::test]
async fn a_signed_request_is_accepted() {
    let service = start(Config::new(SECRET).with_items(3)).await;
    let reply = Call::split(MP, RUN, "limit=10")
        .answer(&service.queue_url())
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_signature_with_another_secret_is_refused_with_a_json_401() {
    let service = start(Config::new(SECRET)).await;
    let reply = Call::process(MP, RUN, 0, 1)
        .signed_with(&["not-the-secret"])
        .answer(&service.queue_url())
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.error(), "signature_mismatch");
    assert!(reply.json()["message"]
        .as_str()
        .unwrap()
        .contains("same secret"));
    // Refused before anything was counted.
    let stats = service.stats();
    assert!(stats.run(MP, RUN).is_none());
    assert_eq!(stats.rejected("signature_mismatch"), 1);
}

#[tokio::test]
async fn a_signature_more_than_300_s_away_is_refused() {
    let service = start(Config::new(SECRET)).await;
    let base = service.queue_url();
    for t in [now() - 301 - 5, now() + 301 + 5] {
        let reply = Call::split(MP, RUN, "limit=1")
            .signed_at(t)
            .answer(&base)
            .await;
        assert_eq!(reply.status, 401, "t = {t}");
        assert_eq!(reply.error(), "signature_stale");
    }
    // Inside the window (with room for a slow test machine) it is fine.
    for t in [now() - 290, now() + 290] {
        let reply = Call::split(MP, RUN, "limit=1")
            .signed_at(t)
            .answer(&base)
            .await;
        assert_eq!(reply.status, 200, "t = {t}");
    }
}

#[tokio::test]
async fn a_signed_body_replayed_to_another_path_is_refused() {
    let service =
        start(Config::new(SECRET).with_microprocesses(["credit-scores", "abn-refresh"])).await;
    let base = service.queue_url();
    // The same body and signature, sent to the other microprocess's endpoint.
    let mut call = Call::process(MP, RUN, 0, 1);
    call.signed_path = Some(call.path.clone());
    call.path = "/microprocesses/abn-refresh/process".to_owned();
    let reply = call
        .header("X-Microprocess-Name", "abn-refresh")
        .answer(&base)
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error(), "signature_mismatch");
    // A split signed for one cursor and sent with another.
    let mut call = Call::split(MP, RUN, "limit=10&cursor=c1-10");
    call.signed_path = Some(format!("/microprocesses/{MP}/split?limit=10&cursor=c1-20"));
    let reply = call.answer(&base).await;
    assert_eq!(reply.status, 401);
    // A body changed after signing.
    let mut call = Call::process(MP, RUN, 0, 1);
    call.raw_signature = Some(call.signature());
    call.body = String::from_utf8(call.body)
        .unwrap()
        .replace("\"attempt\":1", "\"attempt\":2")
        .into_bytes();
    let reply = call.answer(&base).await;
    assert_eq!(reply.status, 401);
}

#[tokio::test]
async fn a_missing_or_malformed_signature_is_refused() {
    let service = start(Config::new(SECRET)).await;
    let base = service.queue_url();
    // The helper always signs, so this one is sent by hand.
    let client = common::client();
    let response = client
        .get(format!("{base}/microprocesses/{MP}/split?limit=1"))
        .header(HEADER_CONTRACT, "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"], "signature_missing");

    for raw in ["t=1", "v1=abc", "garbage", "t=now,v1=00"] {
        let mut call = Call::split(MP, RUN, "limit=1");
        call.raw_signature = Some(raw.to_owned());
        let reply = call.answer(&base).await;
        assert_eq!(reply.status, 401, "{raw}");
        assert_eq!(reply.error(), "signature_malformed", "{raw}");
    }
}

#[tokio::test]
async fn during_a_rotation_either_secret_and_any_v1_is_accepted() {
    let config = Config {
        secrets: vec!["old-secret".into(), "new-secret".into()],
        ..Config::new(SECRET)
    };
    let service = start(config).await;
    let base = service.queue_url();
    for secrets in [
        &["old-secret"][..],
        &["new-secret"],
        &["retired", "new-secret"],
    ] {
        let reply = Call::split(MP, RUN, "limit=1")
            .signed_with(secrets)
            .answer(&base)
            .await;
        assert_eq!(reply.status, 200, "{secrets:?}");
    }
    let reply = Call::split(MP, RUN, "limit=1")
        .signed_with(&["retired"])
        .answer(&base)
        .await;
    assert_eq!(reply.status, 401);
}

#[tokio::test]
async fn the_contract_version_is_checked_after_the_signature() {
    let service = start(Config::new(SECRET)).await;
    let base = service.queue_url();
    let reply = Call::split(MP, RUN, "limit=1")
        .without_header(HEADER_CONTRACT)
        .answer(&base)
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error(), "contract_version");
    let reply = Call::split(MP, RUN, "limit=1")
        .header(HEADER_CONTRACT, "2")
        .answer(&base)
        .await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["message"].as_str().unwrap().contains("`2`"));
}

/// The worked example of docs/contract.md: if this fails, fix the document too.
#[test]
fn the_worked_signing_example_of_the_docs_holds() {
    let body = r#"{"microprocess":"credit-scores","run":"2026-11-01T02-00-00Z","seq":41,"item":"ACN-000000042","payload":{"account":42},"attempt":1}"#;
    let v1 = sign(
        "example-secret",
        1_793_502_000,
        "POST",
        "/microprocesses/credit-scores/process",
        body.as_bytes(),
    );
    assert_eq!(v1, DOC_PROCESS_V1);
    assert_eq!(
        signature_header(1_793_502_000, &[&v1]),
        format!("t=1793502000,v1={DOC_PROCESS_V1}")
    );
    let split = sign(
        "example-secret",
        1_793_502_000,
        "GET",
        "/microprocesses/credit-scores/split?limit=100&cursor=c1-100",
        b"",
    );
    assert_eq!(split, DOC_SPLIT_V1);
    let doc = include_str!("../../../docs/contract.md");
    assert!(
        doc.contains(DOC_PROCESS_V1),
        "docs/contract.md shows another process v1"
    );
    assert!(
        doc.contains(DOC_SPLIT_V1),
        "docs/contract.md shows another split v1"
    );
    assert!(doc.contains(body), "docs/contract.md shows another body");
}

const DOC_PROCESS_V1: &str = "c181ec8d26ebd0a0a84f0dbd707f42d0a049c9101a2e4e2167b70fef045b8425";
const DOC_SPLIT_V1: &str = "29dce2343f39ce57d4c6696d1f8b5adfabfd4abebd93bd0a205a5a3b7b3883e3";

// ---- split --------------------------------------------------------------------------

#[tokio::test]
async fn paging_is_deterministic_and_covers_every_item_once() {
    let service = start(Config::new(SECRET).with_items(1005)).await;
    let base = service.queue_url();
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            None => "limit=100".to_owned(),
            Some(cursor) => format!("limit=100&cursor={cursor}"),
        };
        let reply = Call::split(MP, RUN, &query).answer(&base).await;
        assert_eq!(reply.status, 200);
        // The same cursor again: byte for byte the same page.
        let again = Call::split(MP, RUN, &query).answer(&base).await;
        assert_eq!(again.body, reply.body);
        let page = reply.json();
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_owned());
            assert!(item["payload"].is_object());
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(page["next"].is_null());
                break;
            }
        }
    }
    assert_eq!(pages, 11);
    let expected: Vec<String> = (1..=1005).map(|n| format!("ACN-{n:09}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1005);
    assert_eq!(service.stats().run(MP, RUN).unwrap().split_calls, 22);
}

#[tokio::test]
async fn bad_split_requests_are_400_with_the_reason() {
    let service = start(Config::new(SECRET).with_items(10)).await;
    let base = service.queue_url();
    for (query, needle) in [
        ("limit=0", "`limit=0`"),
        ("limit=many", "`limit=many`"),
        ("limit=5&cursor=nonsense", "cursor `nonsense`"),
        ("limit=5&cursor=c1-10", "past the last of the 10 items"),
    ] {
        let reply = Call::split(MP, RUN, query).answer(&base).await;
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(reply.error(), "bad_page_request");
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(needle), "{query}: {message}");
    }
    let reply = Call::split("other", RUN, "limit=5").answer(&base).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error(), "unknown_microprocess");
    let reply = Call::split(MP, "bad run", "limit=5").answer(&base).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error(), "bad_run");
}

// ---- process ------------------------------------------------------------------------

#[tokio::test]
async fn process_scores_the_item_like_the_live_host() {
    let service = start(Config::new(SECRET)).await;
    let reply = Call::process(MP, RUN, 41, 1)
        .answer(&service.queue_url())
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let score = reply.json();
    assert_eq!(score["item"], "ACN-000000042");
    assert_eq!(score["model"], "demo-credit-v1");
    let live = get(&format!("{}/scores/ACN-000000042", service.live_url())).await;
    assert_eq!(live.status, 200);
    assert_eq!(live.json(), score);
    assert_eq!(
        score["score"].as_u64().unwrap(),
        u64::from(demo_service::score::score("ACN-000000042"))
    );
    assert_eq!(
        get(&format!("{}/healthz", service.live_url())).await.json(),
        json!({"status": "ok"})
    );
    assert_eq!(
        get(&format!("{}/nope", service.live_url())).await.status,
        404
    );
}

#[tokio::test]
async fn a_request_that_disagrees_with_itself_is_400() {
    let service = start(Config::new(SECRET).with_items(100)).await;
    let base = service.queue_url();
    let cases = [
        (
            Call::process(MP, RUN, 5, 1).header(HEADER_SEQ, "6"),
            "inconsistent_request",
        ),
        (
            Call::process(MP, RUN, 5, 1).header(HEADER_IDEMPOTENCY_KEY, "something-else"),
            "inconsistent_request",
        ),
        (
            Call::process(MP, RUN, 5, 1).without_header(HEADER_IDEMPOTENCY_KEY),
            "missing_header",
        ),
        (
            Call::process(MP, RUN, 5, 1).header("X-Microprocess-Run", "other-run"),
            "inconsistent_request",
        ),
        (Call::process(MP, RUN, 500, 1), "unknown_seq"),
        (Call::process(MP, RUN, 0, 0), "bad_attempt"),
    ];
    for (call, code) in cases {
        let reply = call.answer(&base).await;
        assert_eq!(reply.status, 400, "{code}");
        assert_eq!(reply.error(), code);
    }
    // An item that is not the one listed at that seq: an off-by-one in the caller.
    let mut call = Call::process(MP, RUN, 41, 1);
    call.body = String::from_utf8(call.body)
        .unwrap()
        .replace("ACN-000000042", "ACN-000000041")
        .into_bytes();
    let reply = call.answer(&base).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error(), "item_mismatch");
    let mut call = Call::process(MP, RUN, 1, 1);
    call.body = b"not json".to_vec();
    assert_eq!(call.answer(&base).await.error(), "bad_body");
    // None of them reached the bookkeeping of a child.
    let stats = service.stats();
    assert!(stats.run(MP, RUN).is_none_or(|run| run.children.is_empty()));
    assert_eq!(stats.rejected("inconsistent_request"), 3);
}

#[tokio::test]
async fn the_same_idempotency_key_gets_the_same_answer_and_counts_once() {
    let service = start(Config::new(SECRET)).await;
    let base = service.queue_url();
    let first = Call::process(MP, RUN, 7, 1).answer(&base).await;
    let second = Call::process(MP, RUN, 7, 2).answer(&base).await;
    let third = Call::process(MP, RUN, 7, 2).answer(&base).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header(HEADER_REPLAYED), None);
    for replay in [&second, &third] {
        assert_eq!(replay.status, 200);
        assert_eq!(replay.body, first.body);
        assert_eq!(replay.header(HEADER_REPLAYED), Some("true"));
    }
    // Another run is another key.
    let other = Call::process(MP, "2026-11-02T02-00-00Z", 7, 1)
        .answer(&base)
        .await;
    assert_eq!(other.header(HEADER_REPLAYED), None);

    let stats = service.stats();
    let run = stats.run(MP, RUN).unwrap();
    assert_eq!(run.process_calls, 3);
    assert_eq!(run.succeeded, 1);
    let child = run.child(7).unwrap();
    assert_eq!(child.item, "ACN-000000008");
    assert_eq!(child.calls, 3);
    assert_eq!(child.attempts, [1, 2, 2]);
    assert_eq!(child.replays, 2);
    assert_eq!(child.last_status, Some(200));
    assert!(child.succeeded);
    assert_eq!(
        child.history.iter().map(|c| c.replay).collect::<Vec<_>>(),
        [false, true, true]
    );
}

// ---- reduce -------------------------------------------------------------------------

#[tokio::test]
async fn reduce_writes_the_report_once() {
    let reports = tempfile::tempdir().unwrap();
    let config = Config::new(SECRET)
        .with_items(20)
        .with_report_dir(reports.path())
        .with_chaos(demo_service::Chaos {
            fail_seqs_4xx: "3".parse().unwrap(),
            ..Default::default()
        });
    let service = start(config).await;
    let base = service.queue_url();
    for seq in 0..20 {
        Call::process(MP, RUN, seq, 1).answer(&base).await;
    }
    // A duplicate delivery does not count twice.
    Call::process(MP, RUN, 0, 2).answer(&base).await;

    let reply = Call::reduce(MP, RUN, 20, 19, 1).answer(&base).await;
    assert_eq!(reply.status, 200);
    let path = reports.path().join(MP).join(format!("{RUN}.json"));
    assert_eq!(reply.json()["report_path"], json!(path));
    let written: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(reply.json()["report"], written);
    assert_eq!(written["run"], RUN);
    assert_eq!(written["total"], 20);
    assert_eq!(written["succeeded"], 19);
    assert_eq!(written["failed"], 1);
    assert_eq!(written["service"]["succeeded"], 19);
    assert_eq!(written["service"]["failed"], 1);
    assert_eq!(written["service"]["process_calls"], 21);
    assert_eq!(
        written["results"]["partition_keys"],
        json!([format!("RUN#{MP}#{RUN}#0"), format!("RUN#{MP}#{RUN}#1")])
    );
    // Two keys: no `partition_key` for a service that would read only one.
    assert!(written["results"].get("partition_key").is_none());
    let histogram = written["histogram"].as_object().unwrap();
    assert_eq!(histogram.len(), 11);
    assert_eq!(histogram.keys().next().map(String::as_str), Some("300-349"));
    assert_eq!(
        histogram.values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        19
    );
    let expected = (0..20u64)
        .filter(|seq| *seq != 3)
        .filter(|seq| {
            (700..=749).contains(&demo_service::score::score(&format!("ACN-{:09}", seq + 1)))
        })
        .count();
    assert_eq!(histogram["700-749"], expected);

    // Delivered again: same answer, not written or counted again.
    std::fs::remove_file(&path).unwrap();
    let again = Call::reduce(MP, RUN, 20, 19, 1).answer(&base).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, reply.body);
    assert_eq!(again.header(HEADER_REPLAYED), Some("true"));
    assert!(!path.exists());
    let reduce = service.stats().run(MP, RUN).unwrap().reduce.clone();
    assert_eq!(reduce.calls, 2);
    assert!(reduce.completed);
    assert_eq!(reduce.statuses, [Some(200), Some(200)]);
    assert_eq!(reduce.report_path, Some(path));
    assert_eq!(reduce.report, Some(written));
}

#[tokio::test]
async fn reduce_checks_its_key_and_counts() {
    let service = start(Config::new(SECRET)).await;
    let base = service.queue_url();
    let reply = Call::reduce(MP, RUN, 10, 5, 1).answer(&base).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error(), "bad_counts");
    let reply = Call::reduce(MP, RUN, 10, 9, 1)
        .header(HEADER_IDEMPOTENCY_KEY, &format!("{RUN}/0"))
        .answer(&base)
        .await;
    assert_eq!(reply.error(), "inconsistent_request");
    // Without a report dir the report lives in the stats only.
    let reply = Call::reduce(MP, RUN, 0, 0, 0).answer(&base).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["report_path"], Value::Null);
    assert!(service
        .stats()
        .run(MP, RUN)
        .unwrap()
        .reduce
        .report
        .is_some());
}

// ---- bookkeeping over HTTP ----------------------------------------------------------

#[tokio::test]
async fn demo_stats_over_http_match_the_library() {
    let service = start(Config::new(SECRET)).await;
    let base = service.queue_url();
    Call::split(MP, RUN, "limit=2").answer(&base).await;
    Call::process(MP, RUN, 1, 1).answer(&base).await;
    Call::process(MP, RUN, 1, 1)
        .signed_with(&["wrong"])
        .answer(&base)
        .await;
    let reply = get(&format!("{base}/_demo/stats")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::to_value(service.stats()).unwrap());
    let run = &reply.json()["microprocesses"][MP][RUN];
    assert_eq!(run["split_calls"], 1);
    assert_eq!(run["children"]["1"]["calls"], 1);
    assert_eq!(run["children"]["1"]["last_status"], 200);
    assert_eq!(reply.json()["rejections"]["signature_mismatch"], 1);
    assert_eq!(get(&format!("{base}/elsewhere")).await.status, 404);
}

#[tokio::test]
async fn the_service_stops_gracefully() {
    let service = start(Config::new(SECRET)).await;
    let base = service.queue_url();
    assert_eq!(
        Call::split(MP, RUN, "limit=1").answer(&base).await.status,
        200
    );
    service.shutdown().await.unwrap();
    assert!(Call::split(MP, RUN, "limit=1").send(&base).await.is_err());
}
