//! HTTP/1.1 request heads as the plain stream path reads them, and the response heads
//! it writes: stateless bytes (the reading itself is `transport::plain_h1`).
//!
//! Conformance kept here: `Connection` is a list of options (`keep-alive, close`
//! closes, RFC 9112 §9.6); empty lines before the request line are ignored (§2.2,
//! `httparse` skips them); a request without exactly one `Host` is not ours to serve
//! (hyper's path answers it 400, RFC 9112 §3.2); responses carry `Date` and, when the
//! server will close, `connection: close`.

use ::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};

/// The HTTP/2 connection preface's first line (RFC 9113 §3.4).
pub const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

/// A request head as read from the socket.
pub enum Head {
    /// `GET /events…` over HTTP/1.1 without a body; the head is `consumed` bytes long.
    Events {
        /// The request target.
        uri: Uri,
        /// The request headers.
        headers: HeaderMap,
        /// False when the client asked to close after this response.
        keep_alive: bool,
        /// Length of the head in the buffer (empty lines before it included).
        consumed: usize,
    },
    /// Anything else: hyper serves it, starting from the bytes read so far.
    Other,
    /// The client closed (or failed) before a whole head arrived and sent nothing.
    Gone,
}

/// `buf` without the empty lines (CRLF or LF) a client may send before a request line.
pub fn skip_empty_lines(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    &buf[start..]
}

/// Whether `buf` (empty lines skipped) may still become a `GET`: false when it is
/// something else (a publish, the HTTP/2 preface, garbage) that hyper should have.
pub fn may_be_get(buf: &[u8]) -> bool {
    let rest = skip_empty_lines(buf);
    b"GET ".starts_with(&rest[..rest.len().min(4)])
}

/// True when the `Connection` headers' options name `close` (a comma-separated,
/// case-insensitive list, over any number of fields).
pub fn wants_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(::http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|option| option.trim().eq_ignore_ascii_case("close"))
}

/// True when `headers` hold exactly one `Host` field (RFC 9112 §3.2: a request without
/// one, or with several, is answered 400).
pub fn has_one_host(headers: &HeaderMap) -> bool {
    headers.get_all(::http::header::HOST).iter().count() == 1
}

/// Classifies a buffered head; `None` while it is incomplete.
pub fn classify(buf: &[u8], max_headers: usize) -> Option<Head> {
    let mut slots = vec![httparse::EMPTY_HEADER; max_headers];
    let mut req = httparse::Request::new(&mut slots);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(Head::Other),
    };
    let path = req.path.unwrap_or("");
    let is_events =
        path == "/events" || path.starts_with("/events/") || path.starts_with("/events?");
    if req.method != Some("GET") || req.version != Some(1) || !is_events {
        return Some(Head::Other);
    }
    let Ok(uri) = path.parse::<Uri>() else {
        return Some(Head::Other);
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) else {
            return Some(Head::Other);
        };
        if name == ::http::header::CONTENT_LENGTH && value != "0"
            || name == ::http::header::TRANSFER_ENCODING
        {
            return Some(Head::Other); // a GET with a body: hyper's business
        }
        headers.append(name, value);
    }
    if !has_one_host(&headers) {
        return Some(Head::Other); // hyper's path answers it 400, as every other request
    }
    let keep_alive = !wants_close(&headers);
    Some(Head::Events {
        uri,
        headers,
        keep_alive,
        consumed,
    })
}

/// The status line and the `Date` field of a response head.
pub fn status_line(status: StatusCode) -> Vec<u8> {
    let mut line = Vec::with_capacity(256);
    line.extend_from_slice(b"HTTP/1.1 ");
    line.extend_from_slice(status.as_str().as_bytes());
    line.push(b' ');
    line.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    line.extend_from_slice(b"\r\n");
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    push_header(&mut line, "date", date.as_bytes());
    line
}

/// Appends one header field line.
pub fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> Option<Head> {
        classify(bytes, 64)
    }

    #[test]
    fn classifies_heads() {
        match head(b"GET /events/a?x=1 HTTP/1.1\r\nHost: h\r\nLast-Event-ID: 1\r\n\r\n") {
            Some(Head::Events {
                uri,
                headers,
                keep_alive,
                consumed,
            }) => {
                assert_eq!(uri.path(), "/events/a");
                assert_eq!(headers["last-event-id"], "1");
                assert!(keep_alive);
                assert_eq!(consumed, 57);
            }
            _ => panic!("expected an event stream"),
        }
        let closes = |bytes: &[u8]| {
            matches!(
                head(bytes),
                Some(Head::Events {
                    keep_alive: false,
                    ..
                })
            )
        };
        assert!(closes(
            b"GET /events HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        ));
        assert!(closes(
            b"GET /events HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n"
        ));
        assert!(closes(
            b"GET /events HTTP/1.1\r\nHost: h\r\nConnection: a\r\nConnection: close\r\n\r\n"
        ));
        assert!(!closes(
            b"GET /events HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n"
        ));
        assert!(matches!(
            head(b"\r\n\r\nGET /events HTTP/1.1\r\nHost: h\r\n\r\n"),
            Some(Head::Events { consumed: 37, .. })
        ));
        for other in [
            &b"POST /publish HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            b"GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /events HTTP/1.0\r\n\r\n",
            b"GET /eventsX HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /events HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
            b"GET /events HTTP/1.1\r\n\r\n",
            b"GET /events HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ] {
            assert!(matches!(head(other), Some(Head::Other)), "{other:?}");
        }
        assert!(head(b"GET /events HTTP/1.1\r\nHost").is_none());
    }

    #[test]
    fn probes_and_heads_out() {
        assert!(may_be_get(b"\r\nGE"));
        assert!(may_be_get(b""));
        assert!(!may_be_get(b"PRI * HTTP/2.0"));
        assert!(!may_be_get(b"POST"));
        let line = status_line(StatusCode::OK);
        let text = String::from_utf8(line).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\ndate: "), "{text}");
        assert!(text.ends_with(" GMT\r\n"), "{text}");
    }
}
