//! The target of one platform's build: what the base image's files say (interpreter,
//! Python version, C library) reconciled with what the user passed (`--python`,
//! `--glibc`/`--musl`, `--interpreter`, `--platform`).
//!
//! A flag may fill in what the base cannot tell (a base whose interpreter cannot be read),
//! or agree with it; it may not contradict it. An image built for another Python than the
//! one its base runs cannot import a single package, so a contradiction is an error that
//! names both values and where each came from, unless `--force-target` says the user knows
//! better (the report then records it). A flag that agrees but is less precise (`--python
//! 3.13` on a 3.13.5 base) takes the base's precise value; a patch level the base does not
//! name is taken from the flag, because it changes `python_full_version` markers.

use std::path::PathBuf;

use serde::Serialize;

use crate::cache::{Cache, EntryKind};
use crate::digest::Sha256Digest;
use crate::oci::BaseImage;
use crate::platform::detect::{DetectError, DetectedBase, detect_base};
use crate::platform::{Libc, Platform, PythonVersion, Target};

/// What the user asked for the target; unset fields are detected from the base image.
#[derive(Debug, Clone, Default)]
pub struct TargetOverrides {
    /// `--platform`.
    pub platform: Option<Platform>,
    /// `--python`.
    pub python: Option<PythonVersion>,
    /// `--glibc` / `--musl`.
    pub libc: Option<Libc>,
    /// `--interpreter`: the base image's Python, as an absolute path in the image.
    pub interpreter: Option<String>,
    /// `--allow-linux-tag`.
    pub allow_linux_tag: bool,
    /// `--force-target`: let the flags win over what the base image's files say.
    pub force: bool,
}

/// Where a target value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Read from the base image (its config or its files).
    Base,
    /// Given on the command line.
    Flag,
}

/// One value of the target and its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sourced {
    /// The value, e.g. `3.11.2`, `/usr/bin/python3.11`, `linux/amd64`.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// The C library of the target, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LibcReport {
    /// `glibc` or `musl`.
    pub kind: &'static str,
    /// `major.minor`.
    pub version: String,
    /// Where it came from.
    pub source: Source,
}

/// The whole target of one image, with the source of every value
/// (`schemas/report.schema.json`, `target`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetReport {
    /// Always `cpython`.
    pub implementation: &'static str,
    /// The Python version.
    pub python: Sourced,
    /// The interpreter's path in the image.
    pub interpreter: Sourced,
    /// The OCI platform.
    pub platform: Sourced,
    /// The C library.
    pub libc: LibcReport,
    /// `--force-target` was given and overrode what the base image says.
    pub forced: bool,
}

/// A target fact that neither the base image told nor a flag gave, or a flag that
/// contradicts the base image.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The base image's files could not be read.
    #[error(transparent)]
    Detect(#[from] DetectError),
    /// A fact could be neither detected nor was it given.
    #[error("cannot tell the target's {what} from base image `{base}`: pass {flag}")]
    Undetected {
        /// What is missing.
        what: &'static str,
        /// The base reference.
        base: String,
        /// The flag that supplies it.
        flag: &'static str,
    },
    /// A flag says one thing, the base image another.
    #[error(
        "`{flag}` contradicts base image `{base}`: the flag says {given}, but {found}; an image built this way cannot import its packages. Leave `{flag}` out to build for what the base holds, use a base that holds {given}, or pass `--force-target` if the base's files are misleading"
    )]
    Contradiction {
        /// The flag as typed, e.g. `--python 3.12`.
        flag: String,
        /// The base reference.
        base: String,
        /// What the flag says, e.g. `Python 3.12`.
        given: String,
        /// What the base says and where, e.g. ``its interpreter `/usr/bin/python3.13` is Python 3.13.5``.
        found: String,
    },
}

