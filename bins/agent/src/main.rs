//! `vault-agent`: the thin binary that composes the agent's crates.

mod cli;
mod logging;

fn main() {}
