//! SSE frame encoding. Each event is encoded once into shared bytes; these functions are
//! the only place that knows the line format.
//!
//! What a publisher controls can never break the framing: `event` names are checked for
//! CR, LF and NUL before they get here ([`is_safe_field`]); string data is split into one
//! `data:` line per line at `\n`, `\r\n` and `\r`; JSON data is written compact (its
//! numbers and strings exactly as sent), and JSON holds no unescaped line break.

use bytes::{BufMut, Bytes, BytesMut};

use serde_json::value::RawValue;

use super::compact_json;
use crate::model::event_id::EventId;

/// An event's payload.
#[derive(Debug, Clone)]
pub enum EventData {
    /// Text, written as is, one `data:` line per line.
    Text(String),
    /// JSON text (validated), written compact on one `data:` line, its tokens as sent.
    Json(Box<RawValue>),
}

/// The `event:` name that tells a client to reload its state.
pub const RESYNC_EVENT: &str = "ssegate.resync";

/// True when a field value (an event name) holds no CR, LF or NUL.
pub fn is_safe_field(value: &str) -> bool {
    !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// The lines of an event after its `id:` line: `event:` (if any), `data:` lines and the
/// closing blank line. The event name must satisfy [`is_safe_field`].
pub fn event_body(event: Option<&str>, data: &EventData) -> Bytes {
    let mut buf = BytesMut::new();
    if let Some(name) = event {
        debug_assert!(is_safe_field(name));
        buf.put_slice(b"event: ");
        buf.put_slice(name.as_bytes());
        buf.put_u8(b'\n');
    }
    match data {
        EventData::Text(text) => {
            buf.reserve(text.len() + 8);
            for line in split_lines(text) {
                buf.put_slice(b"data: ");
                buf.put_slice(line.as_bytes());
                buf.put_u8(b'\n');
            }
        }
        EventData::Json(raw) => {
            buf.put_slice(b"data: ");
            compact_json::write_compact(raw.get(), &mut buf);
            buf.put_u8(b'\n');
        }
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

/// Splits at `\r\n`, `\n` and `\r`; an empty text is one empty line.
pub fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\r', '\n']) {
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

/// Prefixes an event body with its `id:` line: the frame every subscriber shares.
pub fn frame_with_id(id: EventId, body: &Bytes) -> Bytes {
    let mut buf = BytesMut::with_capacity(body.len() + 32);
    buf.put_slice(b"id: ");
    buf.put_slice(id.to_string().as_bytes());
    buf.put_u8(b'\n');
    buf.put_slice(body);
    buf.freeze()
}

/// The first bytes of every stream: the `retry:` delay, and (unless a resync follows,
/// which carries its own id) the stream's starting position as an `id:` without data, so
/// a browser that reconnects before any event resumes from here instead of the head.
pub fn preamble(retry_ms: u64, start: Option<EventId>) -> Bytes {
    match start {
        Some(id) => Bytes::from(format!("retry: {retry_ms}\nid: {id}\n\n")),
        None => Bytes::from(format!("retry: {retry_ms}\n\n")),
    }
}

/// The resync event: its id is the new position, its data the reason.
pub fn resync(position: EventId, reason: &str) -> Bytes {
    Bytes::from(format!(
        "id: {position}\nevent: {RESYNC_EVENT}\ndata: {{\"reason\":\"{reason}\"}}\n\n"
    ))
}

/// A heartbeat comment; with `position`, also an `id:` (no data, so no event fires) that
/// moves the browser's last event id forward on quiet channels.
pub fn heartbeat(position: Option<EventId>) -> Bytes {
    match position {
        Some(id) => Bytes::from(format!(":\nid: {id}\n\n")),
        None => Bytes::from_static(b":\n\n"),
    }
}

/// The last bytes of a stream the gateway ends: a fresh `retry:` for the reconnect.
pub fn farewell(retry_ms: u64) -> Bytes {
    Bytes::from(format!("retry: {retry_ms}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: Bytes) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn text_lines_split_on_every_line_break() {
        let body = event_body(Some("msg"), &EventData::Text("a\nb\r\nc\rd".into()));
        assert_eq!(
            text(body),
            "event: msg\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn empty_and_trailing_lines_are_kept() {
        assert_eq!(
            text(event_body(None, &EventData::Text(String::new()))),
            "data: \n\n"
        );
        assert_eq!(
            text(event_body(None, &EventData::Text("a\n".into()))),
            "data: a\ndata: \n\n"
        );
        assert_eq!(
            text(event_body(None, &EventData::Text("\r\n\r\n".into()))),
            "data: \ndata: \ndata: \n\n"
        );
    }

    #[test]
    fn json_is_compact_and_one_line() {
        let v = RawValue::from_string("{\"a\": [1,\n 2], \"s\": \"x\\ny\", \"u\": \"ünï\"}".into())
            .unwrap();
        assert_eq!(
            text(event_body(None, &EventData::Json(v))),
            "data: {\"a\":[1,2],\"s\":\"x\\ny\",\"u\":\"ünï\"}\n\n"
        );
    }

    #[test]
    fn unsafe_fields() {
        assert!(is_safe_field("message"));
        assert!(is_safe_field("ünï-code"));
        for bad in ["a\nb", "a\rb", "a\0b", "\n"] {
            assert!(!is_safe_field(bad), "{bad:?}");
        }
    }

    #[test]
    fn frames_and_control() {
        let id = EventId { epoch: 1, seq: 9 };
        let body = event_body(None, &EventData::Text("x".into()));
        assert_eq!(
            text(frame_with_id(id, &body)),
            "id: 00000001-9\ndata: x\n\n"
        );
        assert_eq!(
            text(preamble(2500, Some(id))),
            "retry: 2500\nid: 00000001-9\n\n"
        );
        assert_eq!(
            text(resync(id, "lagged")),
            "id: 00000001-9\nevent: ssegate.resync\ndata: {\"reason\":\"lagged\"}\n\n"
        );
        assert_eq!(text(heartbeat(None)), ":\n\n");
    }
}
