//! The installed CLI's `generate --env prod` on the synthetic project: its wall time and
//! peak memory, as a user meets them (the release binary `make install` copies,
//! `target/release/microprocess`, which `make bench` builds through `make build`). Held to
//! issue 15's targets: 1,000 microprocesses in 2 s and 100 MiB, and 100 at least 20 times
//! faster than `cdk synth` of the same infrastructure (6.4 s, measured by a peer: 0.32 s).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::synthetic::SyntheticProject;
use super::AREA;
use crate::table::Table;

const CDK_SYNTH_100_SECONDS: f64 = 6.4;

/// Runs `generate` once and returns its wall time and peak resident memory (the highest
/// `VmHWM` read from `/proc` while it ran, every 2 ms).
fn measure(binary: &Path, root: &Path, out_dir: &Path) -> (Duration, u64) {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("--root")
        .arg(root)
        .args(["generate", "--env", "prod", "--out-dir"])
        .arg(out_dir)
        // The synthetic project has no build of its own: the project's zips.
        .arg("--assets-dir")
        .arg(kit_tests::root().join("target/lambda"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", binary.display()));
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status) {
            if let Some(kib) = text
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = started.elapsed();
    let out = child.wait_with_output().expect("generate's output");
    assert!(
        out.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (elapsed, peak_kib * 1024)
}

pub fn report(table: &mut Table, project: &SyntheticProject, n: usize) {
    let binary = kit_tests::root().join("target/release/microprocess");
    if !binary.is_file() {
        table.info(
            AREA,
            format!("installed CLI, generate prod, {n} microprocesses"),
            "not measured: no target/release/microprocess (`make build` builds it)",
        );
        return;
    }
    let out = tempfile::tempdir().expect("a temporary directory");
    // The better of three runs: the first one also reads the templates from a cold cache.
    let runs: Vec<(Duration, u64)> = (0..3)
        .map(|_| measure(&binary, project.root(), out.path()))
        .collect();
    let time = runs.iter().map(|r| r.0).min().unwrap_or_default();
    let peak = runs.iter().map(|r| r.1).max().unwrap_or_default();
    let mib = peak as f64 / (1024.0 * 1024.0);
    let measure_name = format!("installed CLI, generate prod, {n} microprocesses");
    let value = format!("{:.2} s, {mib:.0} MiB peak", time.as_secs_f64());
    match n {
        1000 => table.target(
            AREA,
            measure_name,
            value,
            "at most 2 s and 100 MiB",
            time <= Duration::from_secs(2) && mib <= 100.0,
        ),
        100 => {
            let faster = CDK_SYNTH_100_SECONDS / time.as_secs_f64().max(0.001);
            table.target(
                AREA,
                measure_name,
                format!("{value}; {faster:.0}x faster than cdk synth's {CDK_SYNTH_100_SECONDS} s"),
                "at least 20x faster than cdk synth (0.32 s)",
                faster >= 20.0,
            )
        }
        _ => table.info(AREA, measure_name, value),
    }
}
