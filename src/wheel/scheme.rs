//! The install scheme of envbuild's virtual environment: where each `.data` key goes,
//! and the venv skeleton itself (`pyvenv.cfg`, `bin/python*` links, `lib64`). Paths
//! here are layer paths: relative, `/`-separated, no trailing `/`.

use std::collections::BTreeMap;

use crate::platform::PythonVersion;
use crate::wheel::archive::check_path;
use crate::wheel::error::{UnsafePathReason, WheelError};

/// Where wheels are installed: a venv at `prefix` whose `bin/python` links to the
/// base image's `interpreter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallScheme {
    /// Absolute path of the venv in the image, e.g. `/opt/venv`.
    pub prefix: String,
    /// The target interpreter's version (names `lib/python3.X`).
    pub python: PythonVersion,
    /// Absolute path of the base image's python, e.g. `/usr/bin/python3.11`.
    pub interpreter: String,
}

/// One entry of the venv skeleton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VenvEntry {
    /// A directory.
    Directory,
    /// A symbolic link to the target.
    Symlink(String),
    /// A regular file, mode 0644.
    File(Vec<u8>),
}

impl InstallScheme {
    /// Check that `prefix` and `interpreter` are absolute, normalized paths without
    /// control characters (they end up in shebangs, `pyvenv.cfg` and tar headers).
    pub fn validate(&self) -> Result<(), WheelError> {
        absolute_path(&self.prefix).map_err(|reason| WheelError::InvalidPrefix {
            prefix: self.prefix.clone(),
            reason,
        })?;
        absolute_path(&self.interpreter).map_err(|reason| WheelError::InvalidInterpreter {
            interpreter: self.interpreter.clone(),
            reason,
        })
    }

    /// The prefix as a layer path (`opt/venv`).
    pub(crate) fn root(&self) -> &str {
        self.prefix.trim_start_matches('/')
    }

    /// `python3.X`.
    fn python_dir(&self) -> String {
        format!("python{}.{}", self.python.major, self.python.minor)
    }

    /// `purelib` and `platlib`: `lib/python3.X/site-packages` (both the same in a venv).
    pub(crate) fn site_packages(&self) -> String {
        format!("{}/lib/{}/site-packages", self.root(), self.python_dir())
    }

    /// `scripts`: `bin`.
    pub(crate) fn scripts(&self) -> String {
        format!("{}/bin", self.root())
    }

    /// `headers`: pip's venv scheme, `include/site/python3.X/<dist-name>`.
    pub(crate) fn headers(&self, dist_name: &str) -> String {
        format!(
            "{}/include/site/{}/{dist_name}",
            self.root(),
            self.python_dir()
        )
    }

    /// `data`: the prefix itself.
    pub(crate) fn data(&self) -> String {
        self.root().to_string()
    }

    /// The venv's own python, which shebangs name.
    pub(crate) fn venv_python(&self) -> String {
        format!("{}/bin/python", self.prefix)
    }

    /// The venv skeleton, keyed by layer path, every parent included. PEP 405:
    /// `pyvenv.cfg` holds `home` (the folder of the base python),
    /// `include-system-site-packages` and `version`; `bin/python` links to the base
    /// interpreter and `python3`, `python3.X` link to `python`, as `venv` makes them.
    pub(crate) fn venv_layout(&self) -> BTreeMap<String, VenvEntry> {
        let root = self.root();
        let home = match self.interpreter.rsplit_once('/') {
            Some(("", _)) | None => "/",
            Some((folder, _)) => folder,
        };
        let version = match self.python.patch {
            Some(patch) => format!("{}.{}.{patch}", self.python.major, self.python.minor),
            None => format!("{}.{}", self.python.major, self.python.minor),
        };
        let config =
            format!("home = {home}\ninclude-system-site-packages = false\nversion = {version}\n");
        let mut layout = BTreeMap::new();
        let bin = self.scripts();
        layout.insert(
            format!("{bin}/python"),
            VenvEntry::Symlink(self.interpreter.clone()),
        );
        for alias in [
            format!("python{}", self.python.major),
            format!("python{}.{}", self.python.major, self.python.minor),
        ] {
            layout.insert(
                format!("{bin}/{alias}"),
                VenvEntry::Symlink("python".into()),
            );
        }
        layout.insert(self.site_packages(), VenvEntry::Directory);
        layout.insert(format!("{root}/lib64"), VenvEntry::Symlink("lib".into()));
        layout.insert(
            format!("{root}/pyvenv.cfg"),
            VenvEntry::File(config.into_bytes()),
        );
        let parents: Vec<String> = layout
            .keys()
            .flat_map(|path| parents(path).map(str::to_string))
            .collect();
        for parent in parents {
            layout.entry(parent).or_insert(VenvEntry::Directory);
        }
        layout
    }
}

