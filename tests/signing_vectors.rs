//! The signing test vectors (`docs/signing-vectors.json`) hold for the kit's own signing
//! code, and the Python and JavaScript verifiers printed in `docs/contract.md` give every
//! vector's answer when run as printed (with the machine's `python3` and `node`), so
//! neither the vectors nor the snippets can drift from the kit.

use std::path::{Path, PathBuf};
use std::process::Command;

use microprocess_shared::signing::{sign, signature_header, verify};
use microprocess_shared::signing_secret::signing_keys;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn vectors() -> Value {
    let text = std::fs::read_to_string(root().join("docs/signing-vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The first fenced block in `language` of the contract guide's verifier section.
fn snippet(language: &str) -> String {
    let doc = std::fs::read_to_string(root().join("docs/contract.md")).unwrap();
    let section = doc
        .split_once("### In Python, JavaScript and Rust")
        .expect("the guide's verifier section")
        .1;
    let fence = format!("```{language}\n");
    let start = section.find(&fence).expect("a block in that language") + fence.len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_string()
}

#[test]
fn the_kit_signs_and_verifies_as_the_vectors_say() {
    let v = vectors();
    let now = v["now"].as_i64().unwrap();
    let vectors = v["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 15, "accepted and refused cases");
    for x in vectors {
        let name = x["name"].as_str().unwrap();
        let (method, target) = (x["method"].as_str().unwrap(), x["target"].as_str().unwrap());
        let body = x["body"].as_str().unwrap().as_bytes();
        if let Some(kit_secret) = x["kit_secret"].as_str() {
            // What the kit sends with that secret: one v1 per key, current first.
            let t = x["header"].as_str().unwrap()[2..12].parse::<i64>().unwrap();
            let signatures: Vec<String> = signing_keys(kit_secret)
                .iter()
                .map(|k| sign(k, t, method, target, body))
                .collect();
            assert_eq!(
                signature_header(t, &signatures),
                x["header"].as_str().unwrap(),
                "{name}"
            );
        }
        let held = signing_keys(x["service_secret"].as_str().unwrap());
        let keys: Vec<&str> = held.iter().map(String::as_str).collect();
        let answer = match x["header"].as_str() {
            None => false,
            Some(header) => verify(&keys, header, method, target, body, now, 300).is_ok(),
        };
        assert_eq!(answer, x["accept"].as_bool().unwrap(), "{name}");
    }
}

/// Runs `program` with `args`; panics with its output unless it prints `ok`.
fn expect_ok(mut command: Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "{what}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_python_verifier_of_the_guide_answers_every_vector() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("verify.py"), snippet("python")).unwrap();
    let check = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
from verify import verify
v = json.load(open(sys.argv[2]))
wrong = [x["name"] for x in v["vectors"]
         if verify(x["service_secret"], x["header"], x["method"], x["target"],
                   x["body"].encode(), now=v["now"]) != x["accept"]]
print("ok" if not wrong else "wrong: " + ", ".join(wrong))
"#;
    let mut command = Command::new("python3");
    command
        .args(["-c", check])
        .arg(dir.path())
        .arg(root().join("docs/signing-vectors.json"));
    expect_ok(command, "the guide's Python verifier");
}

#[test]
fn the_javascript_verifier_of_the_guide_answers_every_vector() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("verify.js");
    std::fs::write(&module, snippet("javascript")).unwrap();
    let check = r#"
const { verify } = require(process.argv[1]);
const v = require(process.argv[2]);
const wrong = v.vectors
  .filter((x) => verify(x.service_secret, x.header, x.method, x.target, Buffer.from(x.body), v.now) !== x.accept)
  .map((x) => x.name);
console.log(wrong.length === 0 ? "ok" : "wrong: " + wrong.join(", "));
"#;
    let mut command = Command::new("node");
    command
        .args(["-e", check])
        .arg(&module)
        .arg(root().join("docs/signing-vectors.json"));
    expect_ok(command, "the guide's JavaScript verifier (node)");
}
