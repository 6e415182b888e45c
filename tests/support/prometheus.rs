//! A real Prometheus: the binary found (or the test skipped, loudly), run as a child on
//! a free loopback port scraping a gateway, and queried through its HTTP API.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpStream;

use super::*;

/// Labels Prometheus adds to every series at scrape time (from the target), so a query
/// may use them on any metric although `/metrics` does not show them.
pub const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// The `prometheus` binary to run, or `None` (after saying why) to skip.
pub fn prometheus_binary() -> Option<&'static str> {
    let binary = "prometheus";
    match Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => Some(binary),
        other => {
            let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
            let why = match other {
                Ok(out) => format!("`prometheus --version` exited with {}", out.status),
                Err(e) => format!("cannot run `prometheus`: {e}"),
            };
            assert!(
                !ci,
                "CI is set and {why}: .ci/run must install Prometheus (apt-get install -y prometheus)"
            );
            // Straight to the process's stderr: the test harness's capture would hide
            // an eprintln! of a passing test.
            let message = format!(
                "\n{bar}\nSKIPPING tests/prometheus_scrape.rs: {why}.\n\
                 Install Prometheus to run it (Debian/Ubuntu: `sudo apt-get install -y prometheus`,\n\
                 then stop the service it may start: `sudo systemctl stop prometheus` or\n\
                 `sudo /etc/init.d/prometheus stop`); CI runs it and fails without it.\n{bar}\n",
                bar = "!".repeat(88)
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), message.as_bytes());
            None
        }
    }
}

/// A Prometheus child process, killed (and its tempdir removed) on drop.
pub struct Prometheus {
    child: Child,
    /// Its HTTP API.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `binary` scraping `target` every second on a free loopback port.
    pub fn start(binary: &str, target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().expect("a tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: ssegate\n    metrics_path: /metrics\n    \
                 static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, addr, dir }
    }

    /// Prometheus's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// True once the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Panics (with the log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("prometheus exited with {status}:\n{}", self.log());
        }
    }

    /// One HTTP/1.1 request to Prometheus; `None` when it does not accept connections.
    pub async fn request(&self, method: Method, path: &str, form: Option<String>) -> Option<Reply> {
        let tcp = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(self.addr))
            .await
            .ok()?
            .ok()?;
        let mut conn = Conn::handshake(tcp, Http::H1, None, "http", self.addr.to_string()).await;
        let headers: &[(&str, &str)] = if form.is_some() {
            &[("content-type", "application/x-www-form-urlencoded")]
        } else {
            &[]
        };
        let body = form.map(Bytes::from).unwrap_or_default();
        Some(conn.request(method, path, headers, body).await)
    }

    /// `GET path` as JSON, asserting HTTP 200 and `status: success`.
    pub async fn get_json(&self, path: &str) -> Value {
        let reply = self
            .request(Method::GET, path, None)
            .await
            .unwrap_or_else(|| panic!("prometheus went away ({path})"));
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        let json = reply.json();
        assert_eq!(json["status"], "success", "{path}: {json}");
        json
    }

    /// `/api/v1/query` for `expr` at now: the JSON answer (whatever its status).
    pub async fn query(&self, expr: &str) -> Value {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", expr)
            .finish();
        let reply = self
            .request(Method::POST, "/api/v1/query", Some(form))
            .await
            .unwrap_or_else(|| panic!("prometheus went away ({expr})"));
        serde_json::from_slice(&reply.body).unwrap_or_else(
            |_| json!({"status": "error", "http": reply.status.as_u16(), "body": reply.text()}),
        )
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
