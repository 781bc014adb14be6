//! A thin async client for the Vault (and OpenBao) HTTP API.
