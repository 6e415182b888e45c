//! Raw HTTP/1.1 exchanges over a `TcpStream`, for requests hyper would not send (exact
//! bytes, chunked bodies): one request written as given, one `Content-Length` answer read.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// Writes `request` (exact bytes, in one write) to `addr` and reads one HTTP/1.1 answer
/// with a `Content-Length` body.
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut socket = within("TCP connect", TcpStream::connect(addr))
        .await
        .expect("TCP connect");
    raw_exchange(&mut socket, request).await
}

/// Writes `request` (exact bytes, in one write) on an open connection and reads one
/// HTTP/1.1 answer with a `Content-Length` body; the connection stays usable.
pub async fn raw_exchange(socket: &mut TcpStream, request: &[u8]) -> Reply {
    within("raw write", socket.write_all(request))
        .await
        .expect("the request is written");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = within("raw read", socket.read(&mut chunk))
            .await
            .expect("a readable answer");
        assert!(n > 0, "connection closed before the answer's head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').expect("header line");
        headers.append(
            http::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
            value.trim().parse().expect("header value"),
        );
    }
    let length: usize = headers
        .get("content-length")
        .map(|v| v.to_str().unwrap().parse().unwrap())
        .expect("the answer has a Content-Length");
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = within("raw read", socket.read(&mut chunk))
            .await
            .expect("a readable body");
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Reply {
        status: StatusCode::from_u16(status).expect("status"),
        version: Version::HTTP_11,
        headers,
        body: Bytes::from(body),
    }
}

/// Where `needle` first starts in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
