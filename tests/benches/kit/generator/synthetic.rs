//! Synthetic projects for the generator section: copies of the shipped `environments/` and
//! `templates/` with microprocess entries added, modelled on the shipped two.
//!
//! The added entries take the smallest delivery concurrency (2): the account's reserved
//! concurrency is shared by every microprocess (the config refuses an environment that
//! reserves more than `lambda_concurrency_limit` less Lambda's unreserved 100), so
//! 1,000 microprocesses with the shipped `max_concurrency` (50 and 20) would reserve about
//! 35,000 executions. Each copied environment gets a `lambda_concurrency_limit` that fits
//! what the project reserves, as an account with that quota raised would set it; the value
//! appears in no template.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// The two microprocesses the repository ships.
pub const SHIPPED: usize = 2;

/// Executions one added entry reserves: the splitter's 2 and the forwarder's 2.
const RESERVED_PER_ENTRY: usize = 4;

/// Room kept for the shipped entries' reservations (prod reserves 244) and Lambda's
/// unreserved floor of 100.
const SHIPPED_AND_FLOOR: usize = 1_000;

/// A throw-away project root.
pub struct SyntheticProject {
    dir: TempDir,
    /// Added entries so far; the next is `job-<added + 1>`.
    added: usize,
}

impl SyntheticProject {
    /// The shipped project with `total` microprocesses, its concurrency limits sized for
    /// `capacity` (so a later [`SyntheticProject::add_one`] leaves every environment
    /// file as it is).
    pub fn create(total: usize, capacity: usize) -> SyntheticProject {
        assert!(
            total >= SHIPPED,
            "the shipped project has {SHIPPED} microprocesses"
        );
        let root = kit_tests::root();
        let dir = tempfile::tempdir().expect("a temporary directory");
        copy_dir(&root.join("templates"), &dir.path().join("templates"));
        copy_dir(&root.join("environments"), &dir.path().join("environments"));
        let mut project = SyntheticProject { dir, added: 0 };
        project.set_concurrency_limits(SHIPPED_AND_FLOOR + RESERVED_PER_ENTRY * capacity);
        let entries: String = (0..total - SHIPPED).map(|_| project.next_entry()).collect();
        project.append(&entries);
        project
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Microprocesses in the project.
    pub fn total(&self) -> usize {
        SHIPPED + self.added
    }

    /// Adds one more entry; returns its name.
    pub fn add_one(&mut self) -> String {
        let entry = self.next_entry();
        self.append(&entry);
        entry_name(self.added)
    }

    fn microprocesses_file(&self) -> PathBuf {
        self.root().join("environments").join("microprocesses.toml")
    }

    fn append(&self, entries: &str) {
        let path = self.microprocesses_file();
        let mut text = read(&path);
        text.push_str(entries);
        write(&path, &text);
    }

    /// The TOML of the next entry, counted as added.
    fn next_entry(&mut self) -> String {
        self.added += 1;
        entry(self.added)
    }

    /// Sets `lambda_concurrency_limit` in the `[environment]` table of every environment.
    fn set_concurrency_limits(&self, limit: usize) {
        let dir = self.root().join("environments");
        let files = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", dir.display()));
        for file in files {
            let path = file.expect("a directory entry").path();
            let is_environment = path.extension().is_some_and(|e| e == "toml")
                && path.file_name().is_some_and(|n| n != "microprocesses.toml");
            if !is_environment {
                continue;
            }
            let text = read(&path);
            let mut out = String::with_capacity(text.len() + 64);
            let mut placed = false;
            for line in text.lines() {
                if line.trim_start().starts_with("lambda_concurrency_limit") {
                    continue;
                }
                out.push_str(line);
                out.push('\n');
                if line.trim() == "[environment]" {
                    let _ = writeln!(out, "lambda_concurrency_limit = {limit}");
                    placed = true;
                }
            }
            assert!(placed, "`{}` has no [environment] table", path.display());
            write(&path, &out);
        }
    }
}

/// `job-0001`, `job-0002`, ...
fn entry_name(index: usize) -> String {
    format!("job-{index:04}")
}

/// Entry `index`: odd ones are shaped like `credit-scores` (monthly, results in the
/// ledger), even ones like `abn-refresh` (daily, results discarded). Their process
/// timeouts stay within the shipped ones, so the queue ALB's idle timeout, which follows
/// the longest forwarder timeout, does not move.
fn entry(index: usize) -> String {
    let name = entry_name(index);
    let minute = index % 60;
    if index % 2 == 1 {
        format!(
            r#"
[{name}]
description = "Synthetic monthly microprocess {index}, shaped like credit-scores"
schedule = {{ expression = "cron({minute} 2 1 * ? *)", timezone = "Australia/Sydney" }}
overlap = "skip"

[{name}.split]
path = "/microprocesses/{name}/split"
page_size = 1000

[{name}.process]
path = "/microprocesses/{name}/process"
timeout_seconds = 25
max_attempts = 5

[{name}.reduce]
path = "/microprocesses/{name}/reduce"

[{name}.delivery]
batch_size = 10
max_concurrency = 2
rate_limit_per_second = 500

[{name}.results]
storage = "ledger"
retention_days = 400
"#
        )
    } else {
        format!(
            r#"
[{name}]
description = "Synthetic daily microprocess {index}, shaped like abn-refresh"
schedule = {{ expression = "cron({minute} 4 * * ? *)", timezone = "Australia/Sydney" }}
overlap = "skip"

[{name}.split]
path = "/microprocesses/{name}/split"
page_size = 500

[{name}.process]
path = "/microprocesses/{name}/process"
timeout_seconds = 10
max_attempts = 8

[{name}.reduce]
path = "/microprocesses/{name}/reduce"

[{name}.delivery]
batch_size = 10
max_concurrency = 2

[{name}.results]
storage = "discard"
retention_days = 30
"#
        )
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("cannot create `{}`: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("cannot read `{}`: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("a directory entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest)
                .unwrap_or_else(|e| panic!("cannot copy `{}`: {e}", entry.path().display()));
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write `{}`: {e}", path.display()));
}
