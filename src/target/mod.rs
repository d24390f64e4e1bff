//! The build target: Python version and implementation, OS/architecture and libc.
//! From it come the PEP 508 marker environment and the ordered list of wheel tags the
//! target supports ([`TagSet`]). `select` picks one wheel per package; `detect` reads
//! the target's facts from a base image's files.
//! (Stub: to be implemented.)

pub mod detect;
pub mod select;
mod tags;

use std::fmt;
use std::str::FromStr;

pub use tags::TagSet;

/// An OCI platform: `os/architecture[/variant]`, e.g. `linux/amd64`, `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// OCI `os`, e.g. `linux`.
    pub os: String,
    /// OCI `architecture`, e.g. `amd64`.
    pub architecture: String,
    /// OCI `variant`, e.g. `v8`.
    pub variant: Option<String>,
}

/// A platform string that cannot be understood.
#[derive(Debug, thiserror::Error)]
#[error("invalid platform `{text}`: {reason}")]
pub struct PlatformParseError {
    /// What was given.
    pub text: String,
    /// Why it was rejected.
    pub reason: String,
}

impl FromStr for Platform {
    type Err = PlatformParseError;
    fn from_str(_text: &str) -> Result<Self, Self::Err> {
        todo!()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// The C library of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Libc {
    /// GNU libc `major.minor` (manylinux wheels).
    Glibc {
        /// Major version.
        major: u32,
        /// Minor version.
        minor: u32,
    },
    /// musl `major.minor` (musllinux wheels).
    Musl {
        /// Major version.
        major: u32,
        /// Minor version.
        minor: u32,
    },
}

/// A CPython version: `major.minor` and, when known, the patch level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PythonVersion {
    /// Major (3).
    pub major: u32,
    /// Minor (e.g. 11).
    pub minor: u32,
    /// Patch, when known.
    pub patch: Option<u32>,
}

/// The complete build target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// OCI platform.
    pub platform: Platform,
    /// Python version.
    pub python: PythonVersion,
    /// libc.
    pub libc: Libc,
    /// Accept plain `linux_<arch>` wheels (off by default: they are not portable).
    pub allow_linux_tag: bool,
}
