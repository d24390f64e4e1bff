//! A lockfile's text, path and format, to point errors at `path:line:column` and to
//! build the [`FieldError`]s every format shares. Used by every lockfile parser.

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::fields::{self, FieldError};
use super::{LockFormat, PackageName};

/// A lockfile's path, text and format.
pub(crate) struct Source<'a> {
    /// The lockfile.
    pub(crate) path: &'a Path,
    /// Its contents.
    pub(crate) text: &'a str,
    /// Its format, for the hints of errors.
    pub(crate) format: LockFormat,
}

impl Source<'_> {
    /// `path:line:column` of the start of `span` (a byte range of the text).
    pub(crate) fn place(&self, span: Range<usize>) -> String {
        let (line, column) = line_column(self.text, span.start);
        format!("{}:{line}:{column}", self.path.display())
    }

    /// The path alone, for problems that have no position.
    pub(crate) fn whole_file(&self) -> String {
        self.path.display().to_string()
    }

    /// The text read as TOML into `T`; a syntax or type error names its position.
    pub(crate) fn toml<T: DeserializeOwned>(&self) -> Result<T, FieldError> {
        toml::from_str(self.text).map_err(|error| FieldError::InvalidSyntax {
            place: error
                .span()
                .map_or_else(|| self.whole_file(), |span| self.place(span)),
            message: error.message().trim_end().to_string(),
            format: self.format,
        })
    }

    /// A key the format requires is absent from `table`.
    pub(crate) fn missing_key(
        &self,
        place: String,
        table: impl Into<String>,
        key: &'static str,
    ) -> FieldError {
        FieldError::MissingKey {
            place,
            table: table.into(),
            key,
            format: self.format,
        }
    }

    /// `written` as a package name, or an error naming it and `place`.
    pub(crate) fn package_name(
        &self,
        written: &str,
        place: &str,
    ) -> Result<PackageName, FieldError> {
        fields::package_name_at(written, place)
    }

    /// `written`, the value of `key` at `place`, as a marker.
    pub(crate) fn marker(
        &self,
        written: &str,
        key: impl Into<String>,
        place: &str,
    ) -> Result<uv_pep508::MarkerTree, FieldError> {
        fields::marker_at(written, key, place)
    }

    /// A hash that is not `<algorithm>:<hex>`.
    pub(crate) fn invalid_hash(
        &self,
        place: &str,
        key: impl Into<String>,
        value: &str,
    ) -> FieldError {
        FieldError::InvalidHash {
            place: place.to_string(),
            key: key.into(),
            value: value.to_string(),
            format: self.format,
        }
    }
}

/// The line and column (from 1, in characters) of byte `offset` of `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    // Offsets come from parsers and fall on character boundaries; stay safe if one ever
    // does not.
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_count_lines_and_characters() {
        let source = Source {
            path: Path::new("lock.toml"),
            text: "a = 1\nbé = x\n",
            format: LockFormat::Pylock,
        };
        assert_eq!(source.place(0..1), "lock.toml:1:1");
        assert_eq!(source.place(11..12), "lock.toml:2:5");
        assert_eq!(source.place(500..501), "lock.toml:3:1");
    }
}
