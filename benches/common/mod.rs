//! Helpers the benchmarks share: a release govledgerd on a free port, stopped with SIGTERM.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn spawn(dir: &Path) -> (Child, String) {
    spawn_bin(Path::new(env!("CARGO_BIN_EXE_govledgerd")), dir)
}

/// Starts the govledgerd binary at `bin` (e.g. an earlier build, for an A/B run).
pub fn spawn_bin(bin: &Path, dir: &Path) -> (Child, String) {
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning govledgerd");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines.next().unwrap().unwrap();
    let _vkey = lines.next().unwrap().unwrap();
    (
        child,
        format!("http://{}", addr.trim_start_matches("listening on ")),
    )
}

pub fn stop(mut child: Child) {
    send_signal(child.id(), "TERM");
    let _ = child.wait();
}

pub fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

/// The log's current size, from `GET /v1/log`.
pub async fn tree_size(http: &reqwest::Client, url: &str) -> u64 {
    let log: serde_json::Value = http
        .get(format!("{url}/v1/log"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    log["tree_size"].as_u64().unwrap()
}
