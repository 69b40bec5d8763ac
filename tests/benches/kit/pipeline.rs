//! Local pipeline: items per second end to end on the emulator, at 10,000 and 100,000
//! items.
//!
//! End to end is what a user runs (`make demo` does the same at 10,000): a copy of the
//! project's config and templates `generate`s and `deploy`s the `local` environment into
//! the kit's emulator with the CLI, the demo service serves the contract, `microprocess
//! local run` executes the release Lambda zips that `make build` packaged
//! (`target/lambda/<host arch>/`), and `microprocess start credit-scores --env local
//! --wait` starts a run and returns when it is `COMPLETED`. The wall time is that one
//! command's; each size gets a fresh emulator, deploy, service and runner.
//!
//! Each size runs twice: with the emulator's limits on, as `make demo` runs (DynamoDB's
//! partition ceiling at a tenth, transaction conflicts, IAM per function), and with the
//! throughput limits off (`partition_scale` and `transaction_ms` 0; IAM stays on), so the
//! price of the ledger's one hot partition shows beside what the pipeline does without it.
//! Per run it reports items per second, the wall time, what the limits did (throttled,
//! conflicted, retried) and where the CPU went while the run lasted: the emulator (one Python process, its DynamoDB requests one at a time),
//! the runner with the function processes it starts, and this process (the demo service
//! and the CLI). An emulator busy close to one core the whole run is what sets the pace.
//!
//! `BENCH_PIPELINE_ITEMS` lowers (or raises) the sizes: `BENCH_PIPELINE_ITEMS=10000
//! cargo bench -p kit-tests --bench kit -- --section pipeline`; a comma-separated list,
//! `10000,100000` unless set. Under `cargo test` it runs once with a few hundred items.
//! Needs `make build` (the zips) and `make setup` (the emulator).

mod cpu;

use std::time::{Duration, Instant};

use demo_service::{Config, DemoService};
use kit_tests::kit_project::{KitProject, Zips};
use kit_tests::moto::MotoServer;
use kit_tests::pipeline::EmulatorLimits;

use crate::table::{grouped, Table};
use crate::Size;
use cpu::CpuTimes;

const AREA: &str = "pipeline";
const SECRET: &str = "bench-pipeline-secret";
const MICROPROCESS: &str = "credit-scores";
/// Items of the `cargo test` run.
const SMOKE_ITEMS: u64 = 300;
/// Sizes of the bench unless `BENCH_PIPELINE_ITEMS` says otherwise.
const FULL_ITEMS: &[u64] = &[10_000, 100_000];

pub async fn run(size: Size, table: &mut Table) {
    for items in sizes(size) {
        for limits in [Limits::On, Limits::Off] {
            let measured = measure(items, limits).await;
            measured.report(table);
        }
    }
}

/// Whether the emulator's throughput limits are on for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limits {
    On,
    Off,
}

impl Limits {
    fn label(self) -> &'static str {
        match self {
            Limits::On => "limits on",
            Limits::Off => "limits off",
        }
    }
}

/// The sizes to run, from `BENCH_PIPELINE_ITEMS` at full size.
fn sizes(size: Size) -> Vec<u64> {
    if size == Size::Smoke {
        return vec![SMOKE_ITEMS];
    }
    match std::env::var("BENCH_PIPELINE_ITEMS") {
        Ok(list) => {
            let counts: Option<Vec<u64>> = list.split(',').map(item_count).collect();
            counts.unwrap_or_else(|| {
                panic!(
                    "BENCH_PIPELINE_ITEMS must be item counts separated by commas \
                     (`10000,100000`), not `{list}`"
                )
            })
        }
        Err(_) => FULL_ITEMS.to_vec(),
    }
}

/// `10000` or `10_000`; none for zero or anything else.
fn item_count(text: &str) -> Option<u64> {
    text.trim().replace('_', "").parse().ok().filter(|&n| n > 0)
}

/// One end-to-end run and what it cost.
struct Measured {
    items: u64,
    limits: Limits,
    /// What the emulator's limits did during the run.
    enforced: EmulatorLimits,
    wall: Duration,
    emulator: CpuTimes,
    functions: CpuTimes,
    this_process: CpuTimes,
}

