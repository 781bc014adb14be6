//! The token value handed to sinks.

use std::fmt;

use zeroize::Zeroizing;

/// A token (or a wrapped-response JSON standing in for one) on its way to a sink.
///
/// The memory is wiped on drop, `Debug` prints a placeholder and there is no `Display`, so the
/// value cannot end up in a log line or an error message by accident. Read it with
/// [`SinkToken::expose_secret`] only where it is written out.
#[derive(Clone)]
pub struct SinkToken(Zeroizing<String>);

impl SinkToken {
    /// Takes ownership of a token value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The raw value; keep the borrow short and never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl From<String> for SinkToken {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for SinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SinkToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str) {
        let token = SinkToken::new(value);

        for rendered in [
            format!("{token:?}"),
            format!("{token:#?}"),
            format!("{:?}", Some(&token)),
        ] {
            assert!(!rendered.contains(value), "{rendered} shows the token");
            assert!(
                rendered.contains("redacted"),
                "{rendered} does not say it is redacted"
            );
        }
        assert_eq!(token.expose_secret(), value);
    }

    #[test]
    fn debug_never_shows_the_token() {
        check("hvs.CAESIJ7secret");
        check("s.c0fRVsecretsecret");
        check(r#"{"token":"hvs.wrapped","accessor":"acc"}"#);
    }
}
