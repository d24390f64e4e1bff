//! Wheel file names: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`
//! (binary distribution format, "File name convention"; PEP 425 compressed tag sets).
//! Pure parsing: no I/O, no knowledge of any target. Matching tags against a target is
//! `platform::TagSet`'s job.

use std::fmt;
use std::str::FromStr;

use crate::lock::PackageName;
use crate::untrusted::Untrusted;

/// A parsed wheel file name.
///
/// Tags are stored lowercased (as `packaging.tags.parse_tag` does) and split at `.`
/// (compressed tag sets, e.g. `manylinux_2_17_x86_64.manylinux2014_x86_64`), in the
/// order written. [`fmt::Display`] gives back the file name exactly as parsed, so
/// parsing and rendering round-trip even for legacy spellings such as
/// `MarkupSafe-2.1.3-….whl`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WheelFilename {
    /// The distribution name, normalized (PEP 503).
    pub name: PackageName,
    /// The version, as written (validated as PEP 440).
    pub version: String,
    /// The optional build tag (starts with a digit), as written.
    pub build_tag: Option<String>,
    /// Python tags, e.g. `["py2", "py3"]`.
    pub python_tags: Vec<String>,
    /// ABI tags, e.g. `["cp311"]`.
    pub abi_tags: Vec<String>,
    /// Platform tags, e.g. `["manylinux_2_17_x86_64", "manylinux2014_x86_64"]`.
    pub platform_tags: Vec<String>,
    /// The file name as parsed; what `Display` renders.
    original: String,
}

/// Which of the three tag positions of a wheel file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// The python tag (`cp311`, `py3`).
    Python,
    /// The ABI tag (`cp311`, `abi3`, `none`).
    Abi,
    /// The platform tag (`any`, `manylinux_2_17_x86_64`).
    Platform,
}

impl fmt::Display for TagKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Python => "python",
            Self::Abi => "ABI",
            Self::Platform => "platform",
        })
    }
}

/// A string that is not a valid wheel file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WheelFilenameError {
    /// The name does not end in `.whl`.
    #[error(
        "wheel filename `{filename}` does not end in `.whl`; a wheel is needed here, not an sdist or other archive",
        filename = Untrusted(.filename)
    )]
    MissingExtension {
        /// The rejected file name.
        filename: String,
    },
    /// Not 5 or 6 `-`-separated parts.
    #[error(
        "wheel filename `{filename}` has {parts} `-`-separated parts, but a wheel filename has 5 (`name-version-python-abi-platform.whl`) or 6 (with a build tag)",
        filename = Untrusted(.filename)
    )]
    InvalidPartCount {
        /// The rejected file name.
        filename: String,
        /// How many parts it has.
        parts: usize,
    },
    /// The distribution name is empty or contains characters other than letters,
    /// digits, `_` and `.`.
    #[error(
        "wheel filename `{filename}` has an invalid distribution name `{name}`: only letters, digits, `_` and `.` are allowed, and it must not be empty",
        filename = Untrusted(.filename), name = Untrusted(.name)
    )]
    InvalidName {
        /// The rejected file name.
        filename: String,
        /// The name part.
        name: String,
    },
    /// The version is not PEP 440.
    #[error(
        "wheel filename `{filename}` has an invalid version `{version}`: {reason}",
        filename = Untrusted(.filename), version = Untrusted(.version), reason = Untrusted(.reason)
    )]
    InvalidVersion {
        /// The rejected file name.
        filename: String,
        /// The version part.
        version: String,
        /// Why PEP 440 parsing failed.
        reason: String,
    },
    /// The build tag does not start with a digit, or its number is too large.
    #[error(
        "wheel filename `{filename}` has an invalid build tag `{build_tag}`: a build tag must start with a number (at most 20 digits) followed by letters, digits or `_`",
        filename = Untrusted(.filename), build_tag = Untrusted(.build_tag)
    )]
    InvalidBuildTag {
        /// The rejected file name.
        filename: String,
        /// The build tag part.
        build_tag: String,
    },
    /// A tag (or one member of a compressed tag set) is empty or has characters other
    /// than letters, digits and `_`.
    #[error(
        "wheel filename `{filename}` has an invalid {kind} tag `{tag}`: each `.`-separated tag must be non-empty and use only letters, digits and `_`",
        filename = Untrusted(.filename), tag = Untrusted(.tag)
    )]
    InvalidTag {
        /// The rejected file name.
        filename: String,
        /// Which tag position.
        kind: TagKind,
        /// The tag part, as written.
        tag: String,
    },
}

