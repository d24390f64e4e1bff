//! The build target: Python version and implementation, OS/architecture and libc.
//! From it come the PEP 508 marker environment and the ordered list of wheel tags the
//! target supports ([`TagSet`]). `select` picks one wheel per package; `detect` reads
//! the target's facts from a base image's files. Everything here describes the
//! *target*: nothing reads the build host (standards §0.2).
//!
//! Only CPython 3 on Linux is supported, as a non-debug, GIL-enabled build.

pub mod detect;
pub mod select;
mod tags;

use std::fmt;
use std::str::FromStr;

pub use tags::TagSet;

/// An OCI platform: `os/architecture[/variant]`, e.g. `linux/amd64`, `linux/arm64/v8`.
///
/// [`FromStr`] normalizes the way containerd does, so that one platform has one
/// spelling: `linux/arm64/v8` becomes `linux/arm64` (no variant: `v8` is the only
/// 64-bit ARM variant wheels care about), and `linux/arm` becomes `linux/arm/v7`.
/// Values built by hand or read from an image index may still carry `arm64/v8`;
/// every method here treats both the same.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// OCI `os`, e.g. `linux`.
    pub os: String,
    /// OCI `architecture`, e.g. `amd64`.
    pub architecture: String,
    /// OCI `variant`, e.g. `v7`.
    pub variant: Option<String>,
}

/// A platform string that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformParseError {
    /// Not `os/architecture` or `os/architecture/variant`.
    #[error(
        "invalid platform `{text}`: expected `os/architecture[/variant]`, e.g. `linux/amd64` or `linux/arm64`"
    )]
    InvalidFormat {
        /// What was given.
        text: String,
    },
    /// An OS other than `linux`.
    #[error(
        "unsupported platform `{text}`: envbuild builds Linux images only; use `linux/<architecture>`"
    )]
    UnsupportedOs {
        /// What was given.
        text: String,
    },
    /// An architecture envbuild has no wheel tags for.
    #[error(
        "unsupported platform `{text}`: unknown architecture `{architecture}`{}; supported: linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6, linux/386, linux/ppc64le, linux/s390x, linux/riscv64",
        oci_hint(architecture)
    )]
    UnsupportedArchitecture {
        /// What was given.
        text: String,
        /// The architecture part.
        architecture: String,
    },
    /// A variant that does not exist for the architecture, or that envbuild does not
    /// support.
    #[error(
        "unsupported platform `{text}`: variant `{variant}` is not supported for architecture `{architecture}`"
    )]
    UnsupportedVariant {
        /// What was given.
        text: String,
        /// The architecture part.
        architecture: String,
        /// The variant part.
        variant: String,
    },
}

/// When someone writes a Python/uname machine name where OCI wants its own name.
fn oci_hint(architecture: &str) -> String {
    let oci = match architecture {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "armv7l" | "armhf" => "arm/v7",
        "i686" | "i386" | "x86" => "386",
        _ => return String::new(),
    };
    format!(" (OCI calls it `{oci}`: use `linux/{oci}`)")
}

impl FromStr for Platform {
    type Err = PlatformParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split('/').collect();
        let (os, architecture, variant) = match parts[..] {
            [os, architecture] if !os.is_empty() && !architecture.is_empty() => {
                (os, architecture, None)
            }
            [os, architecture, variant]
                if !os.is_empty() && !architecture.is_empty() && !variant.is_empty() =>
            {
                (os, architecture, Some(variant))
            }
            _ => {
                return Err(PlatformParseError::InvalidFormat {
                    text: text.to_string(),
                });
            }
        };
        if os != "linux" {
            return Err(PlatformParseError::UnsupportedOs {
                text: text.to_string(),
            });
        }
        let unsupported_variant = |variant: &str| PlatformParseError::UnsupportedVariant {
            text: text.to_string(),
            architecture: architecture.to_string(),
            variant: variant.to_string(),
        };
        let variant = match (architecture, variant) {
            // amd64 microarchitecture levels (GOAMD64); wheels do not distinguish them.
            ("amd64", None | Some("v1" | "v2" | "v3" | "v4")) => variant,
            // containerd's normalization: `arm64/v8` is plain `arm64`.
            ("arm64", None | Some("v8")) => None,
            ("arm", None | Some("v7")) => Some("v7"),
            ("arm", Some("v6")) => Some("v6"),
            ("386" | "ppc64le" | "s390x" | "riscv64", None) => None,
            (
                "amd64" | "arm64" | "arm" | "386" | "ppc64le" | "s390x" | "riscv64",
                Some(variant),
            ) => {
                return Err(unsupported_variant(variant));
            }
            _ => {
                return Err(PlatformParseError::UnsupportedArchitecture {
                    text: text.to_string(),
                    architecture: architecture.to_string(),
                });
            }
        };
        Ok(Self {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Python's `platform.machine()` on this platform (the PEP 508 `platform_machine`
    /// and the `<arch>` of `manylinux_*_<arch>` tags): `amd64` → `x86_64`, `arm64` →
    /// `aarch64`, `arm/v7` (or `arm` alone) → `armv7l`, `arm/v6` → `armv6l`, `386` →
    /// `i686`; `ppc64le`, `s390x` and `riscv64` keep their names. An architecture not
    /// in this list (only possible for a hand-built value) is returned unchanged.
    pub fn python_machine(&self) -> &str {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("amd64", _) => "x86_64",
            ("arm64", _) => "aarch64",
            ("arm", Some("v6")) => "armv6l",
            ("arm", _) => "armv7l",
            ("386", _) => "i686",
            (other, _) => other,
        }
    }
}

/// The C library of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Libc {
    /// GNU libc `major.minor` (manylinux wheels).
    Glibc {
        /// Major version.
        major: u32,
        /// Minor version.
        minor: u32,
    },
    /// musl `major.minor` (musllinux wheels).
    Musl {
        /// Major version.
        major: u32,
        /// Minor version.
        minor: u32,
    },
}

