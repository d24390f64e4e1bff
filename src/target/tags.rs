//! Ordered wheel-tag lists for a target (PEP 425, PEP 600, PEP 656).
//! (Stub: to be implemented.)

/// The tags a target supports, most preferred first.
#[derive(Debug, Clone)]
pub struct TagSet {}
