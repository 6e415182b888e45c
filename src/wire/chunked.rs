//! HTTP/1.1 chunked framing of stream bytes, for pushed streams on plain listeners.
//!
//! Every subscriber of a channel writes the same frame, so the chunk around it (size
//! line, data, CRLF) is built once, when the event is encoded (the hub stores it as the
//! frame's envelope): a pushed stream then hands the kernel one contiguous buffer per
//! delivery, one `send()` with no per-subscriber copy. Batches of several frames get
//! one chunk around them all.

use std::fmt::Write;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// Longest chunk-size line: 16 hex digits and CRLF.
const MAX_SIZE_LINE: usize = 18;

/// Where the data starts in a chunk of `len` data bytes (the size line's length).
pub fn data_offset(len: usize) -> usize {
    let digits = if len == 0 {
        1
    } else {
        (usize::BITS - len.leading_zeros()).div_ceil(4) as usize
    };
    digits + 2
}

/// `data` as one chunk. Empty data stays empty: an empty chunk would end the body.
pub fn chunk(data: &[u8]) -> Bytes {
    chunk_parts([data])
}

/// The concatenation of `parts` as one chunk (empty when they are all empty).
pub fn chunk_parts<'a, I>(parts: I) -> Bytes
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: Clone,
{
    let parts = parts.into_iter();
    let len: usize = parts.clone().map(<[u8]>::len).sum();
    chunk_of(len, &mut parts.into_iter())
}

/// `parts`, whose lengths sum to `len`, as one chunk (empty when `len` is 0). The shape
/// of the hub's envelope function, so a subscription can batch frames into one chunk.
pub fn chunk_of(len: usize, parts: &mut dyn Iterator<Item = &[u8]>) -> Bytes {
    if len == 0 {
        return Bytes::new();
    }
    let mut buf = BytesMut::with_capacity(len + MAX_SIZE_LINE + 2);
    // Writing into a BytesMut cannot fail.
    let _ = write!(buf, "{len:x}\r\n");
    for part in parts {
        buf.put_slice(part);
    }
    buf.put_slice(b"\r\n");
    buf.freeze()
}

/// `data` as one chunk and where `data` sits inside it (the envelope a frame is stored
/// in; an empty `data` is an empty chunk with an empty range).
pub fn chunk_with_range(data: &[u8]) -> (Bytes, Range<usize>) {
    if data.is_empty() {
        return (Bytes::new(), 0..0);
    }
    let start = data_offset(data.len());
    (chunk(data), start..start + data.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_data_as_one_chunk() {
        assert_eq!(&chunk(b"hello")[..], b"5\r\nhello\r\n");
        assert_eq!(&chunk(&[b'x'; 26])[..4], b"1a\r\n");
        assert!(chunk(b"").is_empty());
        assert_eq!(
            &chunk_parts([&b"ab"[..], b"", b"cde"])[..],
            b"5\r\nabcde\r\n"
        );
    }

    #[test]
    fn data_offset_is_the_size_line() {
        for len in [1usize, 15, 16, 255, 256, 4095, 4096, 65535, 70000] {
            assert_eq!(data_offset(len), format!("{len:x}\r\n").len(), "{len}");
        }
        assert_eq!(data_offset(0), 3);
    }

    #[test]
    fn a_chunk_knows_where_its_data_is() {
        let (chunk, range) = chunk_with_range(b"id: 1\n\n");
        assert_eq!(&chunk[..], b"7\r\nid: 1\n\n\r\n");
        assert_eq!(&chunk[range], b"id: 1\n\n");
        let (empty, range) = chunk_with_range(b"");
        assert!(empty.is_empty() && range.is_empty());
        let mut parts = [&b"ab"[..], b"c"].into_iter();
        assert_eq!(&chunk_of(3, &mut parts)[..], b"3\r\nabc\r\n");
    }
}
