//! Lambda's memory limit for a local function process.
//!
//! Lambda stops a sandbox whose memory passes the function's `MemorySize`, and the
//! invocation in flight fails with `Runtime exited with error: signal: killed`. The runner
//! holds each process to the same limit by reading its peak resident set (`VmHWM` in
//! `/proc/<pid>/status`) every few milliseconds: the peak, not the current size, so a
//! spike between two looks is still seen.

use std::time::Duration;

/// Bytes in a MiB (Lambda's MB of `MemorySize` are MiB).
pub const MIB: u64 = 1024 * 1024;
/// How often a process's peak memory is read.
const INTERVAL: Duration = Duration::from_millis(10);

/// Resolves with the peak resident bytes once process `pid` has used more than
/// `limit_mb`; never resolves without a limit, a pid or a `/proc` to read.
pub async fn exceeded(pid: Option<u32>, limit_mb: Option<u32>) -> u64 {
    let (Some(pid), Some(limit_mb)) = (pid, limit_mb) else {
        return std::future::pending().await;
    };
    let limit = u64::from(limit_mb) * MIB;
    let path = format!("/proc/{pid}/status");
    let mut interval = tokio::time::interval(INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match std::fs::read_to_string(&path) {
            Ok(status) => {
                if let Some(peak) = peak_resident_bytes(&status) {
                    if peak > limit {
                        return peak;
                    }
                }
            }
            // The process is gone: its end is the supervisor's to report.
            Err(_) => return std::future::pending().await,
        }
    }
}

/// `VmHWM` of a `/proc/<pid>/status` text, in bytes.
fn peak_resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_read_from_vmhwm() {
        let status =
            "Name:\tbootstrap\nVmPeak:\t  900000 kB\nVmHWM:\t   12288 kB\nVmRSS:\t    8192 kB\n";
        assert_eq!(peak_resident_bytes(status), Some(12 * MIB));
        assert_eq!(peak_resident_bytes("Name:\tx\n"), None);
    }

    #[tokio::test]
    async fn this_process_is_over_a_limit_below_its_size_and_not_over_a_large_one() {
        let me = std::process::id();
        let used = tokio::time::timeout(Duration::from_secs(2), exceeded(Some(me), Some(1)))
            .await
            .expect("a test process uses more than 1 MiB");
        assert!(used > MIB);
        let roomy = tokio::time::timeout(
            Duration::from_millis(100),
            exceeded(Some(me), Some(1_000_000)),
        )
        .await;
        assert!(roomy.is_err());
    }
}