impl WheelFilename {
    /// Every `(python, abi, platform)` tag triple the file name covers: the cartesian
    /// product of its compressed tag sets, python-major order.
    pub fn tags(&self) -> impl Iterator<Item = (&str, &str, &str)> + '_ {
        self.python_tags.iter().flat_map(move |python| {
            self.abi_tags.iter().flat_map(move |abi| {
                self.platform_tags
                    .iter()
                    .map(move |platform| (python.as_str(), abi.as_str(), platform.as_str()))
            })
        })
    }

    /// The build tag's sort key, `(number prefix, rest)`, as the binary distribution
    /// format specifies; `None` (no build tag) sorts before every build tag, like the
    /// spec's empty tuple. A higher key is the preferred build.
    pub fn build_tag_key(&self) -> Option<(u64, &str)> {
        let tag = self.build_tag.as_deref()?;
        let digits = tag.bytes().take_while(u8::is_ascii_digit).count();
        // Validated in `from_str`: a non-empty digit prefix that fits in a u64.
        let number = tag[..digits].parse().ok()?;
        Some((number, &tag[digits..]))
    }
}

fn is_tag_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || character == '_'
}

fn split_tags(
    filename: &str,
    kind: TagKind,
    part: &str,
) -> Result<Vec<String>, WheelFilenameError> {
    part.split('.')
        .map(|tag| {
            if tag.is_empty() || !tag.chars().all(is_tag_char) {
                Err(WheelFilenameError::InvalidTag {
                    filename: filename.to_string(),
                    kind,
                    tag: part.to_string(),
                })
            } else {
                Ok(tag.to_ascii_lowercase())
            }
        })
        .collect()
}

impl FromStr for WheelFilename {
    type Err = WheelFilenameError;

    fn from_str(filename: &str) -> Result<Self, Self::Err> {
        let Some(stem) = filename.strip_suffix(".whl") else {
            return Err(WheelFilenameError::MissingExtension {
                filename: filename.to_string(),
            });
        };
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build_tag, python, abi, platform) = match parts[..] {
            [name, version, python, abi, platform] => (name, version, None, python, abi, platform),
            [name, version, build, python, abi, platform] => {
                (name, version, Some(build), python, abi, platform)
            }
            _ => {
                return Err(WheelFilenameError::InvalidPartCount {
                    filename: filename.to_string(),
                    parts: parts.len(),
                });
            }
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|character| is_tag_char(character) || character == '.')
        {
            return Err(WheelFilenameError::InvalidName {
                filename: filename.to_string(),
                name: name.to_string(),
            });
        }
        if let Err(error) = uv_pep440::Version::from_str(version) {
            return Err(WheelFilenameError::InvalidVersion {
                filename: filename.to_string(),
                version: version.to_string(),
                reason: error.to_string(),
            });
        }
        if let Some(build) = build_tag {
            let digits = build.bytes().take_while(u8::is_ascii_digit).count();
            let valid = digits > 0
                && build[..digits].parse::<u64>().is_ok()
                && build[digits..].chars().all(is_tag_char);
            if !valid {
                return Err(WheelFilenameError::InvalidBuildTag {
                    filename: filename.to_string(),
                    build_tag: build.to_string(),
                });
            }
        }
        let Ok(name) = name.parse::<PackageName>() else {
            return Err(WheelFilenameError::InvalidName {
                filename: filename.to_string(),
                name: name.to_string(),
            });
        };
        Ok(Self {
            name,
            version: version.to_string(),
            build_tag: build_tag.map(str::to_string),
            python_tags: split_tags(filename, TagKind::Python, python)?,
            abi_tags: split_tags(filename, TagKind::Abi, abi)?,
            platform_tags: split_tags(filename, TagKind::Platform, platform)?,
            original: filename.to_string(),
        })
    }
}

