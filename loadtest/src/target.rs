//! The server under test: its wire format (ssegate, nchan, Pushpin, the Node baseline),
//! URL templates for subscribing and publishing, and the publish request each expects.
//! Only loopback addresses (127.0.0.0/8) are accepted.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use serde::{Deserialize, Serialize};

/// Which server's publish format and conventions to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// ssegate: `POST /publish` JSON with a bearer key; `GET /events/<ch>`.
    Ssegate,
    /// nginx + nchan: raw body to `POST /pub/<ch>`; `GET /sub/<ch>` with
    /// `Accept: text/event-stream`.
    Nchan,
    /// Pushpin: GRIP JSON items on the control port; `GET /stream/<ch>` via the proxy.
    Pushpin,
    /// The hand-written Node server: raw body to `POST /pub/<ch>`; `GET /sub/<ch>`.
    Node,
}

impl Format {
    /// Parses a `--format` value.
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "ssegate" => Ok(Format::Ssegate),
            "nchan" => Ok(Format::Nchan),
            "pushpin" => Ok(Format::Pushpin),
            "node" => Ok(Format::Node),
            other => Err(format!(
                "unknown format '{other}' (ssegate|nchan|pushpin|node)"
            )),
        }
    }

    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Ssegate => "ssegate",
            Format::Nchan => "nchan",
            Format::Pushpin => "pushpin",
            Format::Node => "node",
        }
    }

    /// The default subscribe URL template (`{channel}` is replaced).
    pub fn default_sub_url(self) -> &'static str {
        match self {
            Format::Ssegate => "http://127.0.0.1:8080/events/{channel}",
            Format::Nchan => "http://127.0.0.1:8081/sub/{channel}",
            Format::Pushpin => "http://127.0.0.1:7999/stream/{channel}",
            Format::Node => "http://127.0.0.1:8083/sub/{channel}",
        }
    }

    /// The default publish URL template.
    pub fn default_pub_url(self) -> &'static str {
        match self {
            Format::Ssegate => "http://127.0.0.1:8080/publish",
            Format::Nchan => "http://127.0.0.1:8081/pub/{channel}",
            Format::Pushpin => "http://127.0.0.1:5561/publish/",
            Format::Node => "http://127.0.0.1:8083/pub/{channel}",
        }
    }

    /// True when the server replays from `Last-Event-ID` (so a reconnect loses nothing).
    pub fn resumes(self) -> bool {
        matches!(self, Format::Ssegate | Format::Nchan)
    }
}

/// A parsed `http://` or `https://` URL on a loopback IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https`.
    pub tls: bool,
    /// The server's address.
    pub addr: SocketAddrV4,
    /// The `Host` header / `:authority`.
    pub authority: String,
    /// Path and query.
    pub path: String,
}

impl Url {
    /// Parses `url`; refuses anything that is not on 127.0.0.0/8 (or `localhost`).
    pub fn parse(url: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(format!("{url}: only http:// and https:// URLs"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{url}: bad port '{p}'"))?,
            ),
            None => (authority, if tls { 443 } else { 80 }),
        };
        let ip = if host == "localhost" {
            Ipv4Addr::LOCALHOST
        } else {
            host.parse::<Ipv4Addr>()
                .map_err(|_| format!("{url}: the host must be an IPv4 loopback address"))?
        };
        if !ip.is_loopback() {
            return Err(format!(
                "{url}: refusing a non-loopback target ({ip}); the load generator only drives 127.0.0.0/8"
            ));
        }
        Ok(Url {
            tls,
            addr: SocketAddrV4::new(ip, port),
            authority: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// The socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::V4(self.addr)
    }

    /// The absolute URI (for HTTP/2 requests).
    pub fn absolute(&self) -> String {
        format!(
            "{}://{}{}",
            if self.tls { "https" } else { "http" },
            self.authority,
            self.path
        )
    }
}

/// Fills `{channel}` in a URL template.
pub fn fill(template: &str, channel: &str) -> String {
    template.replace("{channel}", channel)
}

/// Escapes text for a JSON string literal (our payloads are ASCII without quotes, but a
/// template or channel name could hold anything).
pub fn json_escape(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// The body and content type of one publish in `format`.
pub fn publish_body(format: Format, channel: &str, payload: &str) -> (String, &'static str) {
    match format {
        Format::Ssegate => (
            format!(
                "{{\"channel\":{},\"data\":{}}}",
                json_escape(channel),
                json_escape(payload)
            ),
            "application/json",
        ),
        Format::Pushpin => (
            format!(
                "{{\"items\":[{{\"channel\":{},\"formats\":{{\"http-stream\":{{\"content\":{}}}}}}}]}}",
                json_escape(channel),
                json_escape(&format!("data: {payload}\n\n"))
            ),
            "application/json",
        ),
        Format::Nchan | Format::Node => (payload.to_string(), "text/plain"),
    }
}

/// A whole HTTP/1.1 publish request.
pub fn publish_request(
    format: Format,
    url: &Url,
    channel: &str,
    payload: &str,
    key: Option<&str>,
) -> Vec<u8> {
    let (body, content_type) = publish_body(format, channel, payload);
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        url.path,
        url.authority,
        content_type,
        body.len()
    );
    if let Some(k) = key {
        req.push_str("Authorization: Bearer ");
        req.push_str(k);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(&body);
    req.into_bytes()
}

/// The HTTP/1.1 subscribe request. nchan needs the `Accept` header; the others accept it.
pub fn subscribe_request(url: &Url, last_event_id: Option<&[u8]>) -> Vec<u8> {
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n",
        url.path, url.authority
    )
    .into_bytes();
    if let Some(id) = last_event_id.filter(|id| !id.is_empty()) {
        req.extend_from_slice(b"Last-Event-ID: ");
        req.extend_from_slice(id);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_loopback_only() {
        let u = Url::parse("http://127.0.0.1:8081/sub/a").unwrap();
        assert_eq!(u.addr.port(), 8081);
        assert_eq!(u.path, "/sub/a");
        assert!(Url::parse("https://localhost:8443/events/x").unwrap().tls);
        assert!(Url::parse("http://10.0.0.1:80/").is_err());
        assert!(Url::parse("http://example.com/").is_err());
    }

    #[test]
    fn publish_formats() {
        let (body, _) = publish_body(Format::Pushpin, "c1", "0 1 2 x");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["items"][0]["formats"]["http-stream"]["content"],
            "data: 0 1 2 x\n\n"
        );
        let (body, _) = publish_body(Format::Ssegate, "c1", "0 1 2 x");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["channel"], "c1");
        assert_eq!(v["data"], "0 1 2 x");
        let u = Url::parse("http://127.0.0.1:8081/pub/c1").unwrap();
        let req = publish_request(Format::Nchan, &u, "c1", "abc", None);
        assert!(req.ends_with(b"Content-Length: 3\r\n\r\nabc"));
    }
}
