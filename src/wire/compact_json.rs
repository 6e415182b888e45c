//! JSON text written compact, its tokens exactly as sent: numbers keep every digit
//! (`123456789012345678901234567890` stays that, not `1.2345678901234568e+29`).
//!
//! Hand-written because what it does is this small: the text is already validated JSON
//! (a `serde_json::value::RawValue`), so dropping the four whitespace bytes outside
//! strings is the whole job. Going through `serde_json::Value` would round big numbers,
//! and its `arbitrary_precision` feature would change how every `Value` in the process
//! holds numbers (this crate's config and JWT claims included).

use bytes::{BufMut, BytesMut};

/// Appends `json` (valid JSON text) to `out` without its insignificant whitespace. The
/// result holds no CR or LF: JSON strings cannot hold them unescaped.
pub fn write_compact(json: &str, out: &mut BytesMut) {
    out.reserve(json.len());
    let bytes = json.as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.put_slice(&bytes[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.put_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(json: &str) -> String {
        let mut out = BytesMut::new();
        write_compact(json, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn whitespace_goes_tokens_stay() {
        assert_eq!(
            compact("{ \"a\" :\r\n [1 ,\t2.50, 1e400 ],\n \"n\": 123456789012345678901234567890 }"),
            "{\"a\":[1,2.50,1e400],\"n\":123456789012345678901234567890}"
        );
        assert_eq!(
            compact(r#"{"s": "a b\" \\", "t" : "\n" }"#),
            r#"{"s":"a b\" \\","t":"\n"}"#
        );
        assert_eq!(compact(" null "), "null");
    }
}
