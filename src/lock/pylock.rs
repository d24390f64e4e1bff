//! PEP 751 `pylock.toml`: parsing, validation and package selection.
//! (Stub: to be implemented.)

use std::path::Path;

use super::{GroupSelection, LockedPackage};

/// Whether a file name is a valid pylock file name (`pylock.toml` or `pylock.<name>.toml`).
pub(crate) fn is_pylock_file_name(name: &str) -> bool {
    name == "pylock.toml" || (name.starts_with("pylock.") && name.ends_with(".toml") && name.len() > 12)
}

/// Errors from a `pylock.toml`.
#[derive(Debug, thiserror::Error)]
pub enum PylockError {
    /// Placeholder.
    #[error("pylock.toml support is not implemented yet")]
    NotImplemented,
}

/// A parsed `pylock.toml`.
#[derive(Debug, Clone)]
pub(crate) struct Pylock {}

impl Pylock {
    pub(crate) fn parse(_path: &Path, _text: &str) -> Result<Self, PylockError> {
        Err(PylockError::NotImplemented)
    }

    pub(crate) fn select(
        &self,
        _environment: &uv_pep508::MarkerEnvironment,
        _selection: &GroupSelection,
    ) -> Result<Vec<LockedPackage>, PylockError> {
        Err(PylockError::NotImplemented)
    }
}
