//! Logs in to Vault on the application's behalf and keeps the token alive.