/// A libc version that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LibcError {
    /// Not `<family> X.Y`.
    #[error(
        "invalid libc `{text}`: expected `glibc X.Y` or `musl X.Y`, e.g. `glibc 2.36` or `musl 1.2`"
    )]
    InvalidFormat {
        /// What was given.
        text: String,
    },
    /// Not `major.minor` with two numbers.
    #[error("invalid {family} version `{text}`: expected `major.minor`, e.g. `{example}`")]
    InvalidVersion {
        /// `glibc` or `musl`.
        family: &'static str,
        /// What was given.
        text: String,
        /// A valid example.
        example: &'static str,
    },
    /// A major version that has no wheel tags (glibc other than 2, musl other than 1).
    #[error("unsupported {family} version `{text}`: wheels exist only for {family} {expected}.x")]
    UnsupportedMajor {
        /// `glibc` or `musl`.
        family: &'static str,
        /// What was given.
        text: String,
        /// The one supported major.
        expected: u32,
    },
}

fn parse_major_minor(
    text: &str,
    family: &'static str,
    example: &'static str,
    expected_major: u32,
) -> Result<(u32, u32), LibcError> {
    let invalid = || LibcError::InvalidVersion {
        family,
        text: text.to_string(),
        example,
    };
    let (major, minor) = text.trim().split_once('.').ok_or_else(invalid)?;
    let number = |part: &str| -> Result<u32, LibcError> {
        if part.is_empty() || !part.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(invalid());
        }
        part.parse().map_err(|_| invalid())
    };
    let (major, minor) = (number(major)?, number(minor)?);
    if major != expected_major {
        return Err(LibcError::UnsupportedMajor {
            family,
            text: text.to_string(),
            expected: expected_major,
        });
    }
    Ok((major, minor))
}

impl Libc {
    /// glibc from a `--glibc` value such as `2.36`.
    pub fn glibc(version: &str) -> Result<Self, LibcError> {
        let (major, minor) = parse_major_minor(version, "glibc", "2.36", 2)?;
        Ok(Self::Glibc { major, minor })
    }

    /// musl from a `--musl` value such as `1.2`.
    pub fn musl(version: &str) -> Result<Self, LibcError> {
        let (major, minor) = parse_major_minor(version, "musl", "1.2", 1)?;
        Ok(Self::Musl { major, minor })
    }
}

/// `glibc 2.36` or `musl 1.2` (a `-` in place of the space is accepted too).
impl FromStr for Libc {
    type Err = LibcError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || LibcError::InvalidFormat {
            text: text.to_string(),
        };
        let (family, version) = text.trim().split_once([' ', '-']).ok_or_else(invalid)?;
        match family {
            "glibc" => Self::glibc(version),
            "musl" => Self::musl(version),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for Libc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Glibc { major, minor } => write!(f, "glibc {major}.{minor}"),
            Self::Musl { major, minor } => write!(f, "musl {major}.{minor}"),
        }
    }
}

/// A CPython version: `major.minor` and, when known, the patch level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PythonVersion {
    /// Major (3).
    pub major: u32,
    /// Minor (e.g. 11).
    pub minor: u32,
    /// Patch, when known.
    pub patch: Option<u32>,
}

/// A Python version that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PythonVersionError {
    /// Not `X.Y` or `X.Y.Z` with numbers.
    #[error("invalid Python version `{text}`: expected `3.Y` or `3.Y.Z`, e.g. `3.12` or `3.12.7`")]
    InvalidFormat {
        /// What was given.
        text: String,
    },
    /// A major version other than 3.
    #[error("unsupported Python version `{text}`: envbuild targets CPython 3 only")]
    UnsupportedMajor {
        /// What was given.
        text: String,
    },
}

