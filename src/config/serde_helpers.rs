//! Serde helpers of the config: durations written as text (`250ms`, `25s`, `10m`).

/// Durations written as text: `250ms`, `25s`, `10m`, `1h` (a bare number is seconds).
pub mod duration_text {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Parses `250ms`, `25s`, `10m`, `1h`, `2d` or a bare number of seconds.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let n: f64 = number
            .parse()
            .map_err(|_| format!("'{text}' is not a duration like 500ms, 25s, 10m or 1h"))?;
        let scale = match unit.trim() {
            "ms" => 0.001,
            "" | "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            other => return Err(format!("'{other}' is not a duration unit (ms, s, m, h, d)")),
        };
        let secs = n * scale;
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(format!("'{text}' is out of range"));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    /// Writes the shortest exact form.
    pub fn format(d: Duration) -> String {
        let ms = d.as_millis();
        if ms % 1000 != 0 {
            format!("{ms}ms")
        } else if ms % 3_600_000 == 0 && ms > 0 {
            format!("{}h", ms / 3_600_000)
        } else if ms % 60_000 == 0 && ms > 0 {
            format!("{}m", ms / 60_000)
        } else {
            format!("{}s", ms / 1000)
        }
    }

    /// serde: writes a duration as text.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    /// serde: reads a duration from text or a number of seconds. A visitor, not an
    /// untagged enum: the enum buffers the value first, and its error then carries the
    /// position of the enclosing section instead of the duration's own line.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration like 500ms, 25s, 10m or 1h, or a number of seconds")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            parse(s).map_err(E::custom)
        }

        fn visit_f64<E: de::Error>(self, n: f64) -> Result<Duration, E> {
            parse(&n.to_string()).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
            parse(&n.to_string()).map_err(E::custom)
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
            parse(&n.to_string()).map_err(E::custom)
        }
    }
}

/// Optional durations written as text (see [`duration_text`]).
pub mod optional_duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::duration_text;

    /// serde: writes an optional duration as text or null.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&duration_text::format(*d)),
            None => s.serialize_none(),
        }
    }

    /// serde: reads an optional duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "duration_text")] Duration);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(
            duration_text::parse("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(duration_text::parse("25s"), Ok(Duration::from_secs(25)));
        assert_eq!(duration_text::parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(duration_text::parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration_text::parse("3"), Ok(Duration::from_secs(3)));
        assert!(duration_text::parse("3 weeks").is_err());
        assert!(duration_text::parse("-1s").is_err());
        assert_eq!(duration_text::format(Duration::from_secs(600)), "10m");
        assert_eq!(duration_text::format(Duration::from_millis(1500)), "1500ms");
    }
}
