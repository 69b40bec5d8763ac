//! Requests the emulator denied, by function and role.
//!
//! The emulator records every request an identity policy denies (`GET /_kit/stats`). A
//! denial is what AWS would answer the same request, so the runner treats it as a
//! defect of the templates: it names the function, its role, the action and the
//! resource, keeps the list in `GET /local/status`, and stops (`local run` exits non-zero).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::logs::LogSink;

/// How often the emulator's record is read.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// One denied request, as the emulator records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    pub principal: String,
    pub action: String,
    pub resource: String,
}

impl Denial {
    /// `(role, session)` of an assumed-role principal
    /// (`arn:aws:sts::123456789012:assumed-role/ROLE/SESSION`).
    pub fn role_and_session(&self) -> Option<(&str, &str)> {
        let rest = self.principal.split_once(":assumed-role/")?.1;
        rest.split_once('/')
    }

    /// What the runner prints: the function (the session name is its name), the role,
    /// the action and the resource.
    pub fn describe(&self) -> String {
        match self.role_and_session() {
            Some((role, function)) => format!(
                "`{function}` runs as role `{role}`, which is not allowed `{}` on `{}`: AWS refuses it the same way; add the action to the role in `templates/microprocess.yaml`",
                self.action, self.resource
            ),
            None => format!(
                "`{}` is not allowed `{}` on `{}`",
                self.principal, self.action, self.resource
            ),
        }
    }
}

/// The emulator's counters (`GET /_kit/stats`), or why they cannot be read.
pub async fn emulator_stats(endpoint: &str) -> Result<Value, String> {
    let authority = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = TcpStream::connect(&authority)
        .await
        .map_err(|e| format!("connect to {authority}: {e}"))?;
    let request = format!("GET /_kit/stats HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("ask {authority}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .map_err(|e| format!("read {authority}'s answer: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{authority} answered no HTTP"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{authority} has no `/_kit/stats` ({}): is it the kit's emulator (`tools/emulator.py`)?",
            head.lines().next().unwrap_or_default()
        ));
    }
    serde_json::from_str(body).map_err(|e| format!("{authority}'s `/_kit/stats` is not JSON: {e}"))
}

/// The denials in a `/_kit/stats` answer.
pub fn denials(stats: &Value) -> Vec<Denial> {
    stats
        .get("denied")
        .cloned()
        .and_then(|d| serde_json::from_value(d).ok())
        .unwrap_or_default()
}

/// Reads the emulator's record of denied requests; at the first new one, names it and
/// stops the runner, as the function would fail in AWS.
pub(super) async fn watch(
    emulator: String,
    work_dir: PathBuf,
    denied: Arc<Mutex<Vec<Denial>>>,
    stop: watch::Sender<bool>,
    logs: LogSink,
    mut shutdown: watch::Receiver<bool>,
) {
    let seen = match emulator_stats(&emulator).await {
        Ok(stats) => denials(&stats).len(),
        Err(e) => {
            logs.note(format!(
                "IAM denials are not watched: {e}; the functions still run as their roles"
            ));
            return;
        }
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {}
            () = super::stop_requested(&mut shutdown) => return,
        }
        let Ok(stats) = emulator_stats(&emulator).await else {
            continue;
        };
        let all = denials(&stats);
        if all.len() <= seen {
            continue;
        }
        let new = all[seen..].to_vec();
        for denial in &new {
            logs.note(format!("error: access denied: {}", denial.describe()));
        }
        let mut state = super::state::read(&work_dir);
        state.denied = new.clone();
        if let Err(e) = super::state::write(&work_dir, &state) {
            logs.note(format!(
                "cannot write `{}`: {e}",
                super::state::path(&work_dir).display()
            ));
        }
        denied.lock().unwrap_or_else(|p| p.into_inner()).extend(new);
        logs.note("stopping: a function was denied a request (see above)");
        let _ = stop.send(true);
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_names_the_function_and_its_role() {
        let denial = Denial {
            principal: "arn:aws:sts::123456789012:assumed-role/scores-local-credit-scores-forwarder/scores-local-credit-scores-forwarder".into(),
            action: "dynamodb:UpdateItem".into(),
            resource: "arn:aws:dynamodb:us-east-1:123456789012:table/scores-local-ledger".into(),
        };
        assert_eq!(
            denial.describe(),
            "`scores-local-credit-scores-forwarder` runs as role `scores-local-credit-scores-forwarder`, which is not allowed `dynamodb:UpdateItem` on `arn:aws:dynamodb:us-east-1:123456789012:table/scores-local-ledger`: AWS refuses it the same way; add the action to the role in `templates/microprocess.yaml`"
        );
        let stats = serde_json::json!({"denied": [denial], "throttled": 3});
        assert_eq!(denials(&stats).len(), 1);
    }
}
