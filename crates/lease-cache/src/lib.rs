//! The lease cache: entries, indexes, the renewal schedule and eviction.
