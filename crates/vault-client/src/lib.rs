//! A thin async client for the Vault (and OpenBao) HTTP API, as the agent uses it.
//!
//! A [`Client`] is built from plain [`ClientSettings`] (address, TLS files, namespace,
//! timeout, [`RetryPolicy`]) and offers two kinds of calls: typed ones for the few
//! endpoints the agent itself needs (login, token lookup and renewal, lease renewal,
//! response wrapping, health), which return small structs such as [`AuthInfo`] and
//! [`TokenInfo`]; and [`Client::forward`], which relays a client's request verbatim and
//! streams the answer back as a [`ForwardBody`], for the caching proxy. Both retry like
//! Vault's own client. Typed calls go through reqwest; forwarding, the proxy's hot path,
//! goes straight to hyper's connection pool (unless a proxy from the environment applies);
//! both use one rustls configuration. Tokens are [`Token`]s, which never print; failures are a
//! [`BuildError`] or a [`RequestError`], neither of which ever holds a secret.
//!
//! The crate deliberately knows nothing of the configuration file, of when to log in or
//! renew (that is auto-auth's and the lease cache's business), of caching, or of any
//! secrets engine's paths beyond the token, lease, wrapping and health endpoints.

mod client;
mod error;
mod forward;
mod relay;
mod retry;
mod secret;
mod settings;
mod transport;
mod types;

pub use bytes;
pub use http;

pub use crate::client::{Client, NAMESPACE_HEADER, TOKEN_HEADER, WRAP_TTL_HEADER};
pub use crate::error::{BoxError, BuildError, RequestError};
pub use crate::forward::{ForwardBody, ForwardBodyError};
pub use crate::secret::{SecretData, SecretValue, Token};
pub use crate::settings::{ClientSettings, RetryPolicy};
pub use crate::types::{
    AuthInfo, Health, LeaseInfo, LoginResponse, TokenInfo, WrapInfo, WrapLookup,
};
