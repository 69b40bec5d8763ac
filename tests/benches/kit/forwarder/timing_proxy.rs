//! A TCP proxy in front of the service that times each process call the service answers:
//! from the last byte of the request reaching the proxy to the first byte of the answer
//! coming back, keyed by the request's `X-Microprocess-Seq`. That is the service's own
//! time as the forwarder's HTTP client sees it, without the forwarder's part.
//!
//! HTTP/1.1 without pipelining (what the forwarder's client speaks) alternates requests
//! and answers on a connection, so the first answer bytes after request bytes close that
//! request; nothing of the exchange is parsed but the seq header.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const SEQ_HEADER: &[u8] = b"x-microprocess-seq:";

/// Seq → the service's time for its last call.
type Times = Arc<Mutex<HashMap<u64, Duration>>>;

/// The request on a connection that awaits its answer.
#[derive(Debug, Clone, Copy)]
struct Open {
    seq: Option<u64>,
    last_byte_at: Instant,
}

pub struct TimingProxy {
    pub url: String,
    times: Times,
    task: JoinHandle<()>,
}

impl TimingProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<TimingProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let times = Times::default();
        let shared = times.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, shared.clone()));
            }
        });
        Ok(TimingProxy { url, times, task })
    }

    /// The service's time per seq (its last call when a seq was called more than once).
    pub fn service_times(&self) -> HashMap<u64, Duration> {
        self.times.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for TimingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, times: Times) {
    let Ok(service) = TcpStream::connect(upstream).await else {
        return; // the client sees its connection closed, as with a service that is down
    };
    let _ = client.set_nodelay(true);
    let _ = service.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut service_read, mut service_write) = service.into_split();
    let open: Arc<Mutex<Option<Open>>> = Arc::default();
    let requests = {
        let open = open.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = client_read.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let now = Instant::now();
                {
                    let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
                    let seq = seq_in(&buf[..n]).or(open.and_then(|o| o.seq));
                    *open = Some(Open {
                        seq,
                        last_byte_at: now,
                    });
                }
                if service_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = service_write.shutdown().await;
        }
    };
    let answers = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = service_read.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let closed = open.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(Open {
                seq: Some(seq),
                last_byte_at,
            }) = closed
            {
                times
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(seq, last_byte_at.elapsed());
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(requests, answers);
}

/// The value of the `X-Microprocess-Seq` header in a request's bytes, if they hold it.
fn seq_in(bytes: &[u8]) -> Option<u64> {
    let lower = bytes.to_ascii_lowercase();
    let at = lower
        .windows(SEQ_HEADER.len())
        .position(|w| w == SEQ_HEADER)?;
    let value = &bytes[at + SEQ_HEADER.len()..];
    let digits: String = value
        .iter()
        .skip_while(|b| **b == b' ' || **b == b'\t')
        .take_while(|b| b.is_ascii_digit())
        .map(|b| char::from(*b))
        .collect();
    digits.parse().ok()
}
