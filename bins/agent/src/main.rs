//! `vault-agent`: the thin binary that composes the agent's crates.

fn main() {}
