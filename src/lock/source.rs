//! A lockfile's text and path, to point errors at `path:line:column`. Shared by every
//! TOML-based lockfile parser.

use std::ops::Range;
use std::path::Path;

/// A lockfile's path and text.
pub(crate) struct Source<'a> {
    /// The lockfile.
    pub(crate) path: &'a Path,
    /// Its contents.
    pub(crate) text: &'a str,
}

impl Source<'_> {
    /// `path:line:column` of the start of `span` (a byte range of the text).
    pub(crate) fn place(&self, span: Range<usize>) -> String {
        let offset = span.start.min(self.text.len());
        // Spans come from the parser and fall on character boundaries; stay safe if one
        // ever does not.
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        let column = before[line_start..].chars().count() + 1;
        format!("{}:{line}:{column}", self.path.display())
    }

    /// The path alone, for problems that have no position.
    pub(crate) fn whole_file(&self) -> String {
        self.path.display().to_string()
    }

    /// Where a TOML error is (`path:line:column` when the parser knows) and its
    /// message.
    pub(crate) fn toml_error_parts(&self, error: &toml::de::Error) -> (String, String) {
        let place = error
            .span()
            .map_or_else(|| self.whole_file(), |span| self.place(span));
        (place, error.message().trim_end().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_count_lines_and_characters() {
        let source = Source {
            path: Path::new("lock.toml"),
            text: "a = 1\nbé = x\n",
        };
        assert_eq!(source.place(0..1), "lock.toml:1:1");
        assert_eq!(source.place(11..12), "lock.toml:2:5");
        assert_eq!(source.place(500..501), "lock.toml:3:1");
    }
}