/// A resolved target with the interpreter path and the report of where it all came from.
#[derive(Debug, Clone)]
pub struct ResolvedTarget {
    /// The target wheels are chosen for.
    pub target: Target,
    /// The interpreter's absolute path in the image.
    pub interpreter: String,
    /// Every value with its source.
    pub report: TargetReport,
}

/// Reconcile `overrides` with what `base`'s files say (detection is remembered in
/// `cache`). See the module documentation for the rules.
pub fn resolve_target(
    overrides: &TargetOverrides,
    base: &BaseImage,
    cache: &Cache,
) -> Result<ResolvedTarget, TargetError> {
    let detected = match detect_cached(cache, base, overrides.interpreter.as_deref()) {
        Ok(detected) => detected,
        // A base envbuild cannot read: the flags must say everything, and are trusted.
        Err(DetectError::UnsupportedCompression { .. }) => DetectedBase::default(),
        Err(error) => return Err(error.into()),
    };
    let base_name = base.reference.clone();
    let missing = |what, flag| TargetError::Undetected {
        what,
        base: base_name.clone(),
        flag,
    };
    let interpreter_path = detected.interpreter.clone();
    let contradiction = |flag: String, given: String, found: String| TargetError::Contradiction {
        flag,
        base: base_name.clone(),
        given,
        found,
    };
    let mut forced = false;

    let python = match (overrides.python, detected.python) {
        (None, None) => return Err(missing("Python version", "`--python X.Y`")),
        (None, Some(found)) => (found, Source::Base),
        (Some(given), None) => (given, Source::Flag),
        (Some(given), Some(found)) => {
            let patch_differs = matches!((given.patch, found.patch), (Some(a), Some(b)) if a != b);
            if (given.major, given.minor) != (found.major, found.minor) || patch_differs {
                if !overrides.force {
                    return Err(contradiction(
                        format!("--python {given}"),
                        format!("Python {given}"),
                        format!(
                            "its interpreter `{}` is Python {found}",
                            interpreter_path.as_deref().unwrap_or("?")
                        ),
                    ));
                }
                forced = true;
                (given, Source::Flag)
            } else if found.patch.is_none() && given.patch.is_some() {
                (given, Source::Flag)
            } else {
                (found, Source::Base)
            }
        }
    };

    let libc = match (overrides.libc, detected.libc) {
        (None, None) => {
            return Err(missing("C library", "`--glibc X.Y` or `--musl X.Y`"));
        }
        (None, Some(found)) => (found, Source::Base),
        (Some(given), None) => (given, Source::Flag),
        (Some(given), Some(found)) if given == found => (found, Source::Base),
        (Some(given), Some(found)) => {
            if !overrides.force {
                let flag = match given {
                    Libc::Glibc { major, minor } => format!("--glibc {major}.{minor}"),
                    Libc::Musl { major, minor } => format!("--musl {major}.{minor}"),
                };
                return Err(contradiction(
                    flag,
                    given.to_string(),
                    format!("its C library is {found}"),
                ));
            }
            forced = true;
            (given, Source::Flag)
        }
    };

    // An `--interpreter` the base holds was checked by detection (it exists, and its
    // name agrees with what it is); one the base cannot show is taken as given.
    let interpreter = match (&overrides.interpreter, detected.interpreter) {
        (Some(given), _) => (given.clone(), Source::Flag),
        (None, Some(found)) => (found, Source::Base),
        (None, None) => {
            return Err(missing(
                "Python interpreter",
                "`--interpreter /path/to/python3.X`",
            ));
        }
    };

    let platform = match &overrides.platform {
        Some(given) => (given.clone(), Source::Flag),
        None => (base.platform.clone(), Source::Base),
    };

    let report = TargetReport {
        implementation: "cpython",
        python: Sourced {
            value: python.0.to_string(),
            source: python.1,
        },
        interpreter: Sourced {
            value: interpreter.0.clone(),
            source: interpreter.1,
        },
        platform: Sourced {
            value: platform.0.to_string(),
            source: platform.1,
        },
        libc: LibcReport {
            kind: match libc.0 {
                Libc::Glibc { .. } => "glibc",
                Libc::Musl { .. } => "musl",
            },
            version: match libc.0 {
                Libc::Glibc { major, minor } | Libc::Musl { major, minor } => {
                    format!("{major}.{minor}")
                }
            },
            source: libc.1,
        },
        forced,
    };
    if forced {
        tracing::warn!(
            "--force-target: building for {} with {} although base image `{}` says otherwise",
            report.python.value,
            libc.0,
            base.reference
        );
    }
    Ok(ResolvedTarget {
        target: Target {
            platform: platform.0,
            python: python.0,
            libc: libc.0,
            allow_linux_tag: overrides.allow_linux_tag,
        },
        interpreter: interpreter.0,
        report,
    })
}

