//! Writes tokens where the application can read them.
