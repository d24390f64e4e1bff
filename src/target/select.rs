//! Choosing one wheel per locked package for a target, offline, from the lock only.
//! (Stub: to be implemented.)
