//! Response wrapping, which needs Vault and is therefore done by whoever owns a client.

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::SinkToken;

/// Wraps a token for a sink with `wrap_ttl`; implemented by the binary with its Vault client.
///
/// The result is the wrap-info JSON the sink writes in place of the token, with the fields
/// `token`, `accessor`, `ttl`, `creation_time`, `creation_path` and `wrapped_accessor`. It is
/// called again on every write attempt, so each retry writes a fresh wrapping token.
pub trait Wrapper: Send + Sync {
    /// Wraps `token` for `ttl`, authenticating with `token` itself.
    fn wrap(
        &self,
        token: &SinkToken,
        ttl: Duration,
    ) -> impl Future<Output = Result<SinkToken, WrapFailed>> + Send;
}

/// The object-safe form of [`Wrapper`], so the sink server can hold any wrapper behind an `Arc`.
///
/// Every `Wrapper` implements it; there is no reason to implement it by hand.
pub trait DynWrapper: Send + Sync {
    /// [`Wrapper::wrap`] with the future boxed.
    fn wrap_boxed<'a>(
        &'a self,
        token: &'a SinkToken,
        ttl: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<SinkToken, WrapFailed>> + Send + 'a>>;
}

impl<W: Wrapper> DynWrapper for W {
    fn wrap_boxed<'a>(
        &'a self,
        token: &'a SinkToken,
        ttl: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<SinkToken, WrapFailed>> + Send + 'a>> {
        Box::pin(self.wrap(token, ttl))
    }
}

/// Wrapping failed; the cause comes from the wrapper and must not contain the token.
#[derive(Debug, thiserror::Error)]
#[error("wrapping the token failed")]
pub struct WrapFailed {
    #[source]
    source: Box<dyn Error + Send + Sync>,
}

impl WrapFailed {
    /// Wraps the underlying cause (typically the Vault client's error).
    pub fn new(source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self {
            source: source.into(),
        }
    }
}
