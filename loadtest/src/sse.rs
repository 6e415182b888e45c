//! An incremental `text/event-stream` parser (the WHATWG EventSource rules that matter
//! here): lines end in LF, CRLF or CR, anywhere across reads; `data:` lines accumulate;
//! a blank line dispatches; `:` lines are comments; `id:` sets the last event id.
//!
//! Complete lines are parsed in place from the input; only a line cut by the end of a
//! read is copied, so an idle connection's parser holds no allocation.

/// One dispatched event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` name; empty for the default `message`.
    pub event: &'a [u8],
    /// The data, `data:` lines joined by LF.
    pub data: &'a [u8],
}

/// The parser state of one stream.
#[derive(Debug, Default, Clone)]
pub struct SseParser {
    /// A line cut by the end of the previous input.
    partial: Vec<u8>,
    /// The data buffer of the event being read.
    data: Vec<u8>,
    /// Whether a `data:` field was seen for the event being read.
    has_data: bool,
    /// The event name of the event being read.
    event: Vec<u8>,
    /// The id buffer: set by `id:` lines, taken as the last event id when the event is
    /// dispatched (a connection cut between `id:` and the blank line must not count the
    /// event as seen).
    id_buffer: Vec<u8>,
    /// The last event id (what a reconnect sends as `Last-Event-ID`).
    last_id: Vec<u8>,
    /// The previous input ended with CR: a leading LF belongs to that line end.
    after_cr: bool,
    /// Comment lines seen (heartbeats).
    comments: u64,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// The last `id:` seen (empty when none).
    pub fn last_id(&self) -> &[u8] {
        &self.last_id
    }

    /// Sets the last event id, e.g. carried over from a previous connection.
    pub fn set_last_id(&mut self, id: &[u8]) {
        self.last_id.clear();
        self.last_id.extend_from_slice(id);
        self.id_buffer.clear();
        self.id_buffer.extend_from_slice(id);
    }

    /// Comment lines seen so far.
    #[cfg(test)]
    pub fn comments(&self) -> u64 {
        self.comments
    }

    /// Parses `input`, calling `on_event` for each dispatched event.
    pub fn feed(&mut self, mut input: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) {
        if self.after_cr {
            self.after_cr = false;
            if input.first() == Some(&b'\n') {
                input = &input[1..];
            }
        }
        while !input.is_empty() {
            match input.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.partial.extend_from_slice(input);
                    return;
                }
                Some(end) => {
                    let line_end = end;
                    let mut next = end + 1;
                    if input[end] == b'\r' {
                        if next < input.len() {
                            if input[next] == b'\n' {
                                next += 1;
                            }
                        } else {
                            self.after_cr = true;
                        }
                    }
                    if self.partial.is_empty() {
                        self.line(&input[..line_end], &mut on_event);
                    } else {
                        let mut whole = std::mem::take(&mut self.partial);
                        whole.extend_from_slice(&input[..line_end]);
                        self.line(&whole, &mut on_event);
                        whole.clear();
                        self.partial = whole;
                        if self.partial.capacity() > 4096 {
                            self.partial = Vec::new();
                        }
                    }
                    input = &input[next..];
                }
            }
        }
    }

    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        if line.is_empty() {
            if self.last_id != self.id_buffer {
                self.last_id.clear();
                self.last_id.extend_from_slice(&self.id_buffer);
            }
            if self.has_data {
                if self.data.last() == Some(&b'\n') {
                    self.data.pop();
                }
                on_event(SseEvent {
                    event: &self.event,
                    data: &self.data,
                });
            }
            self.data.clear();
            self.event.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.id_buffer.clear();
                self.id_buffer.extend_from_slice(value);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(parts: &[&[u8]]) -> (Vec<(String, String)>, SseParser) {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for part in parts {
            p.feed(part, |e| {
                out.push((
                    String::from_utf8_lossy(e.event).into_owned(),
                    String::from_utf8_lossy(e.data).into_owned(),
                ))
            });
        }
        (out, p)
    }

    #[test]
    fn events_ids_and_comments() {
        let wire: &[u8] = b"retry: 3000\nid: ab-0\n\n: hb\n\nid: ab-1\nevent: message\ndata: 1 2 3\n\nid: ab-2\ndata: a\ndata: b\n\n";
        let (events, p) = parse_all(&[wire]);
        assert_eq!(
            events,
            vec![
                ("message".into(), "1 2 3".into()),
                ("".into(), "a\nb".into())
            ]
        );
        assert_eq!(p.last_id(), b"ab-2");
        assert_eq!(p.comments(), 1);
    }

    #[test]
    fn any_split_and_any_line_ending() {
        for ending in [&b"\n"[..], b"\r\n", b"\r"] {
            let mut wire = Vec::new();
            for line in [&b"id: 7"[..], b"data: x y", b"", b"data: z", b""] {
                wire.extend_from_slice(line);
                wire.extend_from_slice(ending);
            }
            for split in 0..=wire.len() {
                let (a, b) = wire.split_at(split);
                let (events, p) = parse_all(&[a, b]);
                let data: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
                assert_eq!(data, ["x y", "z"], "split {split} ending {ending:?}");
                assert_eq!(p.last_id(), b"7");
            }
        }
    }

    #[test]
    fn the_id_counts_only_once_its_event_is_complete() {
        let (events, p) = parse_all(&[b"id: 1\ndata: a\n\nid: 2\ndata: b\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(p.last_id(), b"1", "event 2 is not complete: resume after 1");
    }

    #[test]
    fn a_lone_id_block_sets_the_id_without_an_event() {
        let (events, p) = parse_all(&[b"id: e-5\n\n"]);
        assert!(events.is_empty());
        assert_eq!(p.last_id(), b"e-5");
    }
}
