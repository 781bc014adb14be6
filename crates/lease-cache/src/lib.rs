//! The lease cache behind the agent's API proxy: it answers repeated token- and
//! lease-creating requests from memory, keeps what it handed out renewed on one shared
//! schedule, and forgets it when Vault says it is gone.
//!
//! Main types: [`LeaseCache`] (entries, indexes, the schedule; cheap to clone),
//! [`RequestParts`]/[`CacheKey`] (a normalised request identity), [`Lookup`] and
//! [`FillGuard`] (one upstream call for a burst of identical requests), [`Renewer`] (how a
//! renewal reaches Vault), [`Revocation`] and [`ClearRequest`] (what to forget).
//!
//! What is cached: a `200 application/json` response that created a renewable token
//! (`auth.client_token`, `auth.renewable`) or a renewable lease (`lease_id`, `renewable`), to a
//! request made with a token the cache manages: the registered auto-auth token, or a token the
//! cache itself stored. A token created under a managed token becomes its child; an orphan
//! token stands on its own. When an entry goes, everything created under it goes too.
//!
//! What it deliberately does not do: network I/O (renewals go through [`Renewer`], which the
//! binary implements), HTTP serving (the proxy adds `X-Cache` and `Age`), persistence, and
//! caching logins, renewals, lookups, revocations, wrapping calls or wrapped responses.

mod cache;
mod clear;
pub mod key;
mod lifetime;
mod paths;
mod renew;
mod response;
mod secret;
mod state;

pub use cache::{
    CacheSettings, CacheStats, FillGuard, LeaseCache, Lookup, NotCached, StoreOutcome,
};
pub use clear::{ClearError, ClearRequest, parse_clear_request};
pub use key::{CacheKey, RequestParts, cache_key};
pub use paths::{ROOT_NAMESPACE, Revocation, classify_revocation};
pub use renew::{Renewal, Renewer};
pub use response::{CachedResponse, ResponseParts};
pub use secret::SecretToken;

#[cfg(test)]
mod tests;
