//! Reading wheels and mapping their files into an install prefix (binary distribution
//! format, recording installed projects, entry points).
//! (Stub: to be implemented.)

pub mod filename;