/// A target for `fetch` and `check` runs without a base image: everything from flags
/// (the platform defaults to `linux/amd64`).
pub fn target_without_base(overrides: &TargetOverrides) -> Result<Target, TargetError> {
    let missing = |what, flag| TargetError::Undetected {
        what,
        base: "(none given)".to_string(),
        flag,
    };
    Ok(Target {
        platform: overrides.platform.clone().unwrap_or_else(|| Platform {
            os: "linux".to_string(),
            architecture: "amd64".to_string(),
            variant: None,
        }),
        python: overrides
            .python
            .ok_or_else(|| missing("Python version", "`--python X.Y` or `--base REF`"))?,
        libc: overrides
            .libc
            .ok_or_else(|| missing("C library", "`--glibc X.Y`, `--musl X.Y` or `--base REF`"))?,
        allow_linux_tag: overrides.allow_linux_tag,
    })
}

/// [`detect_base`], remembered in the cache per base image and `--interpreter`:
/// detection streams every base layer through a decompressor, which would otherwise
/// dominate warm builds. The key is everything detection reads: the config's `Env`, the
/// layers' diff_ids and the interpreter asked for.
fn detect_cached(
    cache: &Cache,
    base: &BaseImage,
    interpreter: Option<&str>,
) -> Result<DetectedBase, DetectError> {
    #[derive(Serialize, serde::Deserialize)]
    struct Record {
        interpreter: Option<String>,
        python: Option<String>,
        libc: Option<String>,
    }
    // Version 2: interpreters are cross-checked against their link target, binary,
    // standard library and libpython.
    const DETECT_FORMAT: u32 = 2;
    let env: Vec<String> = base
        .config
        .pointer("/config/Env")
        .and_then(|value| value.as_array())
        .map(|values| {
            values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let key = Sha256Digest::of(&crate::repro::canonical_json(&(
        DETECT_FORMAT,
        &env,
        &base.diff_ids,
        interpreter,
    )));
    if let Some(record) = cache.record::<Record>("detect", &key) {
        let python = record.python.as_deref().map(str::parse).transpose();
        let libc = record.libc.as_deref().map(str::parse).transpose();
        if let (Ok(python), Ok(libc)) = (python, libc) {
            return Ok(DetectedBase {
                interpreter: record.interpreter,
                python,
                libc,
            });
        }
    }
    let layer_paths: Vec<PathBuf> = base
        .layers
        .iter()
        .map(|layer| cache.entry_path(EntryKind::Blob, &layer.digest))
        .collect();
    let detected = detect_base(&env, &layer_paths, interpreter)?;
    // A failure to remember only costs the next build a re-detection.
    if let Err(error) = cache.put_record(
        "detect",
        &key,
        &Record {
            interpreter: detected.interpreter.clone(),
            python: detected.python.map(|version| version.to_string()),
            libc: detected.libc.map(|libc| libc.to_string()),
        },
    ) {
        tracing::debug!("cannot remember the base detection in the cache: {error}");
    }
    Ok(detected)
}
