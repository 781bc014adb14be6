//! The one secret type of the crate: a Vault token.

use std::fmt;

use zeroize::Zeroize;

/// A Vault token (`X-Vault-Token`, `auth.client_token`).
///
/// The bytes are wiped when the value is dropped, `Debug` prints a placeholder, and there is
/// no `Display`: reading the token takes an explicit [`SecretToken::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(Box<str>);

impl SecretToken {
    /// Copies `token` into a new secret; the caller keeps (and should wipe) its own copy.
    pub fn new(token: &str) -> Self {
        Self(Box::from(token))
    }

    /// The token text, for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the token is the empty string (Vault's "no token").
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretToken {
    /// Takes the string without copying when it has no spare capacity; otherwise copies it
    /// and wipes the original, so no unwiped copy is left behind.
    fn from(mut token: String) -> Self {
        if token.len() == token.capacity() {
            return Self(token.into_boxed_str());
        }
        let secret = Self::new(&token);
        token.zeroize();
        secret
    }
}

impl Drop for SecretToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let token = SecretToken::new("hvs.very-secret-token");
        let shown = format!("{token:?} {:?}", Some(&token));

        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn from_string_keeps_the_text() {
        let mut spare = String::with_capacity(64);
        spare.push_str("s.abc");

        assert_eq!(SecretToken::from(spare).expose(), "s.abc");
        assert_eq!(SecretToken::from("s.def".to_owned()).expose(), "s.def");
    }
}
