//! Pipenv's `Pipfile.lock`.
//! (Stub: to be implemented.)

use std::path::Path;

use super::{GroupSelection, LockedPackage};

/// Errors from `Pipfile.lock`.
#[derive(Debug, thiserror::Error)]
pub enum PipfileError {
    /// Placeholder until implemented.
    #[error("`Pipfile.lock` support is not implemented yet")]
    NotImplemented,
}

/// A parsed `Pipfile.lock`.
#[derive(Debug, Clone)]
pub(crate) struct PipfileLock {}

impl PipfileLock {
    pub(crate) fn parse(_path: &Path, _text: &str) -> Result<Self, PipfileError> {
        Err(PipfileError::NotImplemented)
    }

    pub(crate) fn select(
        &self,
        _environment: &uv_pep508::MarkerEnvironment,
        _selection: &GroupSelection,
    ) -> Result<Vec<LockedPackage>, PipfileError> {
        Err(PipfileError::NotImplemented)
    }

    pub(crate) fn indexes(&self) -> Vec<url::Url> {
        Vec::new()
    }
}
