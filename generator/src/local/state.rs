//! `target/local-runner/<env>/state.json`: where a running runner listens (so `start`
//! can invoke through it) and which event source mappings it took over from the
//! emulator (so a later runner still polls them).

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerState {
    /// The running runner's process id; `None` once it stopped.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Its Lambda endpoint (`Invoke`), while it runs.
    #[serde(default)]
    pub lambda_endpoint: Option<String>,
    /// The emulator it runs against.
    #[serde(default)]
    pub emulator: Option<String>,
    /// UUIDs of the mappings whose delivery the runner turned off in the emulator.
    #[serde(default)]
    pub taken_over_mappings: BTreeSet<String>,
    /// The requests the emulator denied the functions, when the runner stopped for them
    /// (`start --wait` reads them); cleared at the next start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<super::permissions::Denial>,
}

pub fn path(work_dir: &Path) -> PathBuf {
    work_dir.join("state.json")
}

/// The state in `work_dir`; the default when there is none (or it cannot be read).
pub fn read(work_dir: &Path) -> RunnerState {
    std::fs::read_to_string(path(work_dir))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

pub fn write(work_dir: &Path, state: &RunnerState) -> io::Result<()> {
    std::fs::create_dir_all(work_dir)?;
    let text = serde_json::to_string_pretty(state).map_err(io::Error::other)?;
    let staging = work_dir.join(format!(".state-{}.json", std::process::id()));
    std::fs::write(&staging, text + "\n")?;
    std::fs::rename(staging, path(work_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_a_missing_file_reads_as_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), RunnerState::default());
        let state = RunnerState {
            pid: Some(42),
            lambda_endpoint: Some("http://127.0.0.1:9000".into()),
            emulator: Some("http://127.0.0.1:5000".into()),
            taken_over_mappings: ["uuid-1".to_string()].into(),
            denied: Vec::new(),
        };
        write(dir.path(), &state).unwrap();
        assert_eq!(read(dir.path()), state);
    }
}