/// Every proper ancestor of a layer path, shortest first: `a/b/c` gives `a`, `a/b`.
pub(crate) fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(move |(index, _)| &path[..index])
}

/// An absolute, normalized path: `/` then a valid relative path (not `/` alone).
fn absolute_path(path: &str) -> Result<(), UnsafePathReason> {
    match path.strip_prefix('/') {
        None => Err(relative_reason(path)),
        Some(rest) => check_path(rest),
    }
}

/// A relative path given where an absolute one is needed: report it as not absolute
/// unless it is also broken in another way.
fn relative_reason(path: &str) -> UnsafePathReason {
    match check_path(path) {
        Err(reason) => reason,
        Ok(()) => UnsafePathReason::Relative,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn scheme() -> InstallScheme {
        InstallScheme {
            prefix: "/opt/venv".into(),
            python: PythonVersion {
                major: 3,
                minor: 11,
                patch: Some(4),
            },
            interpreter: "/usr/bin/python3.11".into(),
        }
    }

    #[test]
    fn paths() {
        let scheme = scheme();
        assert_eq!(
            scheme.site_packages(),
            "opt/venv/lib/python3.11/site-packages"
        );
        assert_eq!(scheme.scripts(), "opt/venv/bin");
        assert_eq!(
            scheme.headers("PyYAML"),
            "opt/venv/include/site/python3.11/PyYAML"
        );
        assert_eq!(scheme.data(), "opt/venv");
        assert_eq!(parents("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
    }

    #[test]
    fn venv_layout_has_all_parents() {
        let layout = scheme().venv_layout();
        let keys: Vec<&str> = layout.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "opt",
                "opt/venv",
                "opt/venv/bin",
                "opt/venv/bin/python",
                "opt/venv/bin/python3",
                "opt/venv/bin/python3.11",
                "opt/venv/lib",
                "opt/venv/lib/python3.11",
                "opt/venv/lib/python3.11/site-packages",
                "opt/venv/lib64",
                "opt/venv/pyvenv.cfg",
            ]
        );
        assert_eq!(
            layout["opt/venv/pyvenv.cfg"],
            VenvEntry::File(
                b"home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.4\n"
                    .to_vec()
            )
        );
    }

    #[test]
    fn err_prefix_not_normalized() {
        for prefix in [
            "opt/venv",
            "/opt/../venv",
            "/opt/venv/",
            "/",
            "/opt//venv",
            "/opt/ve\nnv",
        ] {
            let scheme = InstallScheme {
                prefix: prefix.into(),
                ..scheme()
            };
            let error = scheme.validate().unwrap_err();
            assert!(
                matches!(error, WheelError::InvalidPrefix { .. }),
                "{prefix}: {error}"
            );
        }
        let scheme = InstallScheme {
            interpreter: "python3".into(),
            ..scheme()
        };
        assert!(matches!(
            scheme.validate(),
            Err(WheelError::InvalidInterpreter { .. })
        ));
    }
}
