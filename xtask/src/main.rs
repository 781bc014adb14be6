//! Project automation: `cargo xtask ci|e2e|demo|dev-vault|tidy|bench`.

fn main() {}
