//! What a channel name is, and channel-name patterns (`chat:*`).
//!
//! A name is 1 to [`MAX_LEN`] characters from `A-Z a-z 0-9 _ - : . @ / =`: enough for
//! `user:42`, `workspace/7/sidebar` or `dm:a@b`, and nothing that needs escaping in a URL
//! path, a log line or a Redis key.

use std::collections::HashSet;
use std::sync::Arc;

use crate::model::error::ApiError;
use crate::model::reasons::RefusalReason;

/// The longest channel name, in bytes.
pub const MAX_LEN: usize = 128;

/// True for the characters a channel name may hold.
pub fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b':' | b'.' | b'@' | b'/' | b'=')
}

/// True when `name` is a valid channel name.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_LEN && name.bytes().all(is_name_char)
}

/// The placeholder for a token's subject in a channel pattern.
pub const SUBJECT: &str = "{sub}";

/// True when `pattern` is a valid pattern: channel characters, `*` wildcards and
/// `{sub}` placeholders.
pub fn is_valid_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.len() <= MAX_LEN
        && pattern
            .replace(SUBJECT, "")
            .bytes()
            .all(|c| c == b'*' || is_name_char(c))
}

/// Glob match for access: `*` matches any run of characters and `{sub}` matches
/// exactly `subject`, the token's subject. Without a subject a pattern holding `{sub}`
/// matches nothing: `user:{sub}` in a grant or a rule must never open `user:*` to a
/// token that names no one. Used wherever a pattern decides who may read or write.
pub fn pattern_matches_subject(pattern: &str, name: &str, subject: Option<&str>) -> bool {
    if !pattern.contains(SUBJECT) {
        return pattern_matches(pattern, name);
    }
    let Some(sub) = subject else {
        return false;
    };
    let mut parts = pattern.splitn(2, SUBJECT);
    let head = parts.next().unwrap_or("");
    let tail = parts.next().unwrap_or("");
    // `{sub}` as the literal subject: try every split of `name` where the subject could
    // stand after a match of `head`.
    (0..=name.len()).any(|i| {
        name.is_char_boundary(i)
            && name[i..].starts_with(sub)
            && pattern_matches(head, &name[..i])
            && pattern_matches_subject(tail, &name[i + sub.len()..], Some(sub))
    })
}

/// Glob match for finding the rule or the history bounds that apply to a channel,
/// whoever asks: `*` and `{sub}` both match any run of characters (`user:{sub}`
/// describes every `user:…` channel). Never an access decision: that is
/// [`pattern_matches_subject`].
pub fn pattern_matches_any_subject(pattern: &str, name: &str) -> bool {
    pattern_matches(&pattern.replace(SUBJECT, "*"), name)
}

/// Glob match where `*` matches any run of characters (including none).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Checks channel names (present, valid, within `max`) and removes duplicates, keeping
/// the first occurrence's order. Shared by publish and subscribe.
pub fn validate_list(names: Vec<String>, max: usize) -> Result<Vec<Arc<str>>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request(
            "channel_missing",
            "name at least one channel",
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if !is_valid(&name) {
            return Err(ApiError::bad_request(
                "channel_invalid",
                format!(
                    "{:?} is not a channel name: 1 to {} characters from A-Z a-z 0-9 _ - : . @ / =",
                    truncate(&name),
                    MAX_LEN
                ),
            ));
        }
        if seen.insert(name.clone()) {
            out.push(Arc::from(name));
        }
    }
    if out.len() > max {
        return Err(ApiError::refused(
            RefusalReason::TooManyChannels,
            format!("at most {max} channels at once"),
            None,
        ));
    }
    Ok(out)
}

/// A name cut for echoing in an error message.
fn truncate(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid("chat:42"));
        assert!(is_valid("workspace/7/side-bar_x.y@z=1"));
        assert!(!is_valid(""));
        assert!(!is_valid("has space"));
        assert!(!is_valid("nl\n"));
        assert!(!is_valid("ünï"));
        assert!(is_valid(&"a".repeat(MAX_LEN)));
        assert!(!is_valid(&"a".repeat(MAX_LEN + 1)));
    }

    #[test]
    fn subject_patterns() {
        assert!(is_valid_pattern("user:{sub}"));
        assert!(is_valid_pattern("ws:*:user:{sub}"));
        assert!(!is_valid_pattern("user:{subject}"));
        let access = pattern_matches_subject;
        assert!(access("user:{sub}", "user:42", Some("42")));
        assert!(!access("user:{sub}", "user:7", Some("42")));
        assert!(!access("user:{sub}", "user:420", Some("42")));
        assert!(access("ws:*:u:{sub}", "ws:9:u:42", Some("42")));
        // A subject is literal text: `*` in it is no wildcard.
        assert!(!access("user:{sub}", "user:42", Some("*")));
        assert!(access("{sub}/{sub}", "a/a", Some("a")));
        assert!(!access("{sub}/{sub}", "a/b", Some("a")));
        // No subject: a `{sub}` pattern matches nothing; others match as globs.
        assert!(!access("user:{sub}", "user:anything", None));
        assert!(!access("user:{sub}", "user:", None));
        assert!(!access("{sub}", "x", None));
        assert!(access("chat:*", "chat:1", None));
        // Finding the rule that applies: `{sub}` stands for anyone.
        assert!(pattern_matches_any_subject("user:{sub}", "user:anything"));
        assert!(pattern_matches_any_subject("{sub}/{sub}", "a/b"));
        assert!(!pattern_matches_any_subject("user:{sub}", "team:1"));
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("chat:*", "chat:1"));
        assert!(pattern_matches("chat:*", "chat:"));
        assert!(!pattern_matches("chat:*", "news:1"));
        assert!(pattern_matches("*", "anything"));
        assert!(pattern_matches("a*b*c", "aXXbYYc"));
        assert!(!pattern_matches("a*b*c", "aXXbYY"));
        assert!(pattern_matches("exact", "exact"));
        assert!(!pattern_matches("exact", "exactly"));
    }
}
