//! What each subscriber received, checked against what was published: every event once,
//! in order. Loss, duplicates, out-of-order arrivals and gaps are counted, never hidden.
//!
//! Also the event payload that makes the check possible: `"<seq> <scheduled_ns>
//! <sent_ns> <padding>"`, where `seq` counts the events of one channel from 0 and the
//! times are Unix nanoseconds on this machine's clock (publisher and subscribers share it).

use serde::{Deserialize, Serialize};

/// The numbers an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Position of the event in its channel, from 0.
    pub seq: u32,
    /// When the event was scheduled to be published (Unix ns).
    pub scheduled_ns: u64,
    /// When the publisher actually wrote it (Unix ns).
    pub sent_ns: u64,
}

/// The payload of one event, `pad_to` bytes long at least (padding with `x`).
pub fn payload(stamp: Stamp, pad_to: usize) -> String {
    let mut s = format!("{} {} {} ", stamp.seq, stamp.scheduled_ns, stamp.sent_ns);
    while s.len() < pad_to {
        s.push('x');
    }
    s
}

/// Reads the numbers back from an event's data; `None` for anything else.
pub fn parse_stamp(data: &[u8]) -> Option<Stamp> {
    let mut fields = data.split(|&b| b == b' ');
    let seq = parse_u64(fields.next()?)?;
    let scheduled_ns = parse_u64(fields.next()?)?;
    let sent_ns = parse_u64(fields.next()?)?;
    Some(Stamp {
        seq: u32::try_from(seq).ok()?,
        scheduled_ns,
        sent_ns,
    })
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (d - b'0') as u64;
    }
    Some(v)
}

/// Highest sequence number a tracker keeps a bit for; beyond it an event is foreign.
pub const MAX_SEQ: u32 = 4_000_000;

/// What happened to one received event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next one, or at least new and above everything so far.
    InOrder,
    /// Seen before.
    Duplicate,
    /// New, but below an event already received.
    OutOfOrder,
    /// Not a sequence number this run could have published.
    Foreign,
}

/// One subscriber's record: a bitmap of the sequence numbers seen, plus counters.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    seen: Vec<u64>,
    /// Distinct sequence numbers received.
    pub unique: u32,
    /// Highest sequence number received, plus one (0: none yet).
    pub high: u32,
    /// Events received again.
    pub duplicates: u32,
    /// Events that arrived after a later one.
    pub out_of_order: u32,
    /// Times the stream jumped forward past a missing sequence number.
    pub gaps: u32,
    /// Data events whose payload was not ours.
    pub foreign: u32,
    /// Resync notices (`event: ssegate.resync`).
    pub resyncs: u32,
}

/// A tracker's verdict against what was published to its channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Events that should have arrived.
    pub expected: u64,
    /// Of those, how many arrived (at least once).
    pub delivered: u64,
    /// Of those, how many never arrived.
    pub lost: u64,
    /// Arrivals of events the publisher had not confirmed (a failed publish that the
    /// server applied anyway); not counted as received or lost.
    pub unexpected: u64,
}

impl Tracker {
    /// An empty tracker; `events_hint` sizes its bitmap up front.
    pub fn new(events_hint: u32) -> Tracker {
        Tracker {
            seen: Vec::with_capacity((events_hint as usize).div_ceil(64)),
            ..Tracker::default()
        }
    }

    /// Records the arrival of `seq`.
    pub fn record(&mut self, seq: u32) -> Arrival {
        if seq >= MAX_SEQ {
            self.foreign += 1;
            return Arrival::Foreign;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.seen[word] |= 1 << bit;
        self.unique += 1;
        if seq + 1 > self.high {
            if seq > self.high {
                self.gaps += 1;
            }
            self.high = seq + 1;
            Arrival::InOrder
        } else {
            self.out_of_order += 1;
            Arrival::OutOfOrder
        }
    }

    /// True when `seq` was received.
    pub fn has(&self, seq: u32) -> bool {
        let word = (seq / 64) as usize;
        word < self.seen.len() && self.seen[word] & (1 << (seq % 64)) != 0
    }

    /// Checks against the events `0..count` of the channel, less `skip` (sorted: events
    /// whose publish was not confirmed, which may or may not arrive).
    pub fn tally(&self, count: u32, skip: &[u32]) -> Tally {
        let mut delivered = 0u64;
        let full_words = (count / 64) as usize;
        for w in self.seen.iter().take(full_words) {
            delivered += w.count_ones() as u64;
        }
        for seq in (full_words as u32 * 64)..count {
            if self.has(seq) {
                delivered += 1;
            }
        }
        let mut skipped_present = 0u64;
        for &s in skip.iter().filter(|&&s| s < count) {
            if self.has(s) {
                skipped_present += 1;
            }
        }
        let skipped = skip.iter().filter(|&&s| s < count).count() as u64;
        let delivered = delivered - skipped_present;
        let expected = count as u64 - skipped;
        Tally {
            expected,
            delivered,
            lost: expected - delivered,
            unexpected: self.unique as u64 - delivered,
        }
    }

    /// True when every event `0..count` not in `skip` was received.
    pub fn complete(&self, count: u32, skip: &[u32]) -> bool {
        self.high >= count.saturating_sub(skip.len() as u32) && self.tally(count, skip).lost == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let stamp = Stamp {
            seq: 42,
            scheduled_ns: 1_700_000_000_123_456_789,
            sent_ns: 1_700_000_000_123_999_000,
        };
        let p = payload(stamp, 100);
        assert_eq!(p.len(), 100);
        assert_eq!(parse_stamp(p.as_bytes()), Some(stamp));
        assert_eq!(parse_stamp(b"{\"reason\":\"lagged\"}"), None);
        assert_eq!(parse_stamp(b"1 2"), None);
    }

    #[test]
    fn loss_duplicates_and_order_are_counted() {
        let mut t = Tracker::new(10);
        for seq in [0, 1, 2, 2, 5, 4, 6, 9] {
            t.record(seq);
        }
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.out_of_order, 1); // 4 after 5
        assert_eq!(t.gaps, 2); // 2 -> 5, 6 -> 9
        let tally = t.tally(10, &[]);
        assert_eq!(tally.expected, 10);
        assert_eq!(tally.delivered, 7); // 0 1 2 4 5 6 9
        assert_eq!(tally.lost, 3); // 3 7 8
        assert!(!t.complete(10, &[]));
        // Events the publisher could not confirm are neither expected nor lost.
        let tally = t.tally(10, &[3, 9]);
        assert_eq!(tally.expected, 8);
        assert_eq!(tally.delivered, 6);
        assert_eq!(tally.lost, 2);
        assert_eq!(tally.unexpected, 1);
        assert_eq!(t.record(MAX_SEQ), Arrival::Foreign);
    }

    #[test]
    fn complete_stream_across_words() {
        let mut t = Tracker::new(200);
        for seq in 0..200 {
            assert_eq!(t.record(seq), Arrival::InOrder);
        }
        assert!(t.complete(200, &[]));
        assert_eq!(t.tally(200, &[]).lost, 0);
        assert_eq!(t.gaps, 0);
        assert!(!t.complete(201, &[]));
    }
}
