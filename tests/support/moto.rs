//! A moto server for one test: `<root>/.venv/bin/moto_server` on a free loopback port,
//! stopped when dropped.
//!
//! moto's conditional writes are not atomic under concurrent requests: its threaded HTTP
//! server checks a condition and applies the write as two steps, so two concurrent
//! `UpdateItem`s guarded by `state = PROCESSING` can both succeed (seen: about 1 round in
//! 100 with 8 concurrent writers), which DynamoDB never allows for one item. Tests of
//! concurrent writers use [`MotoServer::start_serialized`]: the same moto application,
//! served by the same threaded server, with one request handled at a time, which gives
//! back DynamoDB's per-item atomicity (stronger than DynamoDB across items, which the
//! ledger does not rely on).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use tempfile::NamedTempFile;

/// How long moto may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Ports tried when another process takes the free port first.
const PORT_ATTEMPTS: u32 = 3;

/// moto's application behind one lock, for [`MotoServer::start_serialized`]; run by the
/// `.venv` Python with the host and port as arguments.
const SERIALIZED_MOTO: &str = r#"
import sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)

app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()

def serialized(environ, start_response):
    # The whole request, body included, is handled under the lock.
    with lock:
        body = app(environ, start_response)
        try:
            return [b"".join(body)]
        finally:
            getattr(body, "close", lambda: None)()

run_simple(sys.argv[1], int(sys.argv[2]), serialized, threaded=True,
           request_handler=MotoRequestHandler)
"#;

/// How moto is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// `moto_server` as installed.
    Plain,
    /// One request at a time.
    Serialized,
    /// `tools/emulator.py`: moto with the fixes `microprocess deploy` needs (stack outputs
    /// after change sets, Secrets Manager secrets from templates), as `make emulator-start`
    /// runs it.
    Kit,
}

/// A running moto server; the process is killed when this is dropped.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    endpoint: String,
    /// moto's stdout and stderr, for failure messages.
    log: NamedTempFile,
}

impl MotoServer {
    /// Starts moto and waits until it answers; panics with the reason (and `make setup`
    /// when the binary is missing).
    pub fn start() -> MotoServer {
        MotoServer::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`MotoServer::start`], returning the reason instead of panicking.
    pub fn try_start() -> Result<MotoServer, String> {
        MotoServer::launch(Flavor::Plain)
    }

    /// Starts moto handling one request at a time, so a conditional write is atomic as in
    /// DynamoDB (see the module documentation); for tests of concurrent writers.
    pub fn start_serialized() -> MotoServer {
        MotoServer::launch(Flavor::Serialized).unwrap_or_else(|e| panic!("{e}"))
    }

    fn launch(flavor: Flavor) -> Result<MotoServer, String> {
        let binary = moto_binary();
        if !binary.is_file() {
            return Err(format!(
                "`{}` is missing: run `make setup` first (it installs moto[server] into the project's .venv)",
                binary.display()
            ));
        }
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match start_on_free_port(&binary, flavor) {
                Ok(server) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Starts the kit's emulator (`tools/emulator.py`), which deploys need.
    pub fn start_kit() -> MotoServer {
        MotoServer::launch(Flavor::Kit).unwrap_or_else(|e| panic!("{e}"))
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

fn start_on_free_port(binary: &Path, flavor: Flavor) -> Result<MotoServer, String> {
    let port = free_port()?;
    let log = NamedTempFile::new().map_err(|e| format!("cannot create moto's log file: {e}"))?;
    let stdout = log
        .reopen()
        .map_err(|e| format!("cannot open moto's log file: {e}"))?;
    let stderr = stdout
        .try_clone()
        .map_err(|e| format!("cannot open moto's log file: {e}"))?;
    let port_text = port.to_string();
    let mut command = match flavor {
        Flavor::Plain => {
            let mut command = Command::new(binary);
            command.args(["-H", "127.0.0.1", "-p", &port_text]);
            command
        }
        Flavor::Serialized => {
            let python = binary.with_file_name("python");
            let mut command = Command::new(python);
            command.args(["-c", SERIALIZED_MOTO, "127.0.0.1", &port_text]);
            command
        }
        Flavor::Kit => {
            let python = binary.with_file_name("python");
            let mut command = Command::new(python);
            command
                .arg(crate::root().join("tools").join("emulator.py"))
                .args(["-H", "127.0.0.1", "-p", &port_text]);
            command
        }
    };
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
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "kit-tests",
        ))
        .load()
        .await
}
