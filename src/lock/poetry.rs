//! Poetry's `poetry.lock` (lock-version 2.0 and 2.1).
//! (Stub: to be implemented.)

use std::path::Path;

use super::{GroupSelection, LockedPackage};

/// Errors from `poetry.lock`.
#[derive(Debug, thiserror::Error)]
pub enum PoetryError {
    /// Placeholder until implemented.
    #[error("`poetry.lock` support is not implemented yet")]
    NotImplemented,
}

/// A parsed `poetry.lock`.
#[derive(Debug, Clone)]
pub(crate) struct PoetryLock {}

impl PoetryLock {
    pub(crate) fn parse(_path: &Path, _text: &str) -> Result<Self, PoetryError> {
        Err(PoetryError::NotImplemented)
    }

    pub(crate) fn select(
        &self,
        _environment: &uv_pep508::MarkerEnvironment,
        _selection: &GroupSelection,
    ) -> Result<Vec<LockedPackage>, PoetryError> {
        Err(PoetryError::NotImplemented)
    }

    pub(crate) fn indexes(&self) -> Vec<url::Url> {
        Vec::new()
    }
}
