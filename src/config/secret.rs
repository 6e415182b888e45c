//! `Secret`: a config value that must never be shown — masked whenever it is
//! serialized (`/admin/config`) or debug-printed (logs), by its type.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What replaces a secret wherever the config is shown.
pub const MASK: &str = "********";

/// A secret written in the config (a key, a shared JWT secret, a development default).
///
/// Every secret-bearing config field has this type, so showing the config cannot
/// forget one: `Serialize` writes [`MASK`] and `Debug` does too. Only
/// [`Secret::expose`] gives the text, for the code that checks keys and tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself: only for verifying keys and tokens, never for showing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_text_and_shows_as_the_mask() {
        let s: Secret = serde_yaml::from_str("hunter2-hunter2").unwrap();
        assert_eq!(s.expose(), "hunter2-hunter2");
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{MASK}\""));
        assert_eq!(format!("{s:?}"), MASK);
        assert_eq!(format!("{:?}", Some(s)), format!("Some({MASK})"));
    }
}
