//! End-to-end tests against a real OpenBao dev server: one test binary, one module per
//! area. Run them through `cargo xtask e2e`, which starts the servers.

mod auto_auth;
mod binary;
mod client;
mod faults;
mod sinks;
