//! What a reload cannot put in force: the settings read once at start-up. A reloaded
//! configuration gets the in-force values of those back (so `/admin/config` shows what
//! is in force), and the names of the fields whose change waits for a restart.

use serde::Serialize;
use serde_json::Value;

use crate::config::Config;

/// Puts `in_force`'s start-up-only settings back into `new` and returns the names of
/// those `new` wanted to change (`history.max_events`, `listeners[plain].address`, …).
///
/// Start-up only: the listeners (names, addresses, routes, TLS on or off; a TLS
/// listener's certificate and key files are reloaded), `history`, the channel rules'
/// history overrides (`channels[].max_*`; their access settings apply now),
/// `limits.max_channels` (the hub's), `drain.period` and `log` (the subscriber and the
/// connection-line budget are set up once).
pub fn keep_in_force(in_force: &Config, new: &mut Config) -> Vec<String> {
    let mut changed = Vec::new();
    keep_listeners(in_force, new, &mut changed);
    keep_section("history", &in_force.history, &mut new.history, &mut changed);
    keep_section("log", &in_force.log, &mut new.log, &mut changed);
    keep_field(
        "drain.period",
        &in_force.drain.period,
        &mut new.drain.period,
        &mut changed,
    );
    keep_field(
        "limits.max_channels",
        &in_force.limits.max_channels,
        &mut new.limits.max_channels,
        &mut changed,
    );
    keep_history_overrides(in_force, new, &mut changed);
    changed
}

/// Restores `in_force` into `new` when they differ, naming each differing field (the
/// section's keys, or the section itself when it is not an object).
fn keep_section<T: Serialize + Clone + PartialEq>(
    name: &str,
    in_force: &T,
    new: &mut T,
    changed: &mut Vec<String>,
) {
    if in_force == new {
        return;
    }
    match (serde_json::to_value(in_force), serde_json::to_value(&*new)) {
        (Ok(Value::Object(a)), Ok(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                if a.get(key) != b.get(key) {
                    changed.push(format!("{name}.{key}"));
                }
            }
        }
        _ => changed.push(name.to_string()),
    }
    *new = in_force.clone();
}

/// Restores one field's in-force value into `new`, naming it when they differ.
fn keep_field<T: Clone + PartialEq>(
    name: &str,
    in_force: &T,
    new: &mut T,
    changed: &mut Vec<String>,
) {
    if in_force != new {
        changed.push(name.to_string());
        *new = in_force.clone();
    }
}

/// The listeners stay as bound; a TLS listener of the same name takes the new
/// certificate and key files.
fn keep_listeners(in_force: &Config, new: &mut Config, changed: &mut Vec<String>) {
    let mut kept = in_force.listeners.clone();
    for old in &mut kept {
        let Some(wanted) = new.listeners.iter().find(|l| l.name == old.name) else {
            changed.push(format!("listeners[{}] (removed)", old.name));
            continue;
        };
        if wanted.address != old.address {
            changed.push(format!("listeners[{}].address", old.name));
        }
        if wanted.routes != old.routes {
            changed.push(format!("listeners[{}].routes", old.name));
        }
        match (&mut old.tls, &wanted.tls) {
            (Some(tls), Some(wanted_tls)) => *tls = wanted_tls.clone(),
            (None, None) => {}
            _ => changed.push(format!("listeners[{}].tls", old.name)),
        }
    }
    for wanted in &new.listeners {
        if !in_force.listeners.iter().any(|l| l.name == wanted.name) {
            changed.push(format!("listeners[{}] (added)", wanted.name));
        }
    }
    new.listeners = kept;
}

/// The channel rules' history overrides stay those of start-up: a rule keeps the
/// overrides of the start-up rule with the same pattern (none when there was none).
fn keep_history_overrides(in_force: &Config, new: &mut Config, changed: &mut Vec<String>) {
    for rule in &mut new.channels {
        let old = in_force.channels.iter().find(|r| r.pattern == rule.pattern);
        let (events, age, bytes) = old.map_or((None, None, None), |r| {
            (r.max_events, r.max_age, r.max_bytes)
        });
        let mut keep = |field: &str, differs: bool| {
            if differs {
                changed.push(format!("channels[{}].{field}", rule.pattern));
            }
        };
        keep("max_events", rule.max_events != events);
        keep("max_age", rule.max_age != age);
        keep("max_bytes", rule.max_bytes != bytes);
        rule.max_events = events;
        rule.max_age = age;
        rule.max_bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChannelRule;

    #[test]
    fn start_up_only_settings_stay_and_are_named() {
        let in_force = Config::default();
        let mut new = Config::default();
        new.history.max_events = 7;
        new.limits.max_channels = 5;
        new.drain.period = std::time::Duration::from_secs(1);
        new.limits.max_body_bytes = 10; // reloadable
        new.listeners[0].address = "127.0.0.1:9999".parse().unwrap();
        let mut rule = ChannelRule::new("chat:*");
        rule.max_events = Some(3);
        new.channels.push(rule);
        let changed = keep_in_force(&in_force, &mut new);
        assert_eq!(new.history, in_force.history);
        assert_eq!(new.limits.max_channels, in_force.limits.max_channels);
        assert_eq!(new.limits.max_body_bytes, 10);
        assert_eq!(new.listeners, in_force.listeners);
        assert_eq!(new.channels.last().unwrap().max_events, None);
        for name in [
            "history.max_events",
            "limits.max_channels",
            "drain.period",
            "listeners[plain].address",
            "channels[chat:*].max_events",
        ] {
            assert!(changed.iter().any(|c| c == name), "{name} in {changed:?}");
        }
        let mut same = Config::default();
        assert!(keep_in_force(&in_force, &mut same).is_empty());
    }
}
