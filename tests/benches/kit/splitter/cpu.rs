//! CPU time of a process, from `/proc/<pid>/stat` (Linux): user plus system time of all
//! its threads, in clock ticks of 10 ms.

use std::time::Duration;

/// Linux reports these fields in `USER_HZ` ticks, 100 a second on every architecture the
/// kit builds for (the kernel's ABI fixes it, whatever `CONFIG_HZ` is).
const TICKS_PER_SECOND: u64 = 100;

/// CPU time used so far by this process.
pub fn own() -> Duration {
    of("self").unwrap_or_else(|e| panic!("{e}"))
}

/// CPU time used so far by process `pid`; an error when it cannot be read.
pub fn of_pid(pid: u32) -> Result<Duration, String> {
    of(&pid.to_string())
}

fn of(pid: &str) -> Result<Duration, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("{path} has no command name"))?;
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("{path}: field {} is not a tick count", i + 3))
    };
    let ticks = tick(11)? + tick(12)?;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}
