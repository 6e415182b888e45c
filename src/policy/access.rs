//! Who may subscribe to and publish on which channel: the channel rules of the config
//! applied to a token's claims.
//!
//! Subscribing to a channel whose rule (or `auth.default_subscribe`) is `token` needs a
//! valid token that either binds the rule's `{sub}` to its subject (`user:{sub}` and
//! subject `42` open `user:42`) or carries a grant in `ssegate.subscribe` that matches
//! the channel (grants open private channels too; `{sub}` works in grants as well).
//! Publishing needs a static publish key or a token whose `ssegate.publish` grants
//! match every target channel; a rule with `publish: false` closes a channel to all
//! publishers.

use crate::config::{Access, ChannelRule, Config};
use crate::model::channel_name::{pattern_matches_any_subject, pattern_matches_subject};
use crate::model::error::ApiError;
use crate::model::reasons::AuthFailure;
use crate::policy::jwt::Claims;

/// Why access was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The channel needs a token and none came (401).
    TokenNeeded(String),
    /// The token does not open the channel (403).
    NotGranted(String),
    /// No publisher may target the channel (403).
    PublishClosed(String),
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> ApiError {
        match d {
            Denied::TokenNeeded(ch) => ApiError::auth(
                AuthFailure::TokenMissing,
                format!("channel {ch:?} needs a token"),
            ),
            Denied::NotGranted(ch) => ApiError::auth(
                AuthFailure::ChannelForbidden,
                format!("the token does not grant {ch:?}"),
            ),
            Denied::PublishClosed(ch) => ApiError::auth(
                AuthFailure::PublishForbidden,
                format!("no publisher may target {ch:?}"),
            ),
        }
    }
}

/// The first rule of `rules` whose pattern matches `channel` (`{sub}` as a wildcard:
/// which rule applies does not depend on who asks; whether it opens the channel does).
pub fn rule_for<'a>(rules: &'a [ChannelRule], channel: &str) -> Option<&'a ChannelRule> {
    rules
        .iter()
        .find(|r| pattern_matches_any_subject(&r.pattern, channel))
}

fn granted(grants: &[String], claims: &Claims, channel: &str) -> bool {
    grants
        .iter()
        .any(|g| pattern_matches_subject(g, channel, claims.subject.as_deref()))
}

/// Checks a subscription to `channel` with the claims of the subscriber's token.
pub fn may_subscribe(
    config: &Config,
    claims: Option<&Claims>,
    channel: &str,
) -> Result<(), Denied> {
    let rule = rule_for(&config.channels, channel);
    let access = rule.map_or(config.auth.default_subscribe, |r| r.subscribe);
    if access == Access::Public {
        return Ok(());
    }
    let Some(claims) = claims else {
        return Err(Denied::TokenNeeded(channel.to_string()));
    };
    let bound = rule.is_some_and(|r| {
        r.pattern.contains(crate::model::channel_name::SUBJECT)
            && pattern_matches_subject(&r.pattern, channel, claims.subject.as_deref())
    });
    if bound || granted(&claims.subscribe, claims, channel) {
        Ok(())
    } else {
        Err(Denied::NotGranted(channel.to_string()))
    }
}

/// Checks a publish to `channel`; `claims` is `None` for a static publish key.
pub fn may_publish(config: &Config, claims: Option<&Claims>, channel: &str) -> Result<(), Denied> {
    if rule_for(&config.channels, channel).is_some_and(|r| !r.publish) {
        return Err(Denied::PublishClosed(channel.to_string()));
    }
    match claims {
        None => Ok(()),
        Some(c) if granted(&c.publish, c, channel) => Ok(()),
        Some(_) => Err(Denied::NotGranted(channel.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, subscribe: &[&str], publish: &[&str]) -> Claims {
        Claims {
            subject: Some(sub.into()),
            expires_at: u64::MAX,
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
            publish: publish.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn config() -> Config {
        let mut c = Config::default(); // user:{sub} is private
        c.channels.push(ChannelRule {
            subscribe: Access::Token,
            ..ChannelRule::new("workspace:*")
        });
        c.channels.push(ChannelRule {
            publish: false,
            ..ChannelRule::new("system:*")
        });
        c
    }

    #[test]
    fn first_matching_rule_wins() {
        let rules = vec![
            ChannelRule::new("chat:*"),
            ChannelRule::new("user:{sub}"),
            ChannelRule::new("*"),
        ];
        let pattern = |channel| rule_for(&rules, channel).map(|r| r.pattern.as_str());
        assert_eq!(pattern("chat:1"), Some("chat:*"));
        assert_eq!(
            pattern("user:42"),
            Some("user:{sub}"),
            "{{sub}} as a wildcard"
        );
        assert_eq!(pattern("news"), Some("*"));
        assert_eq!(rule_for(&rules[..1], "news"), None);
    }

    #[test]
    fn subscribe_rules() {
        let c = config();
        let u42 = claims("42", &[], &[]);
        assert_eq!(may_subscribe(&c, None, "public:news"), Ok(()));
        assert!(matches!(
            may_subscribe(&c, None, "user:42"),
            Err(Denied::TokenNeeded(_))
        ));
        assert_eq!(may_subscribe(&c, Some(&u42), "user:42"), Ok(()));
        assert!(matches!(
            may_subscribe(&c, Some(&u42), "user:7"),
            Err(Denied::NotGranted(_))
        ));
        assert!(matches!(
            may_subscribe(&c, Some(&u42), "workspace:1"),
            Err(Denied::NotGranted(_))
        ));
        let member = claims("42", &["workspace:1", "user:7"], &[]);
        assert_eq!(may_subscribe(&c, Some(&member), "workspace:1"), Ok(()));
        assert_eq!(
            may_subscribe(&c, Some(&member), "user:7"),
            Ok(()),
            "grants open private channels"
        );
        assert!(may_subscribe(&c, Some(&member), "workspace:2").is_err());
    }

    #[test]
    fn publish_rules() {
        let c = config();
        assert_eq!(may_publish(&c, None, "chat:1"), Ok(()));
        assert!(matches!(
            may_publish(&c, None, "system:x"),
            Err(Denied::PublishClosed(_))
        ));
        let chat = claims("bot", &[], &["chat:*"]);
        assert_eq!(may_publish(&c, Some(&chat), "chat:9"), Ok(()));
        assert!(matches!(
            may_publish(&c, Some(&chat), "user:7"),
            Err(Denied::NotGranted(_))
        ));
    }
}