impl FromStr for PythonVersion {
    type Err = PythonVersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || PythonVersionError::InvalidFormat {
            text: text.to_string(),
        };
        let numbers = text
            .split('.')
            .map(|part| {
                if part.is_empty() || !part.bytes().all(|byte| byte.is_ascii_digit()) {
                    return Err(invalid());
                }
                part.parse::<u32>().map_err(|_| invalid())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (major, minor, patch) = match numbers[..] {
            [major, minor] => (major, minor, None),
            [major, minor, patch] => (major, minor, Some(patch)),
            _ => return Err(invalid()),
        };
        if major != 3 {
            return Err(PythonVersionError::UnsupportedMajor {
                text: text.to_string(),
            });
        }
        Ok(Self {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for PythonVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(patch) = self.patch {
            write!(f, ".{patch}")?;
        }
        Ok(())
    }
}

/// The complete build target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// OCI platform.
    pub platform: Platform,
    /// Python version.
    pub python: PythonVersion,
    /// libc.
    pub libc: Libc,
    /// Accept plain `linux_<arch>` wheels (off by default: they are not portable).
    pub allow_linux_tag: bool,
}

impl Target {
    /// The PEP 508 marker environment of the target (standards §4.5), never the host's.
    ///
    /// `python_full_version` and `implementation_version` are `X.Y.Z`; when the patch
    /// level is unknown they use `X.Y.0`, so markers such as
    /// `python_full_version >= '3.11.4'` evaluate as on the oldest release of the minor
    /// version. `platform_release` and `platform_version` (the kernel's) are unknown
    /// when building an image and are empty strings, as uv does for cross targets.
    pub fn marker_environment(&self) -> uv_pep508::MarkerEnvironment {
        let python_version = format!("{}.{}", self.python.major, self.python.minor);
        let full_version = format!("{python_version}.{}", self.python.patch.unwrap_or(0));
        let builder = uv_pep508::MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: &full_version,
            os_name: "posix",
            platform_machine: self.platform.python_machine(),
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: "Linux",
            platform_version: "",
            python_full_version: &full_version,
            python_version: &python_version,
            sys_platform: "linux",
        };
        uv_pep508::MarkerEnvironment::try_from(builder)
            .expect("`X.Y` and `X.Y.Z` built from integers are always valid PEP 440 versions")
    }

    /// The wheel tags the target supports, most preferred first.
    pub fn tags(&self) -> TagSet {
        TagSet::for_target(self)
    }
}

/// `CPython 3.12 on linux/amd64 with glibc 2.36`, for messages.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CPython {} on {} with {}",
            self.python, self.platform, self.libc
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(text: &str) -> Platform {
        text.parse().unwrap()
    }

    pub(crate) fn target(python: &str, platform_text: &str, libc: &str) -> Target {
        Target {
            platform: platform(platform_text),
            python: python.parse().unwrap(),
            libc: libc.parse().unwrap(),
            allow_linux_tag: false,
        }
    }

    #[test]
    fn ok_platform_parse_and_machine() {
        for (text, shown, machine) in [
            ("linux/amd64", "linux/amd64", "x86_64"),
            ("linux/amd64/v3", "linux/amd64/v3", "x86_64"),
            ("linux/arm64", "linux/arm64", "aarch64"),
            ("linux/arm64/v8", "linux/arm64", "aarch64"),
            ("linux/arm/v7", "linux/arm/v7", "armv7l"),
            ("linux/arm", "linux/arm/v7", "armv7l"),
            ("linux/arm/v6", "linux/arm/v6", "armv6l"),
            ("linux/386", "linux/386", "i686"),
            ("linux/ppc64le", "linux/ppc64le", "ppc64le"),
            ("linux/s390x", "linux/s390x", "s390x"),
            ("linux/riscv64", "linux/riscv64", "riscv64"),
        ] {
            let parsed = platform(text);
            assert_eq!(parsed.to_string(), shown, "{text}");
            assert_eq!(parsed.python_machine(), machine, "{text}");
            // Display and FromStr round-trip.
            assert_eq!(platform(&parsed.to_string()), parsed, "{text}");
        }
    }

