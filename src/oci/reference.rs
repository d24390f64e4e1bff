//! Image references in the containers/image transport syntax that skopeo and podman
//! use: `oci:DIR[:TAG]` and `oci-archive:FILE[:TAG]`.
//!
//! Splitting the path from the tag: containers/image splits at the *first* `:`, so its
//! paths cannot contain one. envbuild accepts such paths by splitting at the *last*
//! `:` instead, and only when what follows is a valid tag (see [`is_valid_tag`]);
//! otherwise the whole text is the path. So `oci:/srv/a:b/out` is the folder
//! `/srv/a:b/out` with no tag, and `oci:/srv/a:b/out:v1` is that folder with tag `v1`.
//! A trailing `:` means "no tag" explicitly: `oci-archive:/srv/image:v1:` is the file
//! `/srv/image:v1` with no tag. [`ImageReference`]'s `Display` adds that `:` when it is
//! needed, so rendering and parsing round-trip.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Longest tag Docker and the OCI distribution spec accept.
const MAX_TAG_LENGTH: usize = 128;

/// Where an image is read from or written to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageReference {
    /// An OCI image layout folder: `oci:DIR[:TAG]`.
    OciLayout {
        /// The layout folder.
        path: PathBuf,
        /// The tag: the `org.opencontainers.image.ref.name` annotation in `index.json`.
        tag: Option<String>,
    },
    /// An OCI image layout in a tar file: `oci-archive:FILE[:TAG]`.
    OciArchive {
        /// The tar file.
        path: PathBuf,
        /// The tag: the `org.opencontainers.image.ref.name` annotation in `index.json`.
        tag: Option<String>,
    },
}

impl ImageReference {
    /// The folder or file the reference names.
    pub fn path(&self) -> &Path {
        match self {
            Self::OciLayout { path, .. } | Self::OciArchive { path, .. } => path,
        }
    }

    /// The tag, if one was given.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Self::OciLayout { tag, .. } | Self::OciArchive { tag, .. } => tag.as_deref(),
        }
    }

    fn transport(&self) -> &'static str {
        match self {
            Self::OciLayout { .. } => "oci",
            Self::OciArchive { .. } => "oci-archive",
        }
    }
}

/// A reference that cannot be parsed or names a transport envbuild does not handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The transport exists in containers/image but envbuild cannot use it yet.
    #[error(
        "image reference `{reference}` uses the `{transport}` transport, which is not supported yet; use `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`"
    )]
    UnsupportedTransport {
        /// The reference as given.
        reference: String,
        /// The transport name, e.g. `docker`.
        transport: String,
    },
    /// The text does not start with a known transport.
    #[error(
        "image reference `{reference}` has no known transport; write `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`"
    )]
    UnknownTransport {
        /// The reference as given.
        reference: String,
    },
    /// The transport is followed by nothing, or only by a tag.
    #[error("image reference `{reference}` names no path; write `{transport}:PATH[:TAG]`")]
    EmptyPath {
        /// The reference as given.
        reference: String,
        /// The transport name.
        transport: String,
    },
}

/// Transports containers/image knows that envbuild does not (yet) read or write.
const UNSUPPORTED_TRANSPORTS: &[&str] = &[
    "docker",
    "docker-archive",
    "docker-daemon",
    "containers-storage",
    "dir",
    "ostree",
    "sif",
    "tarball",
];

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((transport, rest)) = text.split_once(':') else {
            return Err(ReferenceError::UnknownTransport {
                reference: text.to_string(),
            });
        };
        let make: fn(PathBuf, Option<String>) -> Self = match transport {
            "oci" => |path, tag| Self::OciLayout { path, tag },
            "oci-archive" => |path, tag| Self::OciArchive { path, tag },
            other if UNSUPPORTED_TRANSPORTS.contains(&other) => {
                return Err(ReferenceError::UnsupportedTransport {
                    reference: text.to_string(),
                    transport: other.to_string(),
                });
            }
            _ => {
                return Err(ReferenceError::UnknownTransport {
                    reference: text.to_string(),
                });
            }
        };
        let (path, tag) = split_path_and_tag(rest);
        if path.is_empty() {
            return Err(ReferenceError::EmptyPath {
                reference: text.to_string(),
                transport: transport.to_string(),
            });
        }
        Ok(make(PathBuf::from(path), tag.map(str::to_string)))
    }
}

/// Split `PATH[:TAG]` at the last `:` when what follows is empty (explicitly no tag)
/// or a valid tag; otherwise all of it is the path.
fn split_path_and_tag(text: &str) -> (&str, Option<&str>) {
    match text.rsplit_once(':') {
        Some((path, "")) => (path, None),
        Some((path, tag)) if is_valid_tag(tag) => (path, Some(tag)),
        _ => (text, None),
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path().to_string_lossy();
        write!(f, "{}:{path}", self.transport())?;
        match self.tag() {
            Some(tag) => write!(f, ":{tag}"),
            // Without the trailing `:`, a path like `a:v1` would read back as a tag.
            None if split_path_and_tag(&path) != (&*path, None) => f.write_str(":"),
            None => Ok(()),
        }
    }
}

