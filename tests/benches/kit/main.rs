//! `make bench`: what the kit costs and how fast it goes, as one table.
//!
//! `cargo bench -p kit-tests --bench kit` runs every section at full size (sizes can be
//! lowered through the environment, see each section); `-- --section NAME` runs one.
//! Under `cargo test` (no `--bench` argument) every section runs once at a smoke size, so
//! the bench code keeps working; the figures of a smoke run mean nothing and no target is
//! checked then.

mod cost;
mod fan_in;
mod forwarder;
mod generator;
mod pipeline;
mod splitter;
mod table;

use std::time::Instant;

use table::Table;

/// How big a section's workload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Under `cargo test`: the smallest workload that exercises the code.
    Smoke,
    /// Under `cargo bench`: the sizes the issue asks for.
    Full,
}

/// The sections, in the order the table prints them.
const SECTIONS: &[&str] = &[
    "cost",
    "forwarder",
    "splitter",
    "generator",
    "pipeline",
    "fan-in",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = if args.iter().any(|a| a == "--bench") {
        Size::Full
    } else {
        Size::Smoke
    };
    let only: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--section")
        .map(|w| w[1].as_str())
        .collect();
    if let Some(unknown) = only.iter().find(|s| !SECTIONS.contains(s)) {
        eprintln!(
            "bench: no section {unknown:?}; the sections are {}",
            SECTIONS.join(", ")
        );
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let mut table = Table::default();
    for section in SECTIONS
        .iter()
        .filter(|s| only.is_empty() || only.contains(s))
    {
        let began = Instant::now();
        eprintln!("bench: section {section} ({size:?})");
        runtime.block_on(run_section(section, size, &mut table));
        eprintln!(
            "bench: section {section} took {:.1} s",
            began.elapsed().as_secs_f64()
        );
    }
    println!("{}", table.markdown());
    println!(
        "{} measures in {:.0} s{}",
        table.rows().len(),
        started.elapsed().as_secs_f64(),
        match (size, table.missed()) {
            (Size::Smoke, _) =>
                " (smoke size: figures not meaningful, targets not checked)".to_string(),
            (Size::Full, 0) => ", every target met".to_string(),
            (Size::Full, n) => format!(", {n} target(s) missed"),
        }
    );
}

async fn run_section(section: &str, size: Size, table: &mut Table) {
    match section {
        "cost" => cost::run(size, table).await,
        "forwarder" => forwarder::run(size, table).await,
        "splitter" => splitter::run(size, table).await,
        "generator" => generator::run(size, table).await,
        "pipeline" => pipeline::run(size, table).await,
        "fan-in" => fan_in::run(size, table).await,
        other => unreachable!("section {other} is listed but not wired"),
    }
}
