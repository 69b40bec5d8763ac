//! Cold start: from spawning `bootstrap` to its first
//! `GET /2018-06-01/runtime/invocation/next`, the moment Lambda counts as the end of the
//! init phase. A listener stands in for the Runtime API and answers nothing: the first
//! request line is all it waits for, then the process is killed. Its CPU time and memory
//! at that moment are what the init cost.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::process::Command;

use super::proc_stats::{self, Usage};

const NEXT: &[u8] = b"GET /2018-06-01/runtime/invocation/next ";
/// Lambda's limit on the init phase.
const INIT_LIMIT: Duration = Duration::from_secs(10);

/// One start.
#[derive(Debug, Clone, Copy)]
pub struct ColdStart {
    pub ready_after: Duration,
    /// CPU time and peak memory when it asked for its first event.
    pub at_ready: Usage,
}

/// Starts `bootstrap` (in `code_dir`, with exactly `environment` and the stand-in's
/// address) and waits for its first `next`; its output goes to `log`.
pub async fn measure(
    bootstrap: &Path,
    code_dir: &Path,
    environment: &[(String, String)],
    log: &Path,
) -> ColdStart {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("a loopback port for the Runtime API");
    let address = listener.local_addr().expect("the listener's address");
    let output = std::fs::File::create(log)
        .unwrap_or_else(|e| panic!("cannot create `{}`: {e}", log.display()));
    let started = Instant::now();
    let mut child = Command::new(bootstrap)
        .env_clear()
        .envs(environment.iter().map(|(k, v)| (k, v)))
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .current_dir(code_dir)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("a second handle on the log"))
        .stderr(output)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", bootstrap.display()));
    let pid = child.id().expect("a running child has a pid");
    let first_next = async {
        let (mut stream, _) = listener.accept().await?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while head.len() < NEXT.len() {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let ready_after = started.elapsed();
        // The connection stays open until the process is read: closing it fails the
        // runtime's `next`, and the process exits.
        Ok::<_, std::io::Error>((head, ready_after, stream))
    };
    let (head, ready_after, _connection) = match tokio::time::timeout(INIT_LIMIT, first_next).await
    {
        Ok(Ok(first)) => first,
        Ok(Err(e)) => panic!("the Runtime API stand-in failed: {e}"),
        Err(_) => panic!(
            "the forwarder did not ask for an event within {} s; its output:\n{}",
            INIT_LIMIT.as_secs(),
            std::fs::read_to_string(log).unwrap_or_default()
        ),
    };
    assert!(
        head.starts_with(NEXT),
        "the forwarder's first request is not `next`: {}",
        String::from_utf8_lossy(&head)
    );
    // Init is a few ticks at most: the live threads' nanoseconds say more (none has
    // ended yet).
    let at_ready = Usage {
        cpu: proc_stats::cpu_of_live_threads(pid).unwrap_or_else(|e| panic!("{e}")),
        ..proc_stats::usage(pid).unwrap_or_else(|e| panic!("{e}"))
    };
    let _ = child.kill().await;
    ColdStart {
        ready_after,
        at_ready,
    }
}
