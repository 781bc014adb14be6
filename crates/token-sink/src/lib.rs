//! Writes auto-auth tokens where applications read them: the agent's file sinks.
//!
//! A [`SinkServer`] receives each new token through a `tokio::sync::watch` channel and writes
//! it to every configured [`Sink`], retrying failed writes until they succeed or a newer token
//! replaces them; [`WriteProgress`] tells the caller when every sink holds the current token
//! (`exit_after_auth`). A [`FileSink`] replaces its file atomically with an exact mode and
//! owner, so a reader or a crash never leaves anything but a whole token behind. A sink may
//! response-wrap the token through a [`Wrapper`] and/or encrypt it to a consumer's X25519 key
//! with a [`DhEncryptor`]. Tokens travel as [`SinkToken`], which never prints.
//!
//! This crate knows nothing about who produces tokens and does not talk to Vault: wrapping is
//! delegated to the [`Wrapper`] the binary provides. It is the only crate that writes tokens to
//! disk. It does not parse configuration and does not remove token files on exit.

mod dh;
mod file;
mod server;
mod token;
mod wrap;

pub use dh::{DhEncryptor, DhKeyUnreadable, EncryptFailed, RandomUnavailable};
pub use file::{DEFAULT_MODE, FileSink, FileSinkRejected, FileWriteFailed, WriteCheckFailed};
pub use server::{Sink, SinkServer, SinkServerStopped, SinkSetupFailed, WriteProgress};
pub use token::SinkToken;
pub use wrap::{DynWrapper, WrapFailed, Wrapper};
