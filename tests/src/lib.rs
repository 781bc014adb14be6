//! End-to-end tests: the real agent against a real OpenBao dev server.
