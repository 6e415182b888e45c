//! The shipped `gateway.yaml` and the real binary: the file parses, validates and equals
//! `Config::default()`; `ssegate --check` accepts it and refuses invalid files with a
//! message naming the problem; and the binary, started on a temporary config, serves
//! `/healthz`, a subscription and a publish.

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;
use ssegate::Config;
use support::*;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.yaml")
}

/// The binary with a clean environment for the variables it reads.
fn ssegate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssegate"));
    cmd.env_remove("SSEGATE_PUBLISH_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

fn check(path: &Path) -> (Option<i32>, String, String) {
    let out = ssegate()
        .arg("--check")
        .arg("--config")
        .arg(path)
        .output()
        .expect("run ssegate --check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_config_parses_validates_and_is_the_default() {
    let config = Config::from_file(&shipped()).expect("gateway.yaml is valid");
    config.validate().expect("validates");
    assert_eq!(config, Config::default());
}

#[test]
fn check_accepts_the_shipped_config() {
    let (code, stdout, stderr) = check(&shipped());
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(stdout.trim(), format!("{}: valid", shipped().display()));
}

/// Writes `text` as `dir/name`; `--check` must exit 2 saying "invalid configuration",
/// naming `problem` and the file.
fn assert_check_refuses(dir: &Path, name: &str, text: &str, problem: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    let (code, stdout, stderr) = check(&path);
    assert_eq!(code, Some(2), "{name}: stdout {stdout:?} stderr {stderr:?}");
    assert!(
        stderr.contains("invalid configuration") && stderr.contains(problem),
        "{name}: stderr should name {problem:?}: {stderr}"
    );
    assert!(
        stderr.contains(name),
        "{name}: stderr names the file: {stderr}"
    );
}

#[test]
fn check_refuses_invalid_configs_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "unknown-field.yaml",
            "limits:\n  max_body_byte: 3\n",
            "max_body_byte",
        ),
        (
            "cert-without-key.yaml",
            "listeners:\n  - name: secure\n    address: 127.0.0.1:0\n    tls:\n      cert: /nonexistent/cert.pem\n",
            "listeners.secure.tls: give both cert and key",
        ),
        (
            "bad-duration.yaml",
            "sse:\n  heartbeat: 3 weeks\n",
            "is not a duration unit",
        ),
        (
            "retry-inverted.yaml",
            "sse:\n  retry_min: 10s\n  retry_max: 2s\n",
            "sse.retry_min must not exceed sse.retry_max",
        ),
    ];
    for (name, text, problem) in cases {
        assert_check_refuses(dir.path(), name, text, problem);
    }
    let (code, _, stderr) = check(&dir.path().join("absent.yaml"));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("cannot read"), "{stderr}");
}

/// Kills the child process it holds when dropped (the test started it).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_a_subscription_and_a_publish() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().unwrap().port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("gateway.yaml");
    std::fs::write(
        &config_path,
        format!(
            "listeners:\n  - name: only\n    address: 127.0.0.1:{port}\n\
             publish:\n  keys:\n    - name: test\n      value: {PUBLISH_KEY}\n\
             log:\n  level: warn\n"
        ),
    )
    .expect("write config");
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = Running(
        ssegate()
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ssegate"),
    );
    let log_text = || {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    };

    // Wait (bounded) until /healthz answers.
    let mut healthy = false;
    for _ in 0..200 {
        if let Some(status) = child.0.try_wait().expect("child status") {
            panic!("ssegate exited early with {status}: {}", log_text());
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            let mut conn = Conn::open(&Endpoint::plain(addr), Http::H1).await;
            let reply = conn
                .request(http::Method::GET, "/healthz", &[], bytes::Bytes::new())
                .await;
            assert_eq!(reply.status, http::StatusCode::OK);
            assert_eq!(reply.json(), json!({"status": "ok"}));
            healthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(healthy, "ssegate never answered: {}", log_text());

    let mut conn = Conn::open(&Endpoint::plain(addr), Http::H1).await;
    let mut sub = conn.get_stream("/events/bin", &[]).await;
    assert_stream_headers(&sub);
    let preamble = sub.block().await;
    assert!(preamble.retry.is_some_and(|r| (2000..=5000).contains(&r)));

    let mut conn = Conn::open(&Endpoint::plain(addr), Http::H1).await;
    let auth = format!("Bearer {PUBLISH_KEY}");
    let reply = conn
        .request(
            http::Method::POST,
            "/publish",
            &[("authorization", &auth)],
            bytes::Bytes::from(
                json!({"channel": "bin", "event": "hi", "data": "from the binary"}).to_string(),
            ),
        )
        .await;
    assert_eq!(reply.status, http::StatusCode::OK, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_string();
    assert_eq!(seq(&id), 1);
    assert_eq!(
        sub.next_event().await.triple(),
        (id, Some("hi".into()), "from the binary".into())
    );
    drop(sub);
    child.0.kill().expect("kill ssegate");
    let status = child.0.wait().expect("reap ssegate");
    assert!(!status.success(), "killed, not exited: {status}");
}

/// `ssegate --version` prints the crate's version and exits 0; the start-up log line
/// names it; and the LICENSE file is the license `Cargo.toml` declares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_flag_startup_line_and_license() {
    let version = env!("CARGO_PKG_VERSION");
    let out = ssegate()
        .arg("--version")
        .output()
        .expect("run ssegate --version");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ssegate {version}")
    );
    let bin = Binary::start("").await;
    eventually(
        "the start-up line",
        std::time::Duration::from_secs(20),
        || {
            let log = bin.log();
            async move {
                log.lines().any(|l| {
                    l.contains("ssegate running") && l.contains(&format!("version={version}"))
                })
            }
        },
    )
    .await;

    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("Cargo.toml");
    assert!(
        manifest
            .lines()
            .any(|l| l.trim() == "license = \"Apache-2.0\""),
        "Cargo.toml declares Apache-2.0"
    );
    let license = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("LICENSE"))
        .expect("a LICENSE file");
    let words: Vec<&str> = license.split_whitespace().collect();
    assert_eq!(
        words[..5],
        ["Apache", "License", "Version", "2.0,", "January"],
        "the Apache License 2.0"
    );
    assert!(license.contains("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION"));
    assert!(license.contains("END OF TERMS AND CONDITIONS"));
    assert!(
        words.len() > 1500,
        "the whole text, not a stub: {} words",
        words.len()
    );
}

