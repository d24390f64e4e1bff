//! Deterministic layer tars, their compression and digests, and the layer planner.
//! (Stub: to be implemented.)