impl Measured {
    fn report(&self, table: &mut Table) {
        let n = format!("{} items, {}", grouped(self.items), self.limits.label());
        let seconds = self.wall.as_secs_f64();
        table.info(
            AREA,
            format!("{n}: throttled / conflicted / retried"),
            format!(
                "{} / {} / {} ({} denied)",
                self.enforced.throttled,
                self.enforced.conflicted,
                self.enforced.retried,
                self.enforced.denied
            ),
        );
        table.info(
            AREA,
            format!("{n}: end to end items/s"),
            format!("{:.1} items/s", self.items as f64 / seconds),
        );
        table.info(AREA, format!("{n}: wall time"), duration_text(seconds));
        let emulator = self.emulator.seconds();
        let total = emulator + self.functions.seconds() + self.this_process.seconds();
        table.info(
            AREA,
            format!("{n}: emulator CPU"),
            format!(
                "{emulator:.1} s, {:.0}% of one core over the run, {:.0}% of the pipeline's CPU",
                100.0 * emulator / seconds,
                100.0 * emulator / total.max(f64::EPSILON)
            ),
        );
        table.info(
            AREA,
            format!("{n}: other CPU"),
            format!(
                "runner and functions {:.1} s, demo service and CLI {:.1} s",
                self.functions.seconds(),
                self.this_process.seconds()
            ),
        );
    }
}

async fn measure(items: u64, limits: Limits) -> Measured {
    let project = KitProject::new(Zips::Built);
    project.generate();
    let moto = MotoServer::start();
    if limits == Limits::Off {
        moto.set_limits(&serde_json::json!({"partition_scale": 0, "transaction_ms": 0}));
    }
    let endpoint = moto.endpoint().to_string();
    tokio::task::block_in_place(|| project.deploy(&moto));

    let service = DemoService::start(Config::new(SECRET).with_items(items))
        .await
        .unwrap_or_else(|e| panic!("the demo service did not start: {e}"));
    let runner = tokio::task::block_in_place(|| {
        project.run_locally(&endpoint, &service.queue_url(), SECRET)
    });

    let run = format!("bench-{items}-{}", limits.label().replace(' ', "-"));
    // Generous: a tenth of the items in seconds, at least ten minutes.
    let timeout = (items / 10).max(600).to_string();
    let emulator = cpu::emulator_serving(&endpoint)
        .unwrap_or_else(|| panic!("no emulator process of this bench serves {endpoint}"));
    let cpu_before = cpu::snapshot(emulator, runner.pid());
    let started = Instant::now();
    let (code, out, err) = tokio::task::block_in_place(|| {
        project.cli(
            &endpoint,
            &[
                "start",
                MICROPROCESS,
                "--env",
                "local",
                "--run",
                &run,
                "--wait",
                "--timeout",
                &timeout,
            ],
        )
    });
    let wall = started.elapsed();
    let cpu_after = cpu::snapshot(emulator, runner.pid());
    let all_done = format!("{items} children, {items} succeeded, 0 failed");
    assert!(
        code == 0 && out.contains(": COMPLETED in ") && out.contains(&all_done),
        "the run of {items} items did not complete (exit {code}):\n{out}\n{err}\n\
         runner (last lines):\n{}",
        tail(&runner.log(), 40)
    );
    drop(runner);
    service
        .shutdown()
        .await
        .unwrap_or_else(|e| panic!("the demo service did not stop: {e}"));
    let enforced = EmulatorLimits::of(&moto);
    assert_eq!(
        enforced.denied,
        0,
        "the emulator denied requests: {}",
        moto.stats()["denied"]
    );
    Measured {
        items,
        limits,
        enforced,
        wall,
        emulator: cpu_after.emulator - cpu_before.emulator,
        functions: cpu_after.runner_tree - cpu_before.runner_tree,
        this_process: cpu_after.this_process - cpu_before.this_process,
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `754.2 s (12 min 34 s)` past a minute, `41.3 s` below.
fn duration_text(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    format!("{seconds:.1} s ({} min {} s)", whole / 60, whole % 60)
}
