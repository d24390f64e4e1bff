//! Reading the target's facts (interpreter path and version, libc) from a base image.
//! (Stub: to be implemented.)
