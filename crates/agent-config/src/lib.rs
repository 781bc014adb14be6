//! Loads, merges and validates Vault Agent configuration files (HCL v1 and JSON).
