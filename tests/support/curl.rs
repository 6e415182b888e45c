//! curl as a second real client: a streaming `curl -N` parsed as a head and an event
//! stream, and curl run to completion.

use std::io::Read;

use super::*;

/// A running `curl -sS -N -i …` whose stdout is parsed as a head and an event stream.
pub struct CurlStream {
    child: std::process::Child,
    chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
    head_buf: Vec<u8>,
    /// The response head as curl printed it (status line and headers).
    pub head: Option<String>,
    parser: SseParser,
}

impl CurlStream {
    /// Starts curl with `args` (the URL included); `-sS -N -i --max-time 60` are added.
    pub fn spawn(args: &[&str]) -> CurlStream {
        let mut child = std::process::Command::new("curl")
            .args(["-sS", "-N", "-i", "--max-time", "60"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("curl is installed (it is a test dependency of this suite)");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.blocking_send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        CurlStream {
            child,
            chunks: rx,
            head_buf: Vec::new(),
            head: None,
            parser: SseParser::default(),
        }
    }

    async fn feed(&mut self) {
        let chunk = within("curl output", self.chunks.recv())
            .await
            .expect("curl ended its output early");
        if self.head.is_some() {
            self.parser.push(&chunk);
            return;
        }
        self.head_buf.extend_from_slice(&chunk);
        if let Some(i) = find(&self.head_buf, b"\r\n\r\n") {
            self.head = Some(String::from_utf8_lossy(&self.head_buf[..i]).into_owned());
            let rest = self.head_buf.split_off(i + 4);
            self.parser.push(&rest);
        }
    }

    /// The response head (status line and headers), once received.
    pub async fn head(&mut self) -> String {
        for _ in 0..10_000 {
            if let Some(h) = &self.head {
                return h.clone();
            }
            self.feed().await;
        }
        panic!("no response head from curl");
    }

    /// The next SSE block.
    pub async fn block(&mut self) -> SseBlock {
        for _ in 0..100_000 {
            if self.head.is_some() {
                if let Some(b) = self.parser.pop() {
                    return b;
                }
            }
            self.feed().await;
        }
        panic!("no SSE block from curl");
    }

    /// The next block with data.
    pub async fn next_event(&mut self) -> SseBlock {
        for _ in 0..10_000 {
            let b = self.block().await;
            if b.is_event() {
                return b;
            }
        }
        panic!("no event from curl");
    }
}

impl Drop for CurlStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs curl to completion (blocking, off the runtime) and returns its stdout.
pub async fn curl_output(args: Vec<String>) -> (bool, String) {
    let out = within(
        "curl",
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sS", "--max-time", "30"])
                .args(&args)
                .stdin(std::process::Stdio::null())
                .output()
                .expect("curl is installed (it is a test dependency of this suite)")
        }),
    )
    .await
    .expect("curl thread");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