    #[test]
    fn ok_hand_built_arm64_v8_machine() {
        let parsed = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        };
        assert_eq!(parsed.python_machine(), "aarch64");
    }

    #[test]
    fn err_platform() {
        assert!(matches!(
            "amd64".parse::<Platform>(),
            Err(PlatformParseError::InvalidFormat { .. })
        ));
        assert!(matches!(
            "linux//v7".parse::<Platform>(),
            Err(PlatformParseError::InvalidFormat { .. })
        ));
        assert!(matches!(
            "linux/a/b/c".parse::<Platform>(),
            Err(PlatformParseError::InvalidFormat { .. })
        ));
        assert!(matches!(
            "windows/amd64".parse::<Platform>(),
            Err(PlatformParseError::UnsupportedOs { .. })
        ));
        assert!(matches!(
            "linux/arm64/v7".parse::<Platform>(),
            Err(PlatformParseError::UnsupportedVariant { .. })
        ));
        assert!(matches!(
            "linux/arm/v5".parse::<Platform>(),
            Err(PlatformParseError::UnsupportedVariant { .. })
        ));
        let error = "linux/x86_64".parse::<Platform>().unwrap_err();
        assert!(matches!(
            error,
            PlatformParseError::UnsupportedArchitecture { .. }
        ));
        assert!(error.to_string().contains("use `linux/amd64`"), "{error}");
    }

    #[test]
    fn ok_python_version_round_trip() {
        for text in ["3.11", "3.11.7", "3.9.0", "3.13.12"] {
            let version: PythonVersion = text.parse().unwrap();
            assert_eq!(version.to_string(), text);
        }
        assert_eq!(
            "3.12.1".parse::<PythonVersion>().unwrap(),
            PythonVersion {
                major: 3,
                minor: 12,
                patch: Some(1)
            }
        );
    }

    #[test]
    fn err_python_version() {
        for text in ["3", "3.", "3.x", "3.11.7.1", "", "3.11rc1", " 3.11"] {
            assert!(
                matches!(
                    text.parse::<PythonVersion>(),
                    Err(PythonVersionError::InvalidFormat { .. })
                ),
                "{text}"
            );
        }
        assert!(matches!(
            "2.7".parse::<PythonVersion>(),
            Err(PythonVersionError::UnsupportedMajor { .. })
        ));
    }

    #[test]
    fn ok_libc() {
        assert_eq!(
            Libc::glibc("2.36").unwrap(),
            Libc::Glibc {
                major: 2,
                minor: 36
            }
        );
        assert_eq!(
            Libc::musl("1.2").unwrap(),
            Libc::Musl { major: 1, minor: 2 }
        );
        for text in ["glibc 2.36", "musl 1.2", "glibc 2.5"] {
            let libc: Libc = text.parse().unwrap();
            assert_eq!(libc.to_string(), text);
        }
        assert_eq!(
            "glibc-2.28".parse::<Libc>().unwrap(),
            Libc::Glibc {
                major: 2,
                minor: 28
            }
        );
    }

    #[test]
    fn err_libc() {
        assert!(matches!(
            Libc::glibc("2"),
            Err(LibcError::InvalidVersion { .. })
        ));
        assert!(matches!(
            Libc::glibc("2.x"),
            Err(LibcError::InvalidVersion { .. })
        ));
        assert!(matches!(
            Libc::glibc("3.1"),
            Err(LibcError::UnsupportedMajor { .. })
        ));
        assert!(matches!(
            Libc::musl("2.0"),
            Err(LibcError::UnsupportedMajor { .. })
        ));
        assert!(matches!(
            "uclibc 1.0".parse::<Libc>(),
            Err(LibcError::InvalidFormat { .. })
        ));
        assert!(matches!(
            "glibc".parse::<Libc>(),
            Err(LibcError::InvalidFormat { .. })
        ));
        let error = Libc::musl("1.2.4").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid musl version `1.2.4`: expected `major.minor`, e.g. `1.2`"
        );
    }

    #[test]
    fn ok_marker_environment() {
        let environment = target("3.12.7", "linux/arm64", "glibc 2.36").marker_environment();
        assert_eq!(environment.os_name(), "posix");
        assert_eq!(environment.sys_platform(), "linux");
        assert_eq!(environment.platform_system(), "Linux");
        assert_eq!(environment.platform_machine(), "aarch64");
        assert_eq!(environment.platform_python_implementation(), "CPython");
        assert_eq!(environment.implementation_name(), "cpython");
        assert_eq!(environment.python_version().string, "3.12");
        assert_eq!(environment.python_full_version().string, "3.12.7");
        assert_eq!(environment.implementation_version().string, "3.12.7");
        assert_eq!(environment.platform_release(), "");
        assert_eq!(
            environment.get_string(uv_pep508::CanonicalMarkerValueString::PlatformVersion),
            ""
        );
    }

    #[test]
    fn ok_marker_environment_unknown_patch_is_zero() {
        let environment = target("3.11", "linux/amd64", "musl 1.2").marker_environment();
        assert_eq!(environment.python_full_version().string, "3.11.0");
        assert_eq!(environment.platform_machine(), "x86_64");
    }

    #[test]
    fn ok_target_display() {
        let shown = target("3.12", "linux/amd64", "glibc 2.36").to_string();
        assert_eq!(shown, "CPython 3.12 on linux/amd64 with glibc 2.36");
    }
}
