//! The `channels` section: rules by channel pattern for access, publishing and history.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_helpers::optional_duration_text;
use super::ConfigError;
use crate::model::channel_name;

/// Who may subscribe to a channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone who can reach the gateway.
    #[default]
    Public,
    /// Only a client with a valid token that grants the channel.
    Token,
}

/// A rule for the channels whose name matches `pattern`; the first matching rule of
/// `channels` applies, for access and history alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRule {
    /// A channel-name pattern: channel characters, `*` (any run of characters) and
    /// `{sub}`, which for a subscriber stands for its token's subject: `user:{sub}`
    /// lets the holder of a token with subject `42` read `user:42`.
    pub pattern: String,
    /// `public`, or `token`: subscribing needs a token whose subject binds `{sub}` in
    /// the pattern, or whose `ssegate.subscribe` grants name the channel.
    #[serde(default)]
    pub subscribe: Access,
    /// Whether publishers may target matching channels at all.
    #[serde(default = "yes")]
    pub publish: bool,
    /// Events kept per matching channel; absent keeps `history.max_events`.
    #[serde(default)]
    pub max_events: Option<usize>,
    /// Age limit for matching channels; absent keeps `history.max_age`.
    #[serde(default, with = "optional_duration_text")]
    pub max_age: Option<Duration>,
    /// Byte limit for matching channels; absent keeps `history.max_bytes`.
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

fn yes() -> bool {
    true
}

impl ChannelRule {
    /// A rule for `pattern` with every other field at its default.
    pub fn new(pattern: &str) -> ChannelRule {
        ChannelRule {
            pattern: pattern.to_string(),
            subscribe: Access::Public,
            publish: true,
            max_events: None,
            max_age: None,
            max_bytes: None,
        }
    }
}

/// Checks the channel rules: history overrides keep at least one event and one byte,
/// and every pattern is a channel pattern.
pub(crate) fn validate_channels(rules: &[ChannelRule]) -> Result<(), ConfigError> {
    if rules
        .iter()
        .any(|r| r.max_events == Some(0) || r.max_bytes == Some(0))
    {
        return Err(ConfigError::new(
            "channels: max_events and max_bytes must be at least 1",
        ));
    }
    for r in rules {
        if !channel_name::is_valid_pattern(&r.pattern) {
            return Err(ConfigError::new(format!(
                "channels: '{}' is not a channel pattern (channel characters, `*`, `{{sub}}`)",
                r.pattern
            )));
        }
    }
    Ok(())
}