impl fmt::Display for WheelFilename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> WheelFilename {
        text.parse().unwrap()
    }

    #[test]
    fn ok_simple() {
        let wheel = parse("attrs-25.1.0-py3-none-any.whl");
        assert_eq!(wheel.name.as_str(), "attrs");
        assert_eq!(wheel.version, "25.1.0");
        assert_eq!(wheel.build_tag, None);
        assert_eq!(wheel.python_tags, ["py3"]);
        assert_eq!(wheel.abi_tags, ["none"]);
        assert_eq!(wheel.platform_tags, ["any"]);
        assert_eq!(wheel.tags().collect::<Vec<_>>(), [("py3", "none", "any")]);
    }

    #[test]
    fn ok_compressed_tags_expand_to_product() {
        let wheel = parse("numpy-2.2.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl");
        assert_eq!(
            wheel.tags().collect::<Vec<_>>(),
            [
                ("cp312", "cp312", "manylinux_2_17_x86_64"),
                ("cp312", "cp312", "manylinux2014_x86_64"),
            ]
        );
        let wheel = parse("six-1.16.0-py2.py3-none.abi3-any.whl");
        assert_eq!(
            wheel.tags().collect::<Vec<_>>(),
            [
                ("py2", "none", "any"),
                ("py2", "abi3", "any"),
                ("py3", "none", "any"),
                ("py3", "abi3", "any"),
            ]
        );
    }

    #[test]
    fn ok_legacy_name_normalized_display_original() {
        let text = "MarkupSafe-2.1.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
        let wheel = parse(text);
        assert_eq!(wheel.name.as_str(), "markupsafe");
        assert_eq!(wheel.to_string(), text);
        let wheel = parse("zope.interface-6.0-cp311-cp311-musllinux_1_1_x86_64.whl");
        assert_eq!(wheel.name.as_str(), "zope-interface");
    }

    #[test]
    fn ok_round_trip() {
        for text in [
            "attrs-25.1.0-py3-none-any.whl",
            "foo_bar-1.0.post1-12abc-cp39.cp310-abi3-manylinux_2_28_aarch64.whl",
            "PyYAML-6.0.1-cp311-cp311-musllinux_1_1_x86_64.whl",
        ] {
            let wheel = parse(text);
            assert_eq!(wheel.to_string(), text);
            assert_eq!(wheel.to_string().parse::<WheelFilename>().unwrap(), wheel);
        }
    }

    #[test]
    fn ok_tags_lowercased() {
        let wheel = parse("foo-1.0-CP311-None-Linux_X86_64.whl");
        assert_eq!(
            wheel.tags().collect::<Vec<_>>(),
            [("cp311", "none", "linux_x86_64")]
        );
    }

    #[test]
    fn ok_build_tag_key_orders() {
        let none = parse("foo-1.0-py3-none-any.whl");
        let one = parse("foo-1.0-1-py3-none-any.whl");
        let one_b = parse("foo-1.0-1b-py3-none-any.whl");
        let ten = parse("foo-1.0-10-py3-none-any.whl");
        assert_eq!(one_b.build_tag.as_deref(), Some("1b"));
        assert_eq!(one_b.build_tag_key(), Some((1, "b")));
        assert!(none.build_tag_key() < one.build_tag_key());
        assert!(one.build_tag_key() < one_b.build_tag_key());
        assert!(one_b.build_tag_key() < ten.build_tag_key());
    }

    #[test]
    fn err_missing_extension() {
        let error = "foo-1.0.tar.gz".parse::<WheelFilename>().unwrap_err();
        assert!(matches!(error, WheelFilenameError::MissingExtension { .. }));
        assert!(error.to_string().contains("`foo-1.0.tar.gz`"), "{error}");
    }

    #[test]
    fn err_invalid_part_count() {
        for text in [
            "foo-1.0-py3-none.whl",
            "foo-1.0-1-2-py3-none-any.whl",
            "foo-bar-1.0-1-py3-none-any.whl",
        ] {
            let error = text.parse::<WheelFilename>().unwrap_err();
            assert!(
                matches!(error, WheelFilenameError::InvalidPartCount { .. }),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn err_invalid_name() {
        let error = "-1.0-py3-none-any.whl"
            .parse::<WheelFilename>()
            .unwrap_err();
        assert!(
            matches!(error, WheelFilenameError::InvalidName { .. }),
            "{error}"
        );
        let error = "fo+o-1.0-py3-none-any.whl"
            .parse::<WheelFilename>()
            .unwrap_err();
        assert!(
            matches!(error, WheelFilenameError::InvalidName { .. }),
            "{error}"
        );
    }

    #[test]
    fn err_invalid_version() {
        let error = "foo-one-py3-none-any.whl"
            .parse::<WheelFilename>()
            .unwrap_err();
        assert!(
            matches!(error, WheelFilenameError::InvalidVersion { .. }),
            "{error}"
        );
        assert!(
            error.to_string().starts_with(
                "wheel filename `foo-one-py3-none-any.whl` has an invalid version `one`"
            )
        );
    }

    #[test]
    fn err_invalid_build_tag() {
        for text in [
            "foo-1.0-abc-py3-none-any.whl",
            "foo-1.0-99999999999999999999999-py3-none-any.whl",
        ] {
            let error = text.parse::<WheelFilename>().unwrap_err();
            assert!(
                matches!(error, WheelFilenameError::InvalidBuildTag { .. }),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn err_invalid_tag() {
        let error = "foo-1.0-py2..py3-none-any.whl"
            .parse::<WheelFilename>()
            .unwrap_err();
        assert_eq!(
            error,
            WheelFilenameError::InvalidTag {
                filename: "foo-1.0-py2..py3-none-any.whl".to_string(),
                kind: TagKind::Python,
                tag: "py2..py3".to_string(),
            }
        );
        let error = "foo-1.0-py3-none-a/b.whl"
            .parse::<WheelFilename>()
            .unwrap_err();
        assert!(
            error.to_string().contains("invalid platform tag `a/b`"),
            "{error}"
        );
    }

    #[test]
    fn err_control_characters_are_escaped_in_messages() {
        let error = "evil\x1b[2J-1.0-py3-none-any.whl\nerror: forged"
            .parse::<WheelFilename>()
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("evil\\u{1b}[2J") && message.contains("\\nerror: forged"),
            "{message}"
        );
        assert!(!message.chars().any(char::is_control), "{message}");
    }

    /// File names as lockfiles and indexes spell them, the seeds of the no-panic test.
    const SEEDS: &[&str] = &[
        "attrs-25.1.0-py3-none-any.whl",
        "MarkupSafe-2.1.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "foo_bar-1.0.post1-12abc-cp39.cp310-abi3-manylinux_2_28_aarch64.whl",
        "zope.interface-6.0-cp311-cp311-musllinux_1_1_x86_64.whl",
        "six-1.16.0-py2.py3-none.abi3-any.whl",
        "numpy-2.2.3rc1.dev4+local.7-cp312-cp312-win_amd64.whl",
        "certifi-2026.10.19.post1-py3-none-any.whl",
        "a-0!1.0a1-1-py3-none-any.whl",
    ];

    /// No input makes the parser panic; what parses renders back unchanged, with a
    /// valid build tag key; what fails says so on one printable line.
    #[test]
    fn ok_no_panic_on_generated_and_mutated_names() {
        use proptest::prelude::*;

        use crate::wheel::testing::mutate;

        let seeded = (proptest::sample::select(SEEDS), mutate::mutations(4)).prop_map(
            |(seed, mutations)| {
                let bytes = mutate::apply(seed.as_bytes().to_vec(), &mutations);
                String::from_utf8_lossy(&bytes).into_owned()
            },
        );
        let generated = "[-_.a-zA-Z0-9!+\\x00-\\x1f\\u{80}-\\u{10ffff}]{0,80}(\\.whl)?";
        let names = prop_oneof![3 => seeded, 1 => generated];
        proptest::test_runner::TestRunner::new(mutate::config(4000, 0x5eed_f11e))
            .run(&names, |text| {
                match text.parse::<WheelFilename>() {
                    Ok(parsed) => {
                        prop_assert_eq!(parsed.to_string(), text.clone());
                        prop_assert!(parsed.tags().count() >= 1);
                        prop_assert_eq!(
                            parsed.build_tag.is_some(),
                            parsed.build_tag_key().is_some()
                        );
                    }
                    Err(error) => {
                        prop_assert!(mutate::printable(&error.to_string()), "{error}");
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}
