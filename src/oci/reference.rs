//! Image references in the containers/image transport syntax that skopeo and podman
//! use: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME[:TAG]]`
//! and `docker://HOST/REPO[:TAG|@DIGEST]`.
//!
//! Splitting the path from the tag of `oci:` and `oci-archive:`: containers/image splits
//! at the *first* `:`, so its paths cannot contain one. envbuild accepts such paths by
//! splitting at the *last* `:` instead, and only when what follows is a valid tag (see
//! [`is_valid_tag`]); otherwise the whole text is the path. So `oci:/srv/a:b/out` is the
//! folder `/srv/a:b/out` with no tag, and `oci:/srv/a:b/out:v1` is that folder with tag
//! `v1`. A trailing `:` means "no tag" explicitly: `oci-archive:/srv/image:v1:` is the file
//! `/srv/image:v1` with no tag. [`ImageReference`]'s `Display` adds that `:` when it is
//! needed, so rendering and parsing round-trip.
//!
//! `docker-archive:` follows containers/image exactly, because what follows the path is
//! an image *name* that may itself hold `:` and `/`: the path ends at the first `:`, and
//! the rest is a Docker reference normalized as `docker load` and podman read it
//! (`myapp:1.0` is `docker.io/library/myapp:1.0`; no tag means `latest`; a digest is
//! refused). So its path cannot contain `:`, and a lone `docker-archive:app.tar:1.0`
//! names the image `1.0:latest`, as it would for skopeo; write `NAME:TAG`.
//!
//! `docker://` references are parsed but only kept as text here: the registry client
//! reads them (see [`crate::registry`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::registry::{RegistryReference, RegistryReferenceError};

/// Longest tag Docker and the OCI distribution spec accept.
const MAX_TAG_LENGTH: usize = 128;

/// The tag a docker-archive name without one gets (containers/image `TagNameOnly`).
const DEFAULT_TAG: &str = "latest";

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
    /// A tar file for `docker load` and `podman load`: `docker-archive:FILE[:NAME[:TAG]]`
    /// (write only).
    DockerArchive {
        /// The tar file.
        path: PathBuf,
        /// The name `docker load` gives the image (`RepoTags` in `manifest.json`),
        /// normalized, with its tag always set (`latest` when none was written) and no
        /// digest. `None`: the image loads untagged.
        name: Option<RegistryReference>,
    },
    /// An image in a registry: `docker://REFERENCE`, holding the text after
    /// `docker://` as written. Not read or written yet: the registry client will be.
    Registry(String),
}

impl ImageReference {
    /// The folder or file the reference names; `None` for a registry.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::OciLayout { path, .. }
            | Self::OciArchive { path, .. }
            | Self::DockerArchive { path, .. } => Some(path),
            Self::Registry(_) => None,
        }
    }

    /// The tag, if one was given: for a docker-archive, the tag of its name.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Self::OciLayout { tag, .. } | Self::OciArchive { tag, .. } => tag.as_deref(),
            Self::DockerArchive { name, .. } => name.as_ref().map(RegistryReference::tag_or_latest),
            Self::Registry(_) => None,
        }
    }

    /// The transport name, e.g. `oci-archive`.
    pub fn transport(&self) -> &'static str {
        match self {
            Self::OciLayout { .. } => "oci",
            Self::OciArchive { .. } => "oci-archive",
            Self::DockerArchive { .. } => "docker-archive",
            Self::Registry(_) => "docker",
        }
    }

    /// How many platforms the destination can hold: an image index holds any number,
    /// a docker-archive one (the graph-driver loader filters by platform, and duplicate
    /// `RepoTags` across platforms clash; standards §5.7).
    pub fn holds_several_platforms(&self) -> bool {
        !matches!(self, Self::DockerArchive { .. })
    }
}

/// A reference that cannot be parsed or names a transport envbuild does not handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The transport exists in containers/image but envbuild cannot use it yet.
    #[error(
        "image reference `{reference}` uses the `{transport}` transport, which is not supported yet; use `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` or `docker-archive:FILE[:NAME[:TAG]]`"
    )]
    UnsupportedTransport {
        /// The reference as given.
        reference: String,
        /// The transport name, e.g. `docker-daemon`.
        transport: String,
    },
    /// The text does not start with a known transport.
    #[error(
        "image reference `{reference}` has no known transport; write `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME[:TAG]]` or `docker://HOST/REPOSITORY[:TAG]`"
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
    /// `docker://` is followed by nothing.
    #[error("image reference `{reference}` names no image; write `docker://HOST/REPOSITORY[:TAG]`")]
    EmptyRegistryReference {
        /// The reference as given.
        reference: String,
    },
    /// The image name of a docker-archive is not a valid Docker reference.
    #[error(
        "image reference `{reference}` gives the docker-archive an invalid image name (the part after the file's first `:`, so the file name cannot contain `:`); write `docker-archive:FILE:NAME:TAG`, e.g. `docker-archive:app.tar:myapp:1.0`"
    )]
    InvalidArchiveName {
        /// The reference as given.
        reference: String,
        /// Why the name is invalid.
        #[source]
        source: RegistryReferenceError,
    },
    /// The image name of a docker-archive has a digest.
    #[error(
        "image reference `{reference}` names the docker-archive image by digest, but `docker load` needs a name and tag; write `docker-archive:FILE:NAME:TAG`"
    )]
    DigestInArchiveName {
        /// The reference as given.
        reference: String,
    },
}

