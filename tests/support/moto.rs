//! The kit's emulator for one test: moto started through `tools/emulator.py` (IAM enforced,
//! DynamoDB's and SQS's limits, the fixes the kit relies on) on a free loopback port,
//! stopped when dropped. Every test uses this one emulator, as `make emulator-start` and
//! `make demo` run it, so what a test proves holds under the same rules; the emulator's
//! own regression tests (`tools/test_emulator.py`) compare it with plain moto.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use tempfile::NamedTempFile;

/// How long moto may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Ports tried when another process takes the free port first.
const PORT_ATTEMPTS: u32 = 3;

/// A running moto server; the process is killed when this is dropped.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    endpoint: String,
    /// moto's stdout and stderr, for failure messages.
    log: NamedTempFile,
}

impl MotoServer {
    /// Starts the emulator and waits until it answers; panics with the reason (and
    /// `make setup` when moto is missing).
    pub fn start() -> MotoServer {
        MotoServer::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`MotoServer::start`] with extra environment variables for moto (its settings, such
    /// as `MOTO_ACM_VALIDATION_WAIT`).
    pub fn start_with(env: &[(&str, &str)]) -> MotoServer {
        let binary = moto_binary();
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match start_on_free_port(&binary, env) {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("{last}")
    }

    /// Like [`MotoServer::start`], returning the reason instead of panicking.
    pub fn try_start() -> Result<MotoServer, String> {
        let binary = moto_binary();
        if !binary.is_file() {
            return Err(format!(
                "`{}` is missing: run `make setup` first (it installs moto[server] into the project's .venv)",
                binary.display()
            ));
        }
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match start_on_free_port(&binary, &[]) {
                Ok(server) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Changes the emulator's limits (`POST /_kit/limits`, keys as in
    /// `tools/moto_kit/limits.py`), e.g. `{"partition_scale": 0}` for none.
    pub fn set_limits(&self, limits: &serde_json::Value) {
        let answer = self.kit_request("POST", "/_kit/limits", &limits.to_string());
        assert!(
            answer.0 == 200,
            "the emulator refused the limits {limits}: {}",
            answer.1
        );
    }

    /// Arms a failure of CloudFormation's next operations on one resource (`POST
    /// /_kit/faults`, as `tools/moto_kit/control.py` documents), e.g.
    /// `{"stack": "scores-local-core", "resource": "SigningSecret", "on": "create"}`.
    pub fn arm_fault(&self, fault: &serde_json::Value) {
        let answer = self.kit_request("POST", "/_kit/faults", &fault.to_string());
        assert!(
            answer.0 == 200,
            "the emulator refused the fault {fault}: {}",
            answer.1
        );
    }

    /// Confirms the alarm topics' e-mail subscriptions, as their owners' clicks would
    /// (`POST /_kit/confirm-subscriptions`).
    pub fn confirm_subscriptions(&self) {
        let answer = self.kit_request("POST", "/_kit/confirm-subscriptions", "{}");
        assert_eq!(answer.0, 200, "{}", answer.1);
    }

    /// What the emulator denied, throttled, conflicted, refused, expired and saw retried
    /// (`GET /_kit/stats`).
    pub fn stats(&self) -> serde_json::Value {
        let (status, body) = self.kit_request("GET", "/_kit/stats", "");
        assert_eq!(status, 200, "the emulator's stats: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("the emulator's stats are not JSON ({e}): {body}"))
    }

    fn kit_request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address)
            .unwrap_or_else(|e| panic!("cannot reach the emulator at {address}: {e}"));
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .expect("ask the emulator");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .expect("read the emulator's answer");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, body.to_string())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The server's process id (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What moto printed so far.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `<root>/.venv/bin/moto_server`.
pub fn moto_binary() -> PathBuf {
    crate::root().join(".venv").join("bin").join("moto_server")
}

fn start_on_free_port(binary: &Path, env: &[(&str, &str)]) -> Result<MotoServer, String> {
    let port = free_port()?;
    let log = NamedTempFile::new().map_err(|e| format!("cannot create moto's log file: {e}"))?;
    let stdout = log
        .reopen()
        .map_err(|e| format!("cannot open moto's log file: {e}"))?;
    let stderr = stdout
        .try_clone()
        .map_err(|e| format!("cannot open moto's log file: {e}"))?;
    let port_text = port.to_string();
    let python = binary.with_file_name("python");
    let mut command = Command::new(python);
    command
        .arg(crate::root().join("tools").join("emulator.py"))
        .args(["-H", "127.0.0.1", "-p", &port_text]);
    command.envs(env.iter().copied());
    let child = command
        .env("MOTO_PORT", &port_text)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", binary.display()))?;
    let mut server = MotoServer {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        log,
    };
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!(
                "moto_server exited ({status}) before answering on port {port}:\n{}",
                server.log()
            ));
        }
        if answers(address) {
            return Ok(server);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "moto_server did not answer on port {port} within {} s:\n{}",
                START_TIMEOUT.as_secs(),
                server.log()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A port no one listens on right now.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))
}

/// Whether an HTTP server answers on `address`.
fn answers(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /moto-api/ HTTP/1.0\r\nHost: {address}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut start = [0u8; 5];
    stream.read_exact(&mut start).is_ok() && &start == b"HTTP/"
}

fn read_log(log: &NamedTempFile) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(log.path()) {
        let _ = file.read_to_string(&mut text);
    }
    // The last lines tell why it stopped.
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// SDK configuration for a moto endpoint: static test credentials, region `us-east-1`.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(microprocess_kit::aws::local_admin_credentials())
        .load()
        .await
}
