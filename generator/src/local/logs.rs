//! Where the runner and its functions write.
//!
//! Every line a function prints (stdout and stderr) goes out whole, prefixed with the
//! function and its instance, `[credit-scores-forwarder#2] {...}`; the runner's own lines
//! start with `local:`. Lines of concurrent writers never interleave mid-line, and a
//! function's pipes are read to their end even after the process is killed, so no line
//! is lost.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

/// Longest line kept whole; a longer one is cut (a function's log line is small).
const MAX_LINE_BYTES: usize = 256 * 1024;

type Target = Box<dyn Write + Send>;

/// The runner's log destinations. Cheap to clone; clones share the destinations.
#[derive(Clone)]
pub struct LogSink {
    targets: Arc<Mutex<Targets>>,
}

struct Targets {
    /// The runner's own lines.
    notes: Vec<Target>,
    /// The functions' lines.
    functions: Vec<Target>,
}

impl LogSink {
    /// Everything to the runner's stderr.
    pub fn stderr() -> LogSink {
        LogSink::with(vec![Box::new(io::stderr())], vec![Box::new(io::stderr())])
    }

    /// The functions' lines to `path` (appended), the runner's own to stderr and `path`.
    pub fn to_file(path: &Path) -> io::Result<LogSink> {
        let file = open(path)?;
        Ok(LogSink::with(
            vec![Box::new(io::stderr()), Box::new(file.try_clone()?)],
            vec![Box::new(file)],
        ))
    }

    /// Everything to `path` (appended) and nothing to the terminal (tests).
    pub fn only_file(path: &Path) -> io::Result<LogSink> {
        let file = open(path)?;
        Ok(LogSink::with(
            vec![Box::new(file.try_clone()?)],
            vec![Box::new(file)],
        ))
    }

    fn with(notes: Vec<Target>, functions: Vec<Target>) -> LogSink {
        LogSink {
            targets: Arc::new(Mutex::new(Targets { notes, functions })),
        }
    }

    /// A line of the runner itself.
    pub fn note(&self, line: impl Display) {
        let line = format!("local: {line}\n");
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        for target in &mut targets.notes {
            // A log destination that fails must not stop the runner.
            let _ = target.write_all(line.as_bytes());
            let _ = target.flush();
        }
    }

    /// A line printed by the function instance `label`.
    pub fn function_line(&self, label: &str, line: &str) {
        let line = format!("[{label}] {line}\n");
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        for target in &mut targets.functions {
            let _ = target.write_all(line.as_bytes());
            let _ = target.flush();
        }
    }
}

/// Opens `path` for appending, created readable and writable by its owner only: the
/// functions' logs carry run ids, items and the service's answers.
fn open(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Copies the lines of `reader` (a child's stdout or stderr) to `sink` until it ends.
pub async fn pump(reader: impl AsyncRead + Unpin, label: String, sink: LogSink) {
    let mut reader = BufReader::new(reader);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match (&mut reader)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut buffer)
            .await
        {
            Ok(0) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buffer);
                sink.function_line(&label, text.trim_end_matches(['\n', '\r']));
            }
            Err(e) => {
                sink.note(format!("{label}: cannot read its output any more: {e}"));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Before the fix the file took the process's umask (world-readable under 022).
    #[test]
    fn a_log_file_is_created_for_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/run.log");
        drop(open(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    #[tokio::test]
    async fn lines_are_prefixed_and_the_last_one_kept_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runner.log");
        let sink = LogSink::only_file(&path).unwrap();
        let input: &[u8] = b"{\"level\":\"INFO\"}\r\nsecond\npartial \xff end";
        pump(input, "mp-forwarder#1".into(), sink.clone()).await;
        sink.note("stopped");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "[mp-forwarder#1] {\"level\":\"INFO\"}\n[mp-forwarder#1] second\n\
             [mp-forwarder#1] partial \u{fffd} end\nlocal: stopped\n"
        );
    }
}
