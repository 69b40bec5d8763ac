//! The shipped zips: what `make build-lambdas` leaves in
//! `target/lambda/<arm64|x86_64>/<function>/bootstrap.zip` (cargo-lambda, release profile).

use std::path::PathBuf;

use crate::table::Table;

/// Largest zip the issue allows (Lambda itself takes 50 MB zipped by direct upload,
/// <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>; a small zip
/// is what keeps uploads and cold starts quick).
const TARGET_BYTES: u64 = 5 * 1024 * 1024;

pub fn path(arch: &str, function: &str) -> PathBuf {
    kit_tests::root()
        .join("target")
        .join("lambda")
        .join(arch)
        .join(function)
        .join("bootstrap.zip")
}

/// The zip this machine runs, or `FORWARDER_BENCH_ZIP` (another build to compare): it
/// must be there.
pub fn host_forwarder() -> PathBuf {
    let zip = std::env::var_os("FORWARDER_BENCH_ZIP")
        .map(PathBuf::from)
        .unwrap_or_else(|| path(microprocess_kit::config::host_architecture(), "forwarder"));
    assert!(
        zip.is_file(),
        "`{}` is missing: run `make build-lambdas` first (the bench measures the shipped zip)",
        zip.display()
    );
    zip
}

/// A row per zip present, and for `FORWARDER_BENCH_ZIP` when set, held to the target.
pub fn report(table: &mut Table) {
    if let Some(other) = std::env::var_os("FORWARDER_BENCH_ZIP") {
        let bytes = std::fs::metadata(&other).map_or(0, |m| m.len());
        table.target(
            "forwarder",
            "zip size, the build run here (FORWARDER_BENCH_ZIP)",
            super::mib(bytes),
            "< 5 MiB",
            bytes > 0 && bytes < TARGET_BYTES,
        );
    }
    for (area, function) in [("forwarder", "forwarder"), ("splitter", "splitter")] {
        for arch in ["arm64", "x86_64"] {
            let Ok(meta) = std::fs::metadata(path(arch, function)) else {
                continue;
            };
            table.target(
                area,
                format!("zip size, {function} {arch}"),
                super::mib(meta.len()),
                "< 5 MiB",
                meta.len() < TARGET_BYTES,
            );
        }
    }
}
