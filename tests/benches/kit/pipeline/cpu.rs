//! CPU time of the pipeline's processes, from `/proc` (Linux): user plus system time of a
//! process, of a process and every descendant alive, and of this process with the
//! children it has waited for.

use std::collections::HashMap;
use std::ops::Sub;
use std::process::Command;
use std::sync::OnceLock;

/// CPU time in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    ticks: u64,
}

impl CpuTimes {
    pub fn seconds(self) -> f64 {
        self.ticks as f64 / ticks_per_second()
    }
}

impl Sub for CpuTimes {
    type Output = CpuTimes;

    fn sub(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            ticks: self.ticks.saturating_sub(earlier.ticks),
        }
    }
}

/// The pipeline's CPU at one moment.
pub struct Snapshot {
    pub emulator: CpuTimes,
    /// The local runner and the function processes under it.
    pub runner_tree: CpuTimes,
    /// The demo service's threads and the CLI commands run from here.
    pub this_process: CpuTimes,
}

pub fn snapshot(emulator: u32, runner: u32) -> Snapshot {
    let all = processes();
    Snapshot {
        emulator: CpuTimes {
            ticks: all.get(&emulator).map_or(0, |p| p.own),
        },
        runner_tree: CpuTimes {
            ticks: tree(&all, runner),
        },
        this_process: CpuTimes {
            ticks: all
                .get(&std::process::id())
                .map_or(0, |p| p.own + p.waited_children),
        },
    }
}

/// The kit's emulator this process started for `endpoint` (`http://127.0.0.1:PORT`): its
/// child whose command line runs `emulator.py` with `-p PORT`.
pub fn emulator_serving(endpoint: &str) -> Option<u32> {
    let port = endpoint.rsplit(':').next()?;
    let me = std::process::id();
    processes()
        .into_iter()
        .filter(|(_, stat)| stat.parent == me)
        .map(|(pid, _)| pid)
        .find(|pid| {
            let Ok(line) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = line.split(|b| *b == 0).collect();
            args.iter().any(|a| a.ends_with(b"emulator.py"))
                && args
                    .windows(2)
                    .any(|w| w[0] == b"-p" && w[1] == port.as_bytes())
        })
}

struct Stat {
    parent: u32,
    /// utime + stime.
    own: u64,
    /// cutime + cstime: children that exited and were waited for.
    waited_children: u64,
}

/// Every process's times, by pid.
fn processes() -> HashMap<u32, Stat> {
    let mut all = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return all;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(stat) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
        {
            all.insert(pid, stat);
        }
    }
    all
}

/// `/proc/PID/stat`: the name in parentheses may hold spaces, so fields are counted
/// after its closing one (state is field 3, ppid 4, utime 14 ... cstime 17).
fn parse_stat(text: &str) -> Option<Stat> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        parent: u32::try_from(field(4)?).ok()?,
        own: field(14)? + field(15)?,
        waited_children: field(16)? + field(17)?,
    })
}

/// CPU of `root`, its living descendants and the children they waited for.
fn tree(all: &HashMap<u32, Stat>, root: u32) -> u64 {
    let mut total = 0;
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        if let Some(stat) = all.get(&pid) {
            total += stat.own + stat.waited_children;
        }
        pending.extend(
            all.iter()
                .filter(|(_, s)| s.parent == pid)
                .map(|(child, _)| *child),
        );
    }
    total
}

fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}
