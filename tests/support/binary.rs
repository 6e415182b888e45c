//! The real `ssegate` binary as a child process ([`Binary`]) on a temporary config and
//! a free port: its stderr in a file, signals sent with `kill`, its memory read from
//! `/proc`; killed when dropped.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::net::TcpStream;

use super::*;

/// The config file of a [`Binary`]: one plain listener on `port`, one publish key, then
/// `rest` (YAML sections other than `listeners` and `publish`).
pub fn binary_config(port: u16, key: &str, rest: &str) -> String {
    format!(
        "listeners:\n  - name: plain\n    address: 127.0.0.1:{port}\n\
         publish:\n  keys:\n    - name: test\n      value: {key}\n{rest}"
    )
}

/// The `ssegate` binary, running on a temporary config; killed when dropped.
pub struct Binary {
    child: Child,
    /// Its listener.
    pub addr: SocketAddr,
    /// The config file it was started with (SIGHUP re-reads it).
    pub config_path: PathBuf,
    log_path: PathBuf,
    exited: Option<ExitStatus>,
    _dir: tempfile::TempDir,
}

impl Binary {
    /// Starts the binary with [`PUBLISH_KEY`] and `rest`, and waits until `/healthz`
    /// answers.
    pub async fn start(rest: &str) -> Binary {
        Binary::start_with_key(PUBLISH_KEY, rest).await
    }

    /// Starts the binary with publish key `key` and `rest`.
    pub async fn start_with_key(key: &str, rest: &str) -> Binary {
        // The port is probed free then bound by the child: another process may take it
        // in between, so a failed bind is retried on another port (bounded).
        for attempt in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("tempdir");
            let config_path = dir.path().join("gateway.yaml");
            std::fs::write(&config_path, binary_config(port, key, rest)).expect("write config");
            let log_path = dir.path().join("stderr.log");
            let log = std::fs::File::create(&log_path).expect("log file");
            let child = Command::new(env!("CARGO_BIN_EXE_ssegate"))
                .env_remove("SSEGATE_PUBLISH_KEY")
                .env_remove("RUST_LOG")
                .arg("--config")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start ssegate");
            let mut binary = Binary {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                config_path,
                log_path,
                exited: None,
                _dir: dir,
            };
            if binary.wait_healthy().await {
                return binary;
            }
            let log = binary.log();
            assert!(
                log.contains("cannot bind") && attempt < 4,
                "ssegate did not start: {log}"
            );
        }
        unreachable!("the loop returns or panics")
    }

    /// Polls `/healthz` (bounded); false when the process exited first.
    async fn wait_healthy(&mut self) -> bool {
        for _ in 0..600 {
            if self.try_exit().is_some() {
                return false;
            }
            if TcpStream::connect(self.addr).await.is_ok() {
                let reply = self.get("/healthz").await;
                assert_eq!(reply.status, StatusCode::OK, "healthz: {}", reply.text());
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("ssegate never answered on {}: {}", self.addr, self.log());
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `INT`, `HUP`) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {}: {status}", self.pid());
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Its exit status, if it has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("child status");
        }
        self.exited
    }

    /// Waits (bounded by `limit`, a safety net) for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let rounds = limit.as_millis() / 20 + 1;
        for _ in 0..rounds {
            if let Some(status) = self.try_exit() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "ssegate did not exit within the safety limit of {limit:?}: {}",
            self.log()
        );
    }

    /// A field of `/proc/<pid>/status` in kB (`VmRSS`, `VmHWM`).
    pub fn proc_status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.trim().strip_suffix("kB")?.trim().parse().ok()
            })
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Its listener as an endpoint.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::plain(self.addr)
    }

    /// One request over a fresh connection.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        self.endpoint().request(method, path, headers, body).await
    }

    /// `GET path` over a fresh connection.
    pub async fn get(&self, path: &str) -> Reply {
        self.endpoint().get(path).await
    }

    /// `POST /publish` with publish key `key`.
    pub async fn publish_with(&self, key: &str, body: &serde_json::Value) -> Reply {
        let auth = format!("Bearer {key}");
        self.request(
            Method::POST,
            "/publish",
            &[("authorization", &auth)],
            Bytes::from(body.to_string()),
        )
        .await
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        self.endpoint().metrics().await
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
