//! The HTTP/1.1 wire, as little of it as the load generator needs: a response head
//! (status and how the body is framed) and an incremental chunked-body decoder.
//!
//! Subscribers over plain HTTP/1.1 read raw bytes from their socket and push them through
//! [`BodyDecoder`] into the SSE parser; the publisher uses the same pieces to read the
//! answers to its POSTs. Nothing here allocates per call beyond the head it parses.

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length: n`.
    Length(u64),
    /// Neither: the body runs until the server closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// How the body is delimited.
    pub body: BodyKind,
    /// Bytes of the input the head took, up to and including its blank line.
    pub len: usize,
    /// The `Content-Type`, lowercased, when there is one.
    pub content_type: Option<String>,
    /// `Connection: close`: the server closes after this response.
    pub close: bool,
}

/// The most bytes a response head may take.
pub const MAX_HEAD: usize = 16 * 1024;

/// Parses a response head from the start of `buf`. `Ok(None)`: not complete yet.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err("response head too large".into());
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x response: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut body = BodyKind::UntilClose;
    let mut content_type = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            body = BodyKind::Chunked;
        } else if name.eq_ignore_ascii_case("content-length") && body != BodyKind::Chunked {
            let n = value
                .parse::<u64>()
                .map_err(|_| format!("bad content-length {value:?}"))?;
            body = BodyKind::Length(n);
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.to_ascii_lowercase().contains("close");
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_ascii_lowercase());
        }
    }
    if status == 204 || status == 304 || (100..200).contains(&status) {
        body = BodyKind::Length(0);
    }
    Ok(Some(Head {
        status,
        body,
        len: end + 4,
        content_type,
        close,
    }))
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where the chunked decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex size; `ext` once a `;` extension started.
    Size { value: u64, digits: u8, ext: bool },
    /// Saw the CR after the size line.
    SizeLf,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CR after a chunk's data.
    DataCr,
    /// Expecting the LF after a chunk's data.
    DataLf,
    /// After the last (zero) chunk: trailer lines until a blank one. `blank` while the
    /// current line is still empty.
    Trailer { blank: bool },
    /// The body ended.
    Done,
}

/// An incremental decoder of a response body, whatever its framing: it hands the
/// payload bytes to a callback as they arrive and says when the body ended.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    kind: BodyKind,
    chunk: Chunk,
    /// Bytes left of a `Content-Length` body.
    remaining: u64,
}

/// What a call to [`BodyDecoder::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// The body goes on.
    More,
    /// The body ended; the value is how many input bytes belonged to it (the rest is the
    /// next response on a keep-alive connection).
    Ended(usize),
}

impl BodyDecoder {
    /// A decoder for a body delimited as `kind`.
    pub fn new(kind: BodyKind) -> BodyDecoder {
        let remaining = match kind {
            BodyKind::Length(n) => n,
            _ => 0,
        };
        BodyDecoder {
            kind,
            chunk: Chunk::Size {
                value: 0,
                digits: 0,
                ext: false,
            },
            remaining,
        }
    }

    /// How the body is delimited.
    pub fn kind(&self) -> BodyKind {
        self.kind
    }

    /// True once the whole body has been seen.
    #[cfg(test)]
    pub fn is_done(&self) -> bool {
        match self.kind {
            BodyKind::Chunked => self.chunk == Chunk::Done,
            BodyKind::Length(_) => self.remaining == 0,
            BodyKind::UntilClose => false,
        }
    }

