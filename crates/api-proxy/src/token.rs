//! The auto-auth token as the proxy sees it: a slot the binary fills after each login.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use parking_lot::RwLock;
use vault_client::Token;

/// The current auto-auth token, shared between auto-auth (which writes it) and every
/// listener (which read it once per request that needs it).
///
/// Cloning shares the slot. A read takes a read lock for the time of an `Arc` clone.
#[derive(Clone, Default)]
pub struct AutoAuthSlot {
    current: Arc<RwLock<Option<Arc<AutoAuthToken>>>>,
}

/// A token ready to go into a request, kept with its header form so that no request
/// converts it again.
pub(crate) struct AutoAuthToken {
    token: Token,
    header: HeaderValue,
}

/// A token with characters an HTTP header cannot carry; the token itself is not kept.
#[derive(Debug, thiserror::Error)]
#[error("the auto-auth token has characters an HTTP header cannot carry")]
pub struct UnusableToken;

impl AutoAuthSlot {
    /// An empty slot: until [`AutoAuthSlot::set`], requests go without the auto-auth token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `token` the one requests are sent with from now on.
    pub fn set(&self, token: Token) -> Result<(), UnusableToken> {
        let mut header = HeaderValue::from_str(token.expose()).map_err(|_| UnusableToken)?;
        header.set_sensitive(true);

        let next = Arc::new(AutoAuthToken { token, header });
        *self.current.write() = Some(next);
        Ok(())
    }

    /// Forgets the token (auto-auth lost it); requests go without it until the next `set`.
    pub fn clear(&self) {
        *self.current.write() = None;
    }

    /// Whether a token is in the slot.
    pub fn is_set(&self) -> bool {
        self.current.read().is_some()
    }

    pub(crate) fn current(&self) -> Option<Arc<AutoAuthToken>> {
        self.current.read().clone()
    }
}

impl AutoAuthToken {
    pub(crate) fn expose(&self) -> &str {
        self.token.expose()
    }

    pub(crate) fn header(&self) -> &HeaderValue {
        &self.header
    }
}

impl fmt::Debug for AutoAuthSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoAuthSlot")
            .field("set", &self.is_set())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let slot = AutoAuthSlot::new();
        slot.set(Token::new("hvs.slot-secret")).unwrap();

        let current = slot.current().unwrap();
        let shown = format!("{slot:?} {:?} {:?}", current.header(), current.token);
        assert!(!shown.contains("slot-secret"), "{shown}");
        assert!(current.header().is_sensitive());
    }

    #[test]
    fn set_replace_and_clear() {
        let slot = AutoAuthSlot::new();
        assert!(slot.current().is_none());

        slot.set(Token::new("s.one")).unwrap();
        let shared = slot.clone();
        shared.set(Token::new("s.two")).unwrap();
        assert_eq!(slot.current().unwrap().expose(), "s.two");

        slot.clear();
        assert!(!shared.is_set());
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_refused_without_showing_it() {
        let slot = AutoAuthSlot::new();
        let error = slot.set(Token::new("s.bad\nvalue")).unwrap_err();

        assert!(!format!("{error} {error:?}").contains("bad"));
        assert!(!slot.is_set());
    }
}