/// `--check` refuses what start-up would refuse, naming the problem where it is: a JWT
/// public key file that is missing, a log level that is no level (`tracing` would take
/// `verbose` for a target and log nothing), and a bad duration at its own line, not
/// its section's.
#[test]
fn check_catches_what_start_catches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing_key = dir.path().join("no-such-key.pem");
    let cases = [
        (
            "missing-public-key.yaml",
            format!(
                "auth:\n  jwt_keys:\n    - name: rsa\n      algorithm: RS256\n      public_key: {}\n",
                missing_key.display()
            ),
            "jwt key rsa: cannot read".to_string(),
        ),
        (
            "log-level.yaml",
            "log:\n  level: verbose\n".to_string(),
            "log.level: 'verbose'".to_string(),
        ),
        (
            "log-directive.yaml",
            "log:\n  level: info,hyper\n".to_string(),
            "log.level: 'info,hyper'".to_string(),
        ),
        (
            "duration-line.yaml",
            "sse:\n  retry_min: 2s\n  retry_max: 5s\n  heartbeat: 3 weeks\n".to_string(),
            "at line 4".to_string(),
        ),
    ];
    for (name, text, problem) in cases {
        assert_check_refuses(dir.path(), name, &text, &problem);
    }
}

/// The documented development keys on a listener reachable beyond loopback: `--check`
/// and start-up both refuse, naming the keys and the ways out; real keys from the
/// environment, or the explicit demo opt-in, make the same file start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_keys_on_a_public_address_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let public = "listeners:\n  - name: open\n    address: 0.0.0.0:0\n";
    let path = dir.path().join("public.yaml");
    std::fs::write(&path, public).expect("write config");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = ssegate();
        cmd.env_remove("SSEGATE_ADMIN_KEY")
            .env_remove("SSEGATE_JWT_SECRET")
            .args(args)
            .arg("--config")
            .arg(&path);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    };
    let out = run(&["--check"], &[]).output().expect("run --check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in [
        "listener open binds 0.0.0.0:0",
        "publish key 'default', admin key 'default', JWT key 'default' are a development default",
        "SSEGATE_PUBLISH_KEY",
        "auth.allow_dev_keys_on_public_address: true",
    ] {
        assert!(
            stderr.contains(needle),
            "--check names {needle:?}: {stderr}"
        );
    }
    // Start-up refuses the same file (bounded: it exits at once).
    let mut child = Running(
        run(&[], &[])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ssegate"),
    );
    let mut exited = None;
    for _ in 0..400 {
        if let Some(status) = child.0.try_wait().expect("child status") {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let status = exited.expect("ssegate refused to start and exited");
    assert!(!status.success(), "{status}");
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("auth.allow_dev_keys_on_public_address"),
        "{stderr}"
    );
    // Real keys, or a single remaining dev key named alone.
    let real = [
        ("SSEGATE_PUBLISH_KEY", "a-real-publish-key"),
        ("SSEGATE_ADMIN_KEY", "a-real-admin-key"),
        ("SSEGATE_JWT_SECRET", "a-real-jwt-secret-0123456789"),
    ];
    let out = run(&["--check"], &real).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = run(&["--check"], &real[..2]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("while JWT key 'default' is a development default"),
        "{stderr}"
    );
    // A shipped development secret set through the environment is just as public.
    let out = run(
        &["--check"],
        &[
            real[0],
            real[1],
            ("SSEGATE_JWT_SECRET", "dev-jwt-secret-change-me"),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // The demo opt-in.
    std::fs::write(
        &path,
        format!("{public}auth:\n  allow_dev_keys_on_public_address: true\n"),
    )
    .unwrap();
    let out = run(&["--check"], &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}
