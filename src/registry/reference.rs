//! Registry image references as users write them: `[docker://]HOST[:PORT]/REPO[:TAG][@DIGEST]`
//! and the short forms the docker CLI accepts (`python:3.12`, `team/app`).
//!
//! Normalisation follows distribution's `reference` package (`normalize.go`), as the docker
//! CLI, podman and skopeo do:
//! - the first path component is a registry host when it contains `.` or `:` or is
//!   `localhost`; otherwise the registry is Docker Hub, kept as the name `docker.io`
//!   (`index.docker.io` is normalised to it) and reached at the API host
//!   `registry-1.docker.io` ([`RegistryReference::api_host`]);
//! - on Docker Hub a single-component name gets the `library/` prefix (official images);
//! - with neither tag nor digest, pulls and pushes use the tag `latest`
//!   ([`RegistryReference::tag_or_latest`]), but the parsed value keeps `tag: None` so
//!   `Display` round-trips.
//!
//! Grammar (distribution `reference/regexp.go`): repository components are lowercase
//! alphanumerics separated by `.`, `_`, `__` or runs of `-`; the whole name is at most
//! 255 characters; a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a digest is
//! `sha256:` and 64 lowercase hex digits (envbuild handles only SHA-256).

use std::fmt;
use std::str::FromStr;

use crate::digest::Sha256Digest;
use crate::oci::reference::is_valid_tag;

/// The registry name Docker Hub references normalise to.
pub const DOCKER_HUB: &str = "docker.io";
/// The host Docker Hub's registry API is served from.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Longest repository name (with its registry) distribution accepts.
const MAX_NAME_LENGTH: usize = 255;

/// An image in a registry: `HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryReference {
    /// The registry as named in references: `host[:port]`; Docker Hub is `docker.io`
    /// (see [`RegistryReference::api_host`] for where requests go).
    pub registry: String,
    /// The repository path, e.g. `library/python` or `team/service`.
    pub repository: String,
    /// The tag, if one was written.
    pub tag: Option<String>,
    /// The manifest digest, if one was written (it wins over the tag when pulling).
    pub digest: Option<Sha256Digest>,
}

/// A registry reference that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryReferenceError {
    /// Nothing (or only `docker://`) was given.
    #[error(
        "image reference is empty; write `HOST[:PORT]/REPOSITORY[:TAG]`, e.g. `ghcr.io/team/app:1.0`"
    )]
    Empty,
    /// The registry host is not a valid `host[:port]`.
    #[error(
        "image reference `{reference}` names the registry `{registry}`, which is not a valid `host[:port]`"
    )]
    InvalidRegistry {
        /// The reference as given.
        reference: String,
        /// The registry part.
        registry: String,
    },
    /// The repository path breaks the distribution grammar.
    #[error(
        "image reference `{reference}` has an invalid repository `{repository}`: {reason}; repository names are lowercase letters and digits, separated by `/`, `.`, `_`, `__` or `-`"
    )]
    InvalidRepository {
        /// The reference as given.
        reference: String,
        /// The repository part.
        repository: String,
        /// What is wrong.
        reason: String,
    },
    /// The tag breaks the distribution grammar.
    #[error(
        "image reference `{reference}` has an invalid tag `{tag}`: tags are 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
    )]
    InvalidTag {
        /// The reference as given.
        reference: String,
        /// The tag part.
        tag: String,
    },
    /// The digest is not `sha256:` and 64 lowercase hex digits.
    #[error(
        "image reference `{reference}` has an invalid digest `{digest}`: envbuild accepts `sha256:` followed by 64 lowercase hexadecimal digits"
    )]
    InvalidDigest {
        /// The reference as given.
        reference: String,
        /// The digest part.
        digest: String,
    },
}

impl RegistryReference {
    /// The `host[:port]` requests go to: `registry-1.docker.io` for Docker Hub, else
    /// [`RegistryReference::registry`].
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// The tag to use when none was given: `latest`, as the docker CLI does.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// What to ask the registry for in `/v2/<name>/manifests/<reference>`: the digest
    /// when one was given, else the tag (or `latest`).
    pub fn manifest_reference(&self) -> String {
        match &self.digest {
            Some(digest) => digest.oci(),
            None => self.tag_or_latest().to_string(),
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The reference in the one spelling every reader resolves the same way, for the
    /// `org.opencontainers.image.base.name` annotation: `registry/repository:tag` (the
    /// tag `latest` when neither tag nor digest was written), or `registry/repository@digest`
    /// when only a digest was. `docker://`, a missing registry or `library/` never change it.
    pub fn canonical(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => format!("{}:{tag}", self.name()),
            (None, Some(digest)) => format!("{}@{}", self.name(), digest.oci()),
            (None, None) => format!("{}:latest", self.name()),
        }
    }
}

/// The API host of a registry name (see [`RegistryReference::api_host`]).
pub(crate) fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API_HOST
    } else {
        registry
    }
}

