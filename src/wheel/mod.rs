//! Reading wheels and mapping their files into an install prefix (binary distribution
//! format, recording installed projects, entry points). [`plan_locked_install`] (or
//! [`plan_install`], with no lockfile version) validates a wheel against its file name
//! and the lockfile and plans every layer entry of its install into a venv without
//! unpacking anything, refusing paths an image cannot hold; the layer writer then
//! streams the planned files out of the zip, checking each against its RECORD hash, and
//! a damaged member fails as [`WheelError::CorruptMember`], not as a write error. Bytecode is optional: [`WheelInstall::add_bytecode`]
//! adds unchecked-hash pycs made by a host CPython ([`PycCompiler`], standards §3.8).
//! `REQUESTED` and `direct_url.json` are left to the caller.

mod archive;
mod bytecode;
mod error;
pub mod filename;
mod install;
mod record;
mod scheme;
mod scripts;
#[cfg(test)]
pub(crate) mod testing;

pub use bytecode::{
    BytecodeError, PycCompiler, PycOutcome, PycSource, UNCHECKED_HASH_FLAGS, pyc_header,
};
pub use error::{CorruptMemberReason, UnsafePathReason, WheelError};
pub use install::{
    BytecodeSummary, WheelInstall, WheelSource, check_collisions, plan_install, plan_locked_install,
};
pub use scheme::InstallScheme;
pub use scripts::LAUNCHER_TEMPLATE_VERSION;

pub(crate) use archive::into_wheel_error;
pub(crate) use install::{EntryContent, merge_entries};
pub(crate) use scheme::VenvEntry;
