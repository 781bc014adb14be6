//! End-to-end tests against a real OpenBao dev server: one test binary, one module per
//! area. Run them through `cargo xtask e2e`, which starts the servers.

mod adversarial;
mod auto_auth;
mod binary;
mod cache;
mod client;
mod faults;
mod hvac;
mod listeners;
mod proxy;
mod sinks;