/// A reference with no transport, as users write them for registries (`python:3.11`,
/// `ghcr.io/org/app:1.0`, `127.0.0.1:5000/app@sha256:...`), normalised the way the
/// docker CLI does. Paths are never taken for image names: text starting with `/` or
/// `.` is refused, so a forgotten `oci:` gives an error rather than a registry lookup.
fn bare_registry_reference(text: &str) -> Result<ImageReference, ReferenceError> {
    let unknown = || ReferenceError::UnknownTransport {
        reference: text.to_string(),
    };
    if text.starts_with('/') || text.starts_with('.') || text.is_empty() {
        return Err(unknown());
    }
    RegistryReference::from_str(text)
        .map(|_| ImageReference::Registry(text.to_string()))
        .map_err(|_| unknown())
}

/// Transports containers/image knows that envbuild does not (yet) read or write.
const UNSUPPORTED_TRANSPORTS: &[&str] = &[
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
            return bare_registry_reference(text);
        };
        let make: fn(PathBuf, Option<String>) -> Self = match transport {
            "oci" => |path, tag| Self::OciLayout { path, tag },
            "oci-archive" => |path, tag| Self::OciArchive { path, tag },
            "docker-archive" => return parse_docker_archive(text, rest),
            "docker" => {
                return match rest.strip_prefix("//") {
                    Some("") => Err(ReferenceError::EmptyRegistryReference {
                        reference: text.to_string(),
                    }),
                    Some(reference) => match RegistryReference::from_str(reference) {
                        Ok(_) => Ok(Self::Registry(reference.to_string())),
                        Err(_) => Err(ReferenceError::UnknownTransport {
                            reference: text.to_string(),
                        }),
                    },
                    None => Err(ReferenceError::UnknownTransport {
                        reference: text.to_string(),
                    }),
                };
            }
            other if UNSUPPORTED_TRANSPORTS.contains(&other) => {
                return Err(ReferenceError::UnsupportedTransport {
                    reference: text.to_string(),
                    transport: other.to_string(),
                });
            }
            _ => return bare_registry_reference(text),
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

/// `docker-archive:FILE[:NAME[:TAG]]` as containers/image parses it (`docker/archive`
/// `ParseReference`): the path ends at the first `:`; the rest is a normalized Docker
/// name, tagged `latest` when it has no tag, and never a digest. A trailing `:` with
/// nothing after it means no name.
fn parse_docker_archive(text: &str, rest: &str) -> Result<ImageReference, ReferenceError> {
    let (path, name) = match rest.split_once(':') {
        Some((path, "")) => (path, None),
        Some((path, name)) => (path, Some(name)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(ReferenceError::EmptyPath {
            reference: text.to_string(),
            transport: "docker-archive".to_string(),
        });
    }
    let name = match name {
        None => None,
        Some(name) => {
            let mut parsed: RegistryReference =
                name.parse()
                    .map_err(|source| ReferenceError::InvalidArchiveName {
                        reference: text.to_string(),
                        source,
                    })?;
            if parsed.digest.is_some() {
                return Err(ReferenceError::DigestInArchiveName {
                    reference: text.to_string(),
                });
            }
            parsed.tag.get_or_insert_with(|| DEFAULT_TAG.to_string());
            Some(parsed)
        }
    };
    Ok(ImageReference::DockerArchive {
        path: PathBuf::from(path),
        name,
    })
}

/// The short form `docker load` prints and `RepoTags` holds (distribution's
/// `FamiliarString`): Docker Hub's `docker.io/` and `library/` prefixes dropped, e.g.
/// `myapp:1.0` for `docker.io/library/myapp:1.0`, `localhost/app:1` stays as it is.
pub fn familiar_name(reference: &RegistryReference) -> String {
    let repository = if reference.registry == crate::registry::DOCKER_HUB {
        match reference.repository.strip_prefix("library/") {
            Some(short) if !short.contains('/') => short.to_string(),
            _ => reference.repository.clone(),
        }
    } else {
        format!("{}/{}", reference.registry, reference.repository)
    };
    format!("{repository}:{}", reference.tag_or_latest())
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
        let path = match self {
            Self::Registry(reference) => return write!(f, "docker://{reference}"),
            Self::DockerArchive { path, name } => {
                write!(f, "docker-archive:{}", path.to_string_lossy())?;
                return match name {
                    Some(name) => write!(f, ":{}", familiar_name(name)),
                    None => Ok(()),
                };
            }
            Self::OciLayout { path, .. } | Self::OciArchive { path, .. } => path.to_string_lossy(),
        };
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

    fn docker_archive(path: &str, name: Option<&str>) -> ImageReference {
        ImageReference::DockerArchive {
            path: path.into(),
            name: name.map(|name| name.parse().unwrap()),
        }
    }

    #[test]
    fn ok_docker_archive_names_as_containers_image_reads_them() {
        let cases = [
            ("docker-archive:/tmp/app.tar", None, None),
            (
                "docker-archive:/tmp/app.tar:myapp:1.0",
                Some("docker.io/library/myapp:1.0"),
                Some("myapp:1.0"),
            ),
            (
                "docker-archive:app.tar:myapp",
                Some("docker.io/library/myapp:latest"),
                Some("myapp:latest"),
            ),
            (
                "docker-archive:app.tar:team/app:v2",
                Some("docker.io/team/app:v2"),
                Some("team/app:v2"),
            ),
            (
                "docker-archive:app.tar:localhost/app:1",
                Some("localhost/app:1"),
                Some("localhost/app:1"),
            ),
            (
                "docker-archive:app.tar:registry.test:5000/a/b:c",
                Some("registry.test:5000/a/b:c"),
                Some("registry.test:5000/a/b:c"),
            ),
            // As for skopeo, a lone `1.0` is a name (tagged `latest`), not a tag.
            (
                "docker-archive:app.tar:1.0",
                Some("docker.io/library/1.0:latest"),
                Some("1.0:latest"),
            ),
            ("docker-archive:app.tar:", None, None),
        ];
        for (text, full, familiar) in cases {
            let parsed: ImageReference = text.parse().unwrap();
            let ImageReference::DockerArchive { name, .. } = &parsed else {
                panic!("{text} parsed as {parsed:?}");
            };
            assert_eq!(
                name.as_ref().map(|n| n.to_string()).as_deref(),
                full,
                "{text}"
            );
            assert_eq!(
                name.as_ref().map(familiar_name).as_deref(),
                familiar,
                "{text}"
            );
            assert_eq!(
                parsed.to_string().parse::<ImageReference>().unwrap(),
                parsed
            );
            assert!(!parsed.holds_several_platforms());
        }
        let parsed: ImageReference = "docker-archive:/tmp/app.tar:myapp:1.0".parse().unwrap();
        assert_eq!(parsed, docker_archive("/tmp/app.tar", Some("myapp:1.0")));
        assert_eq!(parsed.tag(), Some("1.0"));
        assert_eq!(parsed.path(), Some(Path::new("/tmp/app.tar")));
        assert_eq!(parsed.to_string(), "docker-archive:/tmp/app.tar:myapp:1.0");
    }

    #[test]
    fn err_docker_archive_names() {
        for text in [
            "docker-archive:app.tar:MyApp:1",
            "docker-archive:app.tar:app:bad tag",
            "docker-archive:app.tar:a//b",
        ] {
            let error = text.parse::<ImageReference>().unwrap_err();
            assert!(
                matches!(error, ReferenceError::InvalidArchiveName { .. }),
                "{text}: {error}"
            );
            assert!(error.to_string().contains("NAME:TAG"), "{error}");
        }
        let digest = format!("docker-archive:app.tar:app@sha256:{}", "a".repeat(64));
        let error = digest.parse::<ImageReference>().unwrap_err();
        assert!(
            matches!(error, ReferenceError::DigestInArchiveName { .. }),
            "{error}"
        );
        let error = "docker-archive::app:1"
            .parse::<ImageReference>()
            .unwrap_err();
        assert!(matches!(error, ReferenceError::EmptyPath { .. }), "{error}");
    }

    #[test]
    fn ok_registry_references_are_kept_as_text() {
        let parsed: ImageReference = "docker://127.0.0.1:5000/team/app:1".parse().unwrap();
        assert_eq!(
            parsed,
            ImageReference::Registry("127.0.0.1:5000/team/app:1".to_string())
        );
        assert_eq!(parsed.to_string(), "docker://127.0.0.1:5000/team/app:1");
        assert_eq!(parsed.path(), None);
        assert!(parsed.holds_several_platforms());
        let error = "docker://".parse::<ImageReference>().unwrap_err();
        assert!(matches!(
            error,
            ReferenceError::EmptyRegistryReference { .. }
        ));
    }

    #[test]
    fn err_unsupported_and_unknown_transports() {
        let error = "docker-daemon:app:1".parse::<ImageReference>().unwrap_err();
        assert!(
            matches!(error, ReferenceError::UnsupportedTransport { ref transport, .. } if transport == "docker-daemon")
        );
        assert!(error.to_string().contains("not supported yet"), "{error}");
        let error = "docker:app".parse::<ImageReference>().unwrap_err();
        assert!(matches!(error, ReferenceError::UnknownTransport { .. }));
        // Without a transport, text is a registry reference as users write them ...
        assert_eq!(
            "python:3.12".parse::<ImageReference>().unwrap(),
            ImageReference::Registry("python:3.12".to_string())
        );
        // ... but never a path.
        for path in ["/srv/layout", "./layout", "../x:1", "Bad Name"] {
            let error = path.parse::<ImageReference>().unwrap_err();
            assert!(
                matches!(error, ReferenceError::UnknownTransport { .. }),
                "{path}"
            );
        }
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
