//! What Linux reports about a process in `/proc/<pid>`: CPU time (`utime + stime` of
//! `stat`, every thread, ended ones included, in clock ticks of 10 ms), the same in
//! nanoseconds for the threads alive (`task/*/schedstat`, for spans too short for
//! ticks), and peak resident memory (`VmHWM` of `status`).

use std::path::Path;
use std::time::Duration;

/// CPU time and peak memory of a process at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub cpu: Duration,
    /// `VmHWM`: the most resident memory the process ever had, in bytes.
    pub peak_rss: u64,
}

/// Reads the usage of `pid`.
pub fn usage(pid: u32) -> Result<Usage, String> {
    let stat = read(pid, "stat")?;
    let status = read(pid, "status")?;
    Ok(Usage {
        cpu: cpu_time(&stat, clock_ticks_per_second())
            .ok_or_else(|| format!("/proc/{pid}/stat has no utime and stime: {stat}"))?,
        peak_rss: peak_rss(&status).ok_or_else(|| format!("/proc/{pid}/status has no VmHWM"))?,
    })
}

/// CPU time of the threads of `pid` alive now, to the nanosecond (the first field of
/// each thread's `schedstat`: time spent on a CPU).
pub fn cpu_of_live_threads(pid: u32) -> Result<Duration, String> {
    let tasks = format!("/proc/{pid}/task");
    let mut nanos: u64 = 0;
    for task in std::fs::read_dir(&tasks).map_err(|e| format!("cannot list {tasks}: {e}"))? {
        let path = task
            .map_err(|e| format!("cannot list {tasks}: {e}"))?
            .path()
            .join("schedstat");
        // A thread that ended since the listing has no file left: it is not alive.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        nanos += text
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| format!("{} is not `<ns> <ns> <count>`: {text}", path.display()))?;
    }
    Ok(Duration::from_nanos(nanos))
}

/// The child of this process whose executable is `exe`, if it runs.
pub fn child_running(exe: &Path) -> Option<u32> {
    let me = std::process::id();
    let exe = exe.canonicalize().ok()?;
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|&pid| {
            let parent = read(pid, "stat").ok().and_then(|s| parent_pid(&s));
            parent == Some(me)
                && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == exe)
        })
}

fn read(pid: u32, file: &str) -> Result<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .map_err(|e| format!("cannot read /proc/{pid}/{file}: {e}"))
}

/// The fields of `stat` after the command name, which is in parentheses and may hold
/// spaces: the first of them is field 3 (`state`) of proc(5).
fn fields_after_name(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

fn parent_pid(stat: &str) -> Option<u32> {
    fields_after_name(stat).get(1)?.parse().ok()
}

/// `utime` (field 14) plus `stime` (field 15), in clock ticks, as a duration.
fn cpu_time(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    let fields = fields_after_name(stat);
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(
        ticks as f64 / ticks_per_second.max(1) as f64,
    ))
}

/// `VmHWM:   12345 kB`, in bytes.
fn peak_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `sysconf(_SC_CLK_TCK)`, through `getconf` (100 on every Linux the kit runs on).
fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}
