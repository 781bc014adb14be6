//! Newtypes for the secrets that pass through the client.
//!
//! Each one wipes its memory when dropped, prints as `<redacted>` under `{:?}` and has no
//! `Display`, so a secret can only leave through an explicit `expose()`.

use std::fmt;

use serde::{Deserialize, Deserializer};
use zeroize::{Zeroize, Zeroizing};

/// A Vault token: a client token, a wrapping token or a batch token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Token(Zeroizing<String>);

impl Token {
    /// Wraps a token the caller already holds (read from a file, a header, ...).
    pub fn new(token: impl Into<String>) -> Self {
        Self(Zeroizing::new(token.into()))
    }

    /// The token itself, for a header or a file that must carry it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True for the empty string, which Vault never issues.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Token {
    fn from(token: String) -> Self {
        Self::new(token)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// Any other secret string: a secret_id, a password, a JSON document holding a token.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// Wraps a secret the caller holds.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// A JSON document that holds secrets, such as the response inside a wrapping token.
///
/// Every string in it is wiped when it is dropped.
pub struct SecretData(serde_json::Value);

impl SecretData {
    /// Wraps a secret document.
    pub fn new(value: serde_json::Value) -> Self {
        Self(value)
    }

    /// The document, to pick out the fields the caller needs.
    pub fn expose(&self) -> &serde_json::Value {
        &self.0
    }
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretData(<redacted>)")
    }
}

impl Drop for SecretData {
    fn drop(&mut self) {
        wipe_json(&mut self.0);
    }
}

/// Overwrites every string (keys included) of a JSON document with zeroes.
pub(crate) fn wipe_json(value: &mut serde_json::Value) {
    use serde_json::Value;

    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe_json),
        Value::Object(map) => {
            // Keys cannot be borrowed mutably inside a map, so take them out first.
            for (mut key, mut item) in std::mem::take(map) {
                key.zeroize();
                wipe_json(&mut item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(debug: String, secret: &str) {
        assert!(!debug.contains(secret), "{debug} shows the secret");
        assert!(
            debug.contains("redacted"),
            "{debug} does not say it is redacted"
        );
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let secret = "s.VerySecretTokenValue";
        check(format!("{:?}", Token::new(secret)), secret);
        check(format!("{:#?}", Token::new(secret)), secret);
        check(format!("{:?}", SecretValue::new(secret)), secret);
        check(format!("{:?}", Some(Token::new(secret))), secret);

        let data = SecretData::new(serde_json::json!({"data": {"secret_id": secret}}));
        check(format!("{data:?}"), secret);
    }

    #[test]
    fn token_deserializes_from_a_json_string() {
        let token: Token = serde_json::from_str("\"s.abc\"").unwrap();
        assert_eq!(token.expose(), "s.abc");

        let value: SecretValue = serde_json::from_str("\"xyz\"").unwrap();
        assert_eq!(value.expose(), "xyz");
    }

    #[test]
    fn wiping_json_blanks_every_string() {
        let mut value = serde_json::json!({"a": ["secret", {"b": "other"}], "n": 3});
        wipe_json(&mut value);

        let text = value.to_string();
        assert!(
            !text.contains("secret") && !text.contains("other"),
            "{text}"
        );
    }
}
