//! A string that must never reach a log line, an error message or a config dump.

use std::fmt;

use zeroize::Zeroizing;

/// A secret value from the configuration (a method credential, a sink's AAD).
///
/// `Debug` prints `<redacted>` and there is no `Display`; the bytes are wiped on drop. Read the
/// value with [`Secret::expose`] only where it is handed to the code that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(value.into()))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("s.very-secret-token");
        let shown = format!("{secret:?} {:?}", Some(&secret));

        assert!(!shown.contains("very-secret"), "{shown}");
        assert_eq!(secret.expose(), "s.very-secret-token");
    }
}
