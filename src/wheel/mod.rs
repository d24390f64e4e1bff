//! Reading wheels and mapping their files into an install prefix (binary distribution
//! format, recording installed projects, entry points). [`plan_install`] validates a
//! wheel and plans every layer entry of its install into a venv without unpacking
//! anything; the layer writer then streams the planned files out of the zip, checking
//! each against its RECORD hash. No bytecode is compiled (standards §3.8), and
//! `REQUESTED` and `direct_url.json` are left to the caller.

mod archive;
mod error;
pub mod filename;
mod install;
mod record;
mod scheme;
mod scripts;
#[cfg(test)]
pub(crate) mod testing;

pub use error::{UnsafePathReason, WheelError};
pub use install::{WheelInstall, check_collisions, plan_install};
pub use scheme::InstallScheme;
pub use scripts::LAUNCHER_TEMPLATE_VERSION;

pub(crate) use archive::into_wheel_error;
pub(crate) use install::{EntryContent, merge_entries};
pub(crate) use scheme::VenvEntry;
