//! uv's `uv.lock`: walking the lock graph from the project roots.
//! (Stub: to be implemented.)

use std::path::Path;

use super::{GroupSelection, LockedPackage};

/// Errors from `uv.lock`.
#[derive(Debug, thiserror::Error)]
pub enum UvLockError {
    /// Placeholder until implemented.
    #[error("`uv.lock` support is not implemented yet")]
    NotImplemented,
}

/// A parsed `uv.lock`.
#[derive(Debug, Clone)]
pub(crate) struct UvLock {}

impl UvLock {
    pub(crate) fn parse(_path: &Path, _text: &str) -> Result<Self, UvLockError> {
        Err(UvLockError::NotImplemented)
    }

    pub(crate) fn select(
        &self,
        _environment: &uv_pep508::MarkerEnvironment,
        _selection: &GroupSelection,
    ) -> Result<Vec<LockedPackage>, UvLockError> {
        Err(UvLockError::NotImplemented)
    }
}
