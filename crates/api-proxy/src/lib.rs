//! The local Vault API listener: forwarding, caching and the agent endpoints.
