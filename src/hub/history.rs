//! How much history each channel keeps: the hub's own bounds, filled in by start-up from
//! the configuration (the hub reads no config).

use std::time::Duration;

use crate::model::channel_name;

/// The effective history bounds of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryBounds {
    /// Events kept.
    pub max_events: usize,
    /// Age limit.
    pub max_age: Duration,
    /// Byte limit (of the payloads held).
    pub max_bytes: usize,
}

/// What one channel pattern changes of the default bounds; `None` keeps the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryOverride {
    /// The channel-name pattern (`chat:*`; `{sub}` matches like `*` here, since history
    /// belongs to the channel, not to a subscriber).
    pub pattern: String,
    /// Events kept.
    pub max_events: Option<usize>,
    /// Age limit.
    pub max_age: Option<Duration>,
    /// Byte limit.
    pub max_bytes: Option<usize>,
}

/// History bounds for every channel: the defaults under the first matching override,
/// and the gateway-wide budget over all channels.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPolicy {
    /// The bounds of a channel no override matches.
    pub defaults: HistoryBounds,
    /// Per-pattern overrides, the first match wins.
    pub overrides: Vec<HistoryOverride>,
    /// Bytes all channels hold together; the oldest are evicted past it.
    pub max_total_bytes: usize,
    /// The fraction of `max_total_bytes` one publisher may hold before its own oldest
    /// events are the first evicted.
    pub publisher_share: f64,
}

impl HistoryPolicy {
    /// The same bounds for every channel.
    pub fn uniform(defaults: HistoryBounds) -> HistoryPolicy {
        HistoryPolicy {
            defaults,
            overrides: Vec::new(),
            max_total_bytes: usize::MAX,
            publisher_share: 1.0,
        }
    }

    /// The bounds for a channel: its override's values over the defaults.
    pub fn bounds_for(&self, channel: &str) -> HistoryBounds {
        let rule = self
            .overrides
            .iter()
            .find(|o| channel_name::pattern_matches_any_subject(&o.pattern, channel));
        HistoryBounds {
            max_events: rule
                .and_then(|r| r.max_events)
                .unwrap_or(self.defaults.max_events),
            max_age: rule
                .and_then(|r| r.max_age)
                .unwrap_or(self.defaults.max_age),
            max_bytes: rule
                .and_then(|r| r.max_bytes)
                .unwrap_or(self.defaults.max_bytes),
        }
    }
}

impl From<HistoryBounds> for HistoryPolicy {
    fn from(defaults: HistoryBounds) -> HistoryPolicy {
        HistoryPolicy::uniform(defaults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_override_wins_field_by_field() {
        let defaults = HistoryBounds {
            max_events: 100,
            max_age: Duration::from_secs(600),
            max_bytes: 1 << 20,
        };
        let policy = HistoryPolicy {
            defaults,
            overrides: vec![
                HistoryOverride {
                    pattern: "typing:*".into(),
                    max_events: Some(1),
                    max_age: None,
                    max_bytes: None,
                },
                HistoryOverride {
                    pattern: "*".into(),
                    max_events: Some(5),
                    max_age: Some(Duration::from_secs(1)),
                    max_bytes: None,
                },
            ],
            max_total_bytes: usize::MAX,
            publisher_share: 1.0,
        };
        let typing = policy.bounds_for("typing:c1");
        assert_eq!(typing.max_events, 1);
        assert_eq!(typing.max_age, defaults.max_age);
        let other = policy.bounds_for("chat");
        assert_eq!(other.max_events, 5);
        assert_eq!(other.max_age, Duration::from_secs(1));
        assert_eq!(other.max_bytes, defaults.max_bytes);
        assert_eq!(HistoryPolicy::uniform(defaults).bounds_for("x"), defaults);
    }
}
