//! The agent's local Vault API: listeners that forward every request to Vault, answer from the
//! lease cache what it holds, and serve the agent's own endpoints.
//!
//! Main types: [`ListenerSettings`] (one `listener` block, plain values), [`Listener::bind`]
//! and [`BoundListener::serve`] (TCP with optional reloadable TLS via [`TlsReloader`], or a
//! Unix socket whose permissions are set before it is reachable), [`router`] (the routes of
//! one listener, a [`Routes`] service usable without a socket), [`ProxyState`] (the Vault
//! client, the optional [`LeaseCache`](lease_cache::LeaseCache), the [`AutoAuthSlot`] and the
//! [`Metrics`] shared by all listeners), and [`QuitSignal`].
//!
//! Request rules, in order:
//! - A path with a `.` or `..` segment, written plainly or percent-encoded, is refused with 400
//!   and not forwarded. Any other path is put in the form Vault acts on (escaped `/` and
//!   unreserved characters decoded, runs of `/` made one), so that every rule below reads
//!   the route Vault will run; nothing else about a path is changed or refused.
//! - A body over the listener's `max_request_size` gets 413 and is not forwarded; what the
//!   client is still sending is read and dropped first (2 s at most), so that it reads the 413
//!   rather than a reset. A client waiting for `100 Continue` gets the 413 at once. A body
//!   not all sent within 30 s (Vault Agent's time for a whole request) gets 408 and is not
//!   forwarded.
//! - Hop-by-hop headers (and those named in `Connection`) and `Host` are dropped; method
//!   (`LIST` included), the path so put, and the query go byte for byte.
//! - Token: the client's `X-Vault-Token`; with [`UseAutoAuthToken::Enabled`] the auto-auth
//!   token when the client sent none or an empty one; with [`UseAutoAuthToken::Force`] always
//!   the auto-auth token. Before the first login there is no auto-auth token to use.
//! - Namespace: the client's `X-Vault-Namespace` goes untouched. Without one, the agent's
//!   namespace is added as the header unless the path already starts with it
//!   (`/v1/<namespace>/...`): a namespace is given once, never both ways.
//! - Answers stream back with their status and headers, hop-by-hop ones dropped. With a cache,
//!   a success carries `X-Cache: MISS` (`HIT` and `Age` when served from the cache); without
//!   one, no `X-Cache` at all. A lookup or renewal of the auto-auth token itself comes back
//!   without the token and its accessor, so that local callers cannot learn it.
//! - Vault unreachable: 502 with Vault's error shape, naming Vault's address.
//!
//! What the crate deliberately does not do: read the configuration file (the binary turns it
//! into these settings), log in or renew (auto-auth fills the [`AutoAuthSlot`]), run the
//! cache's renewals (the binary runs the cache's scheduler), or retry on its own (the Vault
//! client's policy applies, except that `sys/health` is never retried, so that a standby's or
//! a sealed node's status reaches the caller at once).

mod body;
mod error;
mod metrics;
mod paths;
mod proxy;
mod router;
mod server;
mod settings;
#[cfg(test)]
mod testing;
mod tls;
mod token;
mod unix;

pub use crate::metrics::{Metrics, MetricsSettings};
pub use crate::proxy::{DEFAULT_MAX_CACHED_RESPONSE, InvalidNamespace, ProxySettings, ProxyState};
pub use crate::router::{CACHE_CLEAR_PATH, METRICS_PATH, QUIT_PATH, QuitSignal, Routes, router};
pub use crate::server::{BindError, BoundListener, Listener};
pub use crate::settings::{
    DEFAULT_MAX_REQUEST_SIZE, ListenerKind, ListenerRole, ListenerSettings, ServeTimeouts,
    TlsSettings, TlsVersion, UseAutoAuthToken,
};
pub use crate::tls::{TlsError, TlsReloader};
pub use crate::token::{AutoAuthSlot, UnusableToken};
pub use tokio_util::sync::CancellationToken;