    /// Decodes `input`, handing payload slices to `out`.
    pub fn feed(&mut self, input: &[u8], mut out: impl FnMut(&[u8])) -> Result<Fed, String> {
        match self.kind {
            BodyKind::UntilClose => {
                if !input.is_empty() {
                    out(input);
                }
                Ok(Fed::More)
            }
            BodyKind::Length(_) => {
                let take = (self.remaining.min(input.len() as u64)) as usize;
                if take > 0 {
                    out(&input[..take]);
                }
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    Ok(Fed::Ended(take))
                } else {
                    Ok(Fed::More)
                }
            }
            BodyKind::Chunked => self.feed_chunked(input, out),
        }
    }

    fn feed_chunked(&mut self, input: &[u8], mut out: impl FnMut(&[u8])) -> Result<Fed, String> {
        let mut i = 0;
        while i < input.len() {
            match &mut self.chunk {
                Chunk::Size { value, digits, ext } => {
                    let b = input[i];
                    i += 1;
                    if b == b'\r' {
                        if *digits == 0 {
                            return Err("chunk size line without digits".into());
                        }
                        let size = *value;
                        self.chunk = Chunk::SizeLf;
                        self.remaining = size;
                    } else if *ext {
                        // chunk extension: ignored up to the CR
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        *ext = true;
                    } else {
                        let d = (b as char)
                            .to_digit(16)
                            .ok_or_else(|| format!("bad chunk size byte {b:#04x}"))?;
                        if *digits >= 15 {
                            return Err("chunk size too large".into());
                        }
                        *value = *value * 16 + d as u64;
                        *digits += 1;
                    }
                }
                Chunk::SizeLf => {
                    if input[i] != b'\n' {
                        return Err("chunk size line not ended by CRLF".into());
                    }
                    i += 1;
                    self.chunk = if self.remaining == 0 {
                        Chunk::Trailer { blank: true }
                    } else {
                        Chunk::Data(self.remaining)
                    };
                }
                Chunk::Data(left) => {
                    let take = (*left).min((input.len() - i) as u64) as usize;
                    out(&input[i..i + take]);
                    i += take;
                    *left -= take as u64;
                    if *left == 0 {
                        self.chunk = Chunk::DataCr;
                    }
                }
                Chunk::DataCr => {
                    if input[i] != b'\r' {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    i += 1;
                    self.chunk = Chunk::DataLf;
                }
                Chunk::DataLf => {
                    if input[i] != b'\n' {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    i += 1;
                    self.chunk = Chunk::Size {
                        value: 0,
                        digits: 0,
                        ext: false,
                    };
                }
                Chunk::Trailer { blank } => {
                    let b = input[i];
                    i += 1;
                    if b == b'\n' {
                        if *blank {
                            self.chunk = Chunk::Done;
                            return Ok(Fed::Ended(i));
                        }
                        *blank = true;
                    } else if b != b'\r' {
                        *blank = false;
                    }
                }
                Chunk::Done => return Ok(Fed::Ended(i)),
            }
        }
        Ok(Fed::More)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_chunked_and_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nrest";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.body, BodyKind::Chunked);
        assert_eq!(&raw[head.len..], b"rest");
        assert_eq!(head.content_type.as_deref(), Some("text/event-stream"));
        let head = parse_head(b"HTTP/1.1 202 Accepted\r\ncontent-length: 12\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.body, BodyKind::Length(12));
        assert!(!head.close);
        let head = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.close);
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nX: y\r\n").unwrap(), None);
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_split_anywhere() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        // Every split point, byte by byte and in two halves, gives the same payload.
        for split in 0..wire.len() {
            let mut d = BodyDecoder::new(BodyKind::Chunked);
            let mut got = Vec::new();
            let mut ended = None;
            let (a, b) = wire.split_at(split);
            for (offset, part) in [(0, a), (split, b)] {
                if ended.is_some() {
                    break;
                }
                if let Fed::Ended(n) = d.feed(part, |s| got.extend_from_slice(s)).unwrap() {
                    ended = Some(offset + n);
                }
            }
            assert_eq!(got, b"hello, world", "split at {split}");
            assert_eq!(ended, Some(wire.len() - 4), "split at {split}");
            assert!(d.is_done());
        }
    }

    #[test]
    fn chunked_rejects_garbage() {
        let mut d = BodyDecoder::new(BodyKind::Chunked);
        assert!(d.feed(b"zz\r\n", |_| {}).is_err());
        let mut d = BodyDecoder::new(BodyKind::Chunked);
        assert!(d.feed(b"2\r\nabX", |_| {}).is_err());
    }

    #[test]
    fn length_body_ends_and_leaves_the_rest() {
        let mut d = BodyDecoder::new(BodyKind::Length(3));
        let mut got = Vec::new();
        assert_eq!(
            d.feed(b"ab", |s| got.extend_from_slice(s)).unwrap(),
            Fed::More
        );
        assert_eq!(
            d.feed(b"cHTTP", |s| got.extend_from_slice(s)).unwrap(),
            Fed::Ended(1)
        );
        assert_eq!(got, b"abc");
    }
}
