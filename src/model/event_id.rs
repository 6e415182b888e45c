//! Event ids: an epoch and a sequence number, written as `<epoch hex>-<seq>`.
//!
//! Ids are assigned by the broker, strictly increasing within one epoch, and the same on
//! every node. Clients treat them as opaque strings; the gateway parses them back when a
//! client resumes with `Last-Event-ID`.

use std::fmt;

/// A position in the deployment's event sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    /// The deployment epoch: a random number chosen when the sequence starts; an id from
    /// another epoch cannot be compared with this one's.
    pub epoch: u32,
    /// The sequence number within the epoch; 0 means "before the first event".
    pub seq: u64,
}

impl EventId {
    /// Parses the text form; `None` for anything that is not exactly `<8 hex>-<digits>`.
    pub fn parse(text: &str) -> Option<EventId> {
        let (epoch, seq) = text.split_once('-')?;
        if epoch.len() != 8 || seq.is_empty() || seq.len() > 20 {
            return None;
        }
        if !epoch.bytes().all(|c| c.is_ascii_hexdigit()) || !seq.bytes().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        Some(EventId {
            epoch: u32::from_str_radix(epoch, 16).ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}-{}", self.epoch, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let id = EventId {
            epoch: 0xdead_beef,
            seq: 42,
        };
        assert_eq!(id.to_string(), "deadbeef-42");
        assert_eq!(EventId::parse("deadbeef-42"), Some(id));
        assert_eq!(EventId::parse("0000000a-0").unwrap().epoch, 10);
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "42",
            "deadbeef",
            "deadbeef-",
            "deadbee-1",
            "deadbeefx-1",
            "xxxxxxxx-1",
            "deadbeef-1a",
            "deadbeef--1",
            "deadbeef-99999999999999999999999",
            "deadbeef-+1",
        ] {
            assert_eq!(EventId::parse(bad), None, "{bad}");
        }
    }
}
