//! pip requirements files with hashes (pip-tools, `uv pip compile`, `uv export`).
//! (Stub: to be implemented.)

use std::path::Path;

use super::{GroupSelection, LockedPackage};

/// Errors from a requirements file.
#[derive(Debug, thiserror::Error)]
pub enum RequirementsError {
    /// Placeholder until implemented.
    #[error("a requirements file support is not implemented yet")]
    NotImplemented,
}

/// A parsed a requirements file.
#[derive(Debug, Clone)]
pub(crate) struct Requirements {}

impl Requirements {
    pub(crate) fn parse(_path: &Path, _text: &str) -> Result<Self, RequirementsError> {
        Err(RequirementsError::NotImplemented)
    }

    pub(crate) fn select(
        &self,
        _environment: &uv_pep508::MarkerEnvironment,
        _selection: &GroupSelection,
    ) -> Result<Vec<LockedPackage>, RequirementsError> {
        Err(RequirementsError::NotImplemented)
    }

    pub(crate) fn indexes(&self) -> Vec<url::Url> {
        Vec::new()
    }
}
