//! Concurrent, verified downloads of locked wheels into the cache.
//! (Stub: to be implemented.)
