//! The forwarder as shipped: the release `bootstrap.zip` cargo-lambda builds for this
//! machine, run as `microprocess local run` runs it, against the demo service answering
//! with no added delay and the ledger on the kit's emulator.
//!
//! - CPU time (`utime + stime`) per message and peak memory (`VmHWM`) of the process,
//!   from `/proc`, over `FORWARDER_BENCH_MESSAGES` children (10,000 unless set) in
//!   batches of ten; CPU counts the warm batches (the first one, with the process's first
//!   connections, is left out), memory the whole life;
//! - added latency per message: the invocation that carried it (Runtime API hand-out to
//!   answer) minus the service's own time for it, measured in front of the service
//!   ([`timing_proxy`]); it includes the run read and the grouped ledger write, which go
//!   to the emulator here and to DynamoDB in AWS;
//! - cold start: process spawn to the first `next` on the Runtime API, over
//!   `FORWARDER_BENCH_COLD_STARTS` starts (10 unless set);
//! - the zips' sizes, both functions, every architecture built.
//!
//! `FORWARDER_BENCH_ZIP` runs another build of the forwarder (to compare profiles).

mod batches;
mod cold_start;
mod fixture;
mod proc_stats;
mod timing_proxy;
mod zips;

use std::time::Duration;

use microprocess_kit::local::code;

use crate::table::Table;
use crate::Size;
use fixture::Fixture;

/// Peak memory the issue allows: a quarter of the smallest function (128 MB), so the
/// smallest memory setting is safe with room for larger batches and results.
const PEAK_MEMORY_TARGET: u64 = 32 * 1024 * 1024;

pub async fn run(size: Size, table: &mut Table) {
    let messages = count("FORWARDER_BENCH_MESSAGES", size, 50, 10_000);
    let starts = count("FORWARDER_BENCH_COLD_STARTS", size, 2, 10);
    zips::report(table);
    let zip = zips::host_forwarder();
    eprintln!("bench: forwarder runs `{}`", zip.display());
    let work = tempfile::tempdir().expect("a temporary folder");
    let code = code::unpack(&zip, &work.path().join("code")).unwrap_or_else(|e| panic!("{e}"));
    let fixture = Fixture::start(messages).await;
    let environment = fixture.environment(&code.dir);

    let mut cold = Vec::new();
    for i in 0..starts {
        let log = work.path().join(format!("cold-start-{i}.log"));
        cold.push(cold_start::measure(&code.bootstrap, &code.dir, &environment, &log).await);
    }
    let mut ready: Vec<Duration> = cold.iter().map(|c| c.ready_after).collect();
    ready.sort();
    table.info(
        "forwarder",
        format!("cold start, spawn to first `next` (p50 of {starts})"),
        millis(percentile(&ready, 50.0)),
    );
    table.info(
        "forwarder",
        format!("cold start, spawn to first `next` (max of {starts})"),
        millis(ready[ready.len() - 1]),
    );
    let mut init_cpu: Vec<Duration> = cold.iter().map(|c| c.at_ready.cpu).collect();
    init_cpu.sort();
    table.info(
        "forwarder",
        "CPU time of the init phase (p50)",
        millis(percentile(&init_cpu, 50.0)),
    );
    let ready_memory = cold.iter().map(|c| c.at_ready.peak_rss).max().unwrap_or(0);
    table.info(
        "forwarder",
        "peak memory when ready (max)",
        mib(ready_memory),
    );

    fixture.queue_children(messages).await;
    let log = work.path().join("forwarder.log");
    let fed = batches::feed(&fixture, &code, environment, messages, &log).await;
    assert_eq!(
        fixture.succeeded(),
        messages,
        "the service did not see every child succeed"
    );

    let warm_messages = fed.messages - fed.first_batch_messages;
    let warm_cpu = fed.at_end.cpu.saturating_sub(fed.after_first_batch.cpu);
    table.info(
        "forwarder",
        format!("CPU time per message ({warm_messages} warm, batches of 10)"),
        millis(warm_cpu.div_f64(warm_messages.max(1) as f64)),
    );
    table.target(
        "forwarder",
        format!("peak memory (VmHWM, {} messages)", fed.messages),
        mib(fed.at_end.peak_rss),
        "< 32 MiB",
        fed.at_end.peak_rss < PEAK_MEMORY_TARGET,
    );

    let service_times = fixture.proxy.service_times();
    let mut service: Vec<Duration> = Vec::new();
    let mut added: Vec<Duration> = Vec::new();
    for (seq, invocation) in &fed.per_message {
        let own = service_times
            .get(seq)
            .copied()
            .unwrap_or_else(|| panic!("the timing proxy saw no process call of seq {seq}"));
        service.push(own);
        added.push(invocation.saturating_sub(own));
    }
    service.sort();
    added.sort();
    for p in [50.0, 99.0] {
        table.info(
            "forwarder",
            format!("added latency per message, p{p:.0} (ledger on the emulator)"),
            millis(percentile(&added, p)),
        );
    }
    table.info(
        "forwarder",
        "service's own time per message, p50 (demo service, no delay)",
        millis(percentile(&service, 50.0)),
    );
    table.info(
        "forwarder",
        "messages per second, one instance, on the emulator",
        format!(
            "{:.0} ({} batches in {:.1} s)",
            fed.messages as f64 / fed.elapsed.as_secs_f64(),
            fed.batches,
            fed.elapsed.as_secs_f64()
        ),
    );
    fixture.shutdown().await;
}

/// `variable` when set, else the size's default.
fn count(variable: &str, size: Size, smoke: u64, full: u64) -> u64 {
    match std::env::var(variable) {
        Ok(value) => value
            .trim()
            .replace(['_', ','], "")
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("{variable}={value:?} is not a positive number")),
        Err(_) => match size {
            Size::Smoke => smoke,
            Size::Full => full,
        },
    }
}

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    assert!(!sorted.is_empty(), "no values for a percentile");
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
