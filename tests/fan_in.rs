//! Fan-in with sharded counters (`results.counter_shards`): a run counted on one, 8 or 64
//! counter items and drained by four forwarders at once counts every child exactly once
//! (the counters summed over the shards equal the child records), gives the same totals
//! whatever the shard count, and has its reduce claimed and called once, also when
//! messages come twice. The write units this costs are in `make bench` (`fan-in`).

use std::time::Duration;

use demo_service::{Chaos, SeqSelector};
use kit_tests::drive::{drain_counted, sharded_run};
use kit_tests::pipeline::{ForwarderOptions, Pipeline, Setup};
use microprocess_shared::ledger_keys::RunState;

const TOTAL: u64 = 120;
const FORWARDERS: usize = 4;
/// Seqs the service refuses for good (422): `FAILED` children, dead-lettered.
const FAILING: [u64; 4] = [3, 17, 64, 101];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_counters_give_the_same_totals_and_exactly_one_reduce() {
    let mut totals = Vec::new();
    for shards in [1, 8, 64] {
        let p = Pipeline::start(Setup {
            items: TOTAL,
            chaos: Chaos {
                fail_seqs_4xx: SeqSelector::Seqs(FAILING.into()),
                ..Chaos::default()
            },
            max_receive_count: Some(4),
            ..Setup::default()
        })
        .await;
        let run = sharded_run(&p, &format!("fan-in-{shards}"), TOTAL, shards).await;
        // Some messages twice from the start: concurrent forwarders may get both copies.
        for seq in [0, 9, 10, 64, 119] {
            p.send_process(&run, seq).await;
        }
        let forwarders: Vec<_> = (0..FORWARDERS)
            .map(|_| p.build_forwarder(&ForwarderOptions::default()))
            .collect();
        drain_counted(&p, &forwarders, Duration::from_secs(120)).await;

        let record = p.record(&run).await;
        assert_eq!(record.counter_shards, shards);
        assert_eq!(record.state, RunState::Completed, "{shards} shards");
        assert_eq!(p.reduce_calls(&run), 1, "{shards} shards: one reduce");
        let audit = p.audit(&format!("{shards} shards"), &run, TOTAL).await;
        audit.assert_clean();
        assert_eq!(
            (record.succeeded, record.failed, record.done),
            (audit.succeeded, audit.failed, TOTAL),
            "{shards} shards: the counters are the child records"
        );
        totals.push((record.succeeded, record.failed));

        // A late duplicate of a finished run changes nothing and claims nothing.
        p.send_process(&run, 5).await;
        drain_counted(&p, &forwarders[..1], Duration::from_secs(30)).await;
        let again = p.record(&run).await;
        assert_eq!(
            (again.succeeded, again.failed),
            (record.succeeded, record.failed)
        );
        assert_eq!(p.reduce_calls(&run), 1);
    }
    let expected = (TOTAL - FAILING.len() as u64, FAILING.len() as u64);
    assert!(totals.iter().all(|t| *t == expected), "{totals:?}");
}