/// Whether `tag` can be used as a tag: it must match Docker's tag grammar
/// (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) *and* be a valid component of the OCI
/// `org.opencontainers.image.ref.name` grammar (alphanumeric runs joined by single
/// `.`, `_` or `-`, or by `--`), so that every tool reading the layout accepts it.
pub fn is_valid_tag(tag: &str) -> bool {
    if tag.is_empty() || tag.len() > MAX_TAG_LENGTH {
        return false;
    }
    let bytes = tag.as_bytes();
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    // Each run of separators between alphanumeric runs must be one of `.`, `_`, `-`
    // or `--`.
    tag.split(|c: char| c.is_ascii_alphanumeric())
        .all(|separator| matches!(separator, "" | "." | "_" | "-" | "--"))
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(path: &str, tag: Option<&str>) -> ImageReference {
        ImageReference::OciLayout {
            path: path.into(),
            tag: tag.map(str::to_string),
        }
    }

    fn archive(path: &str, tag: Option<&str>) -> ImageReference {
        ImageReference::OciArchive {
            path: path.into(),
            tag: tag.map(str::to_string),
        }
    }

    #[test]
    fn ok_parse_and_round_trip() {
        let cases = [
            ("oci:out", layout("out", None)),
            ("oci:out:latest", layout("out", Some("latest"))),
            (
                "oci:/srv/images/app:v1.2.3-rc1",
                layout("/srv/images/app", Some("v1.2.3-rc1")),
            ),
            ("oci:/srv/a:b/out", layout("/srv/a:b/out", None)),
            ("oci:/srv/a:b/out:v1", layout("/srv/a:b/out", Some("v1"))),
            (
                "oci:dir:with:colons:tag",
                layout("dir:with:colons", Some("tag")),
            ),
            ("oci-archive:image.tar", archive("image.tar", None)),
            (
                "oci-archive:image.tar:3.12-slim",
                archive("image.tar", Some("3.12-slim")),
            ),
            ("oci-archive:/tmp/image:v1:", archive("/tmp/image:v1", None)),
            ("oci-archive:/tmp/x::v1", archive("/tmp/x:", Some("v1"))),
            ("oci:out:a--b", layout("out", Some("a--b"))),
        ];
        for (text, expected) in cases {
            let parsed: ImageReference = text.parse().unwrap();
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(parsed.to_string(), text, "{text}");
        }
    }

    #[test]
    fn ok_display_adds_colon_when_needed() {
        for reference in [
            layout("a:v1", None),
            layout("a:", None),
            archive("weird:", Some("t")),
            layout("/x:y/z", None),
        ] {
            let text = reference.to_string();
            assert_eq!(text.parse::<ImageReference>().unwrap(), reference, "{text}");
        }
        assert_eq!(layout("a:v1", None).to_string(), "oci:a:v1:");
        assert_eq!(layout("/x:y/z", None).to_string(), "oci:/x:y/z");
    }

    #[test]
    fn ok_suffix_that_is_not_a_tag_stays_in_the_path() {
        for (text, path) in [
            ("oci:/srv/x:_hidden", "/srv/x:_hidden"),
            ("oci:/srv/x:a..b", "/srv/x:a..b"),
            ("oci:/srv/x:has space", "/srv/x:has space"),
            ("oci:/srv/x:trailing-", "/srv/x:trailing-"),
        ] {
            assert_eq!(
                text.parse::<ImageReference>().unwrap(),
                layout(path, None),
                "{text}"
            );
        }
    }

    #[test]
    fn err_unsupported_and_unknown_transports() {
        let error = "docker://example.test/app:1"
            .parse::<ImageReference>()
            .unwrap_err();
        assert!(
            matches!(error, ReferenceError::UnsupportedTransport { ref transport, .. } if transport == "docker")
        );
        assert!(error.to_string().contains("not supported yet"), "{error}");
        let error = "docker-archive:x.tar"
            .parse::<ImageReference>()
            .unwrap_err();
        assert!(matches!(error, ReferenceError::UnsupportedTransport { .. }));
        let error = "python:3.12".parse::<ImageReference>().unwrap_err();
        assert!(matches!(error, ReferenceError::UnknownTransport { .. }));
        assert!("just-a-path".parse::<ImageReference>().is_err());
    }

    #[test]
    fn err_empty_path() {
        for text in ["oci:", "oci::", "oci::latest", "oci-archive:"] {
            let error = text.parse::<ImageReference>().unwrap_err();
            assert!(
                matches!(error, ReferenceError::EmptyPath { .. }),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn tag_grammar() {
        for good in [
            "latest",
            "v1",
            "1.2.3",
            "a_b",
            "a-b",
            "a--b",
            "A9",
            &"x".repeat(128),
        ] {
            assert!(is_valid_tag(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            ".a",
            "a.",
            "a..b",
            "a__b",
            "a---b",
            "a/b",
            "a b",
            "a:b",
            &"x".repeat(129),
        ] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }
}