impl fmt::Display for RegistryReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{}", digest.oci())?;
        }
        Ok(())
    }
}

impl FromStr for RegistryReference {
    type Err = RegistryReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let reference = text.to_string();
        let rest = text.strip_prefix("docker://").unwrap_or(text);
        if rest.is_empty() {
            return Err(RegistryReferenceError::Empty);
        }
        let (rest, digest) = match rest.split_once('@') {
            Some((name, digest_text)) => {
                let valid = digest_text.strip_prefix("sha256:").is_some_and(|hex| {
                    hex.len() == 64
                        && hex
                            .bytes()
                            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
                });
                if !valid {
                    return Err(RegistryReferenceError::InvalidDigest {
                        reference,
                        digest: digest_text.to_string(),
                    });
                }
                let digest = Sha256Digest::from_hex(digest_text).map_err(|_| {
                    RegistryReferenceError::InvalidDigest {
                        reference: reference.clone(),
                        digest: digest_text.to_string(),
                    }
                })?;
                (name, Some(digest))
            }
            None => (rest, None),
        };
        // The tag follows the last `:` that comes after the last `/` (a `:` before it is
        // the registry's port).
        let last_slash = rest.rfind('/').map_or(0, |index| index + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(index) => {
                let split = last_slash + index;
                (&rest[..split], Some(&rest[split + 1..]))
            }
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !is_valid_tag(tag)
        {
            return Err(RegistryReferenceError::InvalidTag {
                reference,
                tag: tag.to_string(),
            });
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            Some(_) => (DOCKER_HUB.to_string(), name.to_string()),
            None => (DOCKER_HUB.to_string(), format!("library/{name}")),
        };
        if !is_valid_registry(&registry) {
            return Err(RegistryReferenceError::InvalidRegistry {
                reference,
                registry,
            });
        }
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if let Err(reason) = check_repository(&repository) {
            return Err(RegistryReferenceError::InvalidRepository {
                reference,
                repository,
                reason,
            });
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LENGTH {
            return Err(RegistryReferenceError::InvalidRepository {
                reference,
                repository,
                reason: format!("the name is longer than {MAX_NAME_LENGTH} characters"),
            });
        }
        Ok(Self {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }
}

/// `host[:port]`: dot-separated alphanumeric labels (inner `-` allowed) or a bracketed
/// IPv6 address, and an optional numeric port.
fn is_valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        match rest.split_once(']') {
            Some((address, tail)) => {
                if address.is_empty()
                    || !address
                        .bytes()
                        .all(|byte| byte.is_ascii_hexdigit() || byte == b':' || byte == b'.')
                {
                    return false;
                }
                match tail {
                    "" => return true,
                    _ => match tail.strip_prefix(':') {
                        Some(port) => ("ipv6", Some(port)),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match registry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|byte| byte.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Check a repository path against distribution's grammar.
fn check_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("it is empty".to_string());
    }
    for component in repository.split('/') {
        if component.is_empty() {
            return Err("it has an empty path component".to_string());
        }
        if component.bytes().any(|byte| byte.is_ascii_uppercase()) {
            return Err(format!("`{component}` has uppercase letters"));
        }
        if !is_valid_component(component) {
            return Err(format!("`{component}` is not a valid path component"));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alphanumeric = |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    let mut index = 0;
    loop {
        let start = index;
        while index < bytes.len() && alphanumeric(bytes[index]) {
            index += 1;
        }
        if index == start {
            return false;
        }
        if index == bytes.len() {
            return true;
        }
        let separator_start = index;
        match bytes[index] {
            b'.' => index += 1,
            b'_' => {
                index += 1;
                if index < bytes.len() && bytes[index] == b'_' {
                    index += 1;
                }
            }
            b'-' => {
                while index < bytes.len() && bytes[index] == b'-' {
                    index += 1;
                }
            }
            _ => return false,
        }
        if index == separator_start || index == bytes.len() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RegistryReference {
        text.parse()
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn ok_docker_hub_short_forms() {
        let reference = parse("python:3.12");
        assert_eq!(reference.registry, "docker.io");
        assert_eq!(reference.repository, "library/python");
        assert_eq!(reference.tag.as_deref(), Some("3.12"));
        assert_eq!(reference.api_host(), "registry-1.docker.io");
        assert_eq!(reference.to_string(), "docker.io/library/python:3.12");

        let reference = parse("team/app");
        assert_eq!(reference.registry, "docker.io");
        assert_eq!(reference.repository, "team/app");
        assert_eq!(reference.tag, None);
        assert_eq!(reference.tag_or_latest(), "latest");
        assert_eq!(reference.manifest_reference(), "latest");

        assert_eq!(parse("docker.io/python").repository, "library/python");
        assert_eq!(parse("index.docker.io/python").registry, "docker.io");
    }

    #[test]
    fn ok_hosts_ports_and_digests() {
        let reference = parse("docker://127.0.0.1:5000/team/app:v1");
        assert_eq!(reference.registry, "127.0.0.1:5000");
        assert_eq!(reference.repository, "team/app");
        assert_eq!(reference.tag.as_deref(), Some("v1"));
        assert_eq!(reference.api_host(), "127.0.0.1:5000");

        let reference = parse("localhost/app");
        assert_eq!(reference.registry, "localhost");
        assert_eq!(reference.repository, "app");

        let reference = parse("registry:5000/app");
        assert_eq!(reference.registry, "registry:5000");

        let hex = "a".repeat(64);
        let reference = parse(&format!("ghcr.io/o/r:1.0@sha256:{hex}"));
        assert_eq!(reference.tag.as_deref(), Some("1.0"));
        assert_eq!(reference.digest.unwrap().hex(), hex);
        assert_eq!(reference.manifest_reference(), format!("sha256:{hex}"));

        let reference = parse(&format!("[::1]:5000/r@sha256:{hex}"));
        assert_eq!(reference.registry, "[::1]:5000");
        assert_eq!(reference.tag, None);
    }

    #[test]
    fn ok_canonical_ignores_how_the_reference_was_spelled() {
        let hex = "b".repeat(64);
        for (spellings, canonical) in [
            (
                &[
                    "python:3.12",
                    "docker.io/library/python:3.12",
                    "docker://python:3.12",
                ][..],
                "docker.io/library/python:3.12",
            ),
            (
                &["team/app", "docker.io/team/app:latest"][..],
                "docker.io/team/app:latest",
            ),
            (
                &[
                    "docker://127.0.0.1:5000/base:py311",
                    "127.0.0.1:5000/base:py311",
                ][..],
                "127.0.0.1:5000/base:py311",
            ),
        ] {
            for spelling in spellings {
                assert_eq!(parse(spelling).canonical(), canonical, "{spelling}");
            }
        }
        assert_eq!(
            parse(&format!("ghcr.io/o/r@sha256:{hex}")).canonical(),
            format!("ghcr.io/o/r@sha256:{hex}")
        );
        // A tag names what the user meant; the digest has its own annotation.
        assert_eq!(
            parse(&format!("ghcr.io/o/r:1.0@sha256:{hex}")).canonical(),
            "ghcr.io/o/r:1.0"
        );
    }

    #[test]
    fn display_round_trips() {
        let hex = "0".repeat(64);
        for text in [
            "python",
            "python:3.12",
            "team/app:v1",
            "docker://ghcr.io/o/r:1.0",
            "127.0.0.1:5000/a/b/c",
            "localhost:5000/a__b.c-d:latest",
            &format!("quay.io/o/r@sha256:{hex}"),
            &format!("quay.io/o/r:t@sha256:{hex}"),
        ] {
            let reference = parse(text);
            let again = parse(&reference.to_string());
            assert_eq!(again, reference, "{text}");
            assert_eq!(again.to_string(), reference.to_string());
        }
    }

    #[test]
    fn err_invalid_references() {
        let cases = [
            ("", "empty"),
            ("docker://", "empty"),
            ("Team/App", "uppercase"),
            ("ghcr.io/team/App:1", "uppercase"),
            ("ghcr.io/a//b", "empty path component"),
            ("ghcr.io/a-/b", "not a valid path component"),
            ("ghcr.io/a/b:-x", "invalid tag"),
            ("ghcr.io/a/b:", "invalid tag"),
            ("ghcr.io/a/b@sha256:abc", "invalid digest"),
            ("ghcr.io/a/b@sha512:abc", "invalid digest"),
            ("bad_host.io/a", "not a valid `host[:port]`"),
            ("host.io:port/a", "not a valid `host[:port]`"),
        ];
        for (text, expected) in cases {
            let error = text.parse::<RegistryReference>().unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
        let long = format!("ghcr.io/{}", "a".repeat(260));
        assert!(long.parse::<RegistryReference>().is_err());
    }
}
