//! Version drift across the services of a fleet: every package locked at more than one
//! version, every version locked with different bytes for one wheel file, and the
//! policy of the config's `[drift]` table (`same-version`, `allow`, `deny`) that turns
//! them into violations. `envbuild drift` prints it; `envbuild image --all` checks it
//! before building anything.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::{DriftPolicy, SameVersion};
use crate::lock::{LockedPackage, PackageSource};

/// What one service locks: package name → (version, wheel file name → SHA-256 hex).
pub type Locked = BTreeMap<String, (String, BTreeMap<String, String>)>;

/// The packages of one service's selection, as drift compares them.
pub fn locked(packages: &[LockedPackage]) -> Locked {
    packages
        .iter()
        // The project itself (a source tree) has no locked version to compare.
        .filter(|package| !matches!(package.source, PackageSource::Directory { .. }))
        .map(|package| {
            let wheels = match &package.source {
                PackageSource::Distributions { wheels, .. } => wheels
                    .iter()
                    .filter_map(|wheel| Some((wheel.filename.clone(), wheel.sha256?.hex())))
                    .collect(),
                PackageSource::Archive(artifact) => artifact
                    .sha256
                    .map(|digest| (artifact.filename.clone(), digest.hex()))
                    .into_iter()
                    .collect(),
                _ => BTreeMap::new(),
            };
            (
                package.name.to_string(),
                (package.version.clone().unwrap_or_default(), wheels),
            )
        })
        .collect()
}

/// A policy entry that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid `[drift] deny` entry `{entry}`: {reason}; write a PEP 508 requirement such as `urllib3<2`"
)]
pub struct DriftPolicyError {
    /// The entry.
    pub entry: String,
    /// Why.
    pub reason: String,
}

/// The drift matrix and what the policy makes of it (`envbuild drift --json`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DriftReport {
    /// Packages locked at more than one version: name → version → services.
    pub versions: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Same version, different bytes: `name==version` → wheel file → SHA-256 → services.
    pub hashes: BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<String>>>>,
    /// What the policy refuses, one sentence each.
    pub violations: Vec<String>,
}

/// Compare `services` (name → what it locks) under `policy`.
pub fn compare(
    services: &BTreeMap<String, Locked>,
    policy: &DriftPolicy,
) -> Result<DriftReport, DriftPolicyError> {
    let mut by_package: BTreeMap<&str, BTreeMap<&str, Vec<String>>> = BTreeMap::new();
    let mut files: BTreeMap<String, BTreeMap<&str, BTreeMap<&str, Vec<String>>>> = BTreeMap::new();
    for (service, packages) in services {
        for (name, (version, wheels)) in packages {
            by_package
                .entry(name)
                .or_default()
                .entry(version)
                .or_default()
                .push(service.clone());
            for (file, hash) in wheels {
                files
                    .entry(format!("{name}=={version}"))
                    .or_default()
                    .entry(file)
                    .or_default()
                    .entry(hash)
                    .or_default()
                    .push(service.clone());
            }
        }
    }
    let mut report = DriftReport::default();
    for (name, versions) in &by_package {
        if versions.len() > 1 {
            report.versions.insert(
                name.to_string(),
                versions
                    .iter()
                    .map(|(version, services)| (version.to_string(), services.clone()))
                    .collect(),
            );
        }
    }
    for (package, wheel_files) in files {
        let split: BTreeMap<String, BTreeMap<String, Vec<String>>> = wheel_files
            .into_iter()
            .filter(|(_, hashes)| hashes.len() > 1)
            .map(|(file, hashes)| {
                (
                    file.to_string(),
                    hashes
                        .into_iter()
                        .map(|(hash, services)| (hash.to_string(), services))
                        .collect(),
                )
            })
            .collect();
        if !split.is_empty() {
            report.violations.push(format!(
                "`{package}` is locked with different bytes for {} by {}; re-lock so the services agree on the files",
                split.keys().map(|file| format!("`{file}`")).collect::<Vec<_>>().join(", "),
                split
                    .values()
                    .flat_map(|hashes| hashes.values().flatten())
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            report.hashes.insert(package, split);
        }
    }
    let same_version = |name: &str| match &policy.same_version {
        None => true,
        Some(SameVersion::All(text)) => text == "*",
        Some(SameVersion::Packages(names)) => names.iter().any(|listed| normalize(listed) == name),
    };
    for (name, versions) in &report.versions {
        if !same_version(name) {
            continue;
        }
        let allowed: BTreeSet<&str> = policy
            .allow
            .iter()
            .flatten()
            .filter(|allow| normalize(&allow.name) == *name)
            .flat_map(|allow| allow.services.iter().map(String::as_str))
            .collect();
        // The services not allowed a version of their own must agree.
        let constrained: BTreeMap<&str, Vec<&String>> = versions
            .iter()
            .map(|(version, services)| {
                (
                    version.as_str(),
                    services
                        .iter()
                        .filter(|service| !allowed.contains(service.as_str()))
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, services)| !services.is_empty())
            .collect();
        if constrained.len() > 1 {
            report.violations.push(format!(
                "`{name}` must be locked at one version, but {}; align the locks, or add `{{ name = \"{name}\", services = [...] }}` to `[drift] allow`",
                constrained
                    .iter()
                    .map(|(version, services)| format!(
                        "{} lock{} {version}",
                        services.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                        if services.len() == 1 { "s" } else { "" }
                    ))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
        }
    }
    for entry in policy.deny.iter().flatten() {
        let requirement =
            crate::lock::parse_requirement::<uv_pep508::VerbatimUrl>(entry).map_err(|error| {
                DriftPolicyError {
                    entry: entry.clone(),
                    reason: error.to_string(),
                }
            })?;
        let Some(uv_pep508::VersionOrUrl::VersionSpecifier(specifiers)) =
            &requirement.version_or_url
        else {
            return Err(DriftPolicyError {
                entry: entry.clone(),
                reason: "it has no version specifier".to_string(),
            });
        };
        let name = requirement.name.to_string();
        for (service, packages) in services {
            let Some((version, _)) = packages.get(&name) else {
                continue;
            };
            let matches = version
                .parse::<uv_pep440::Version>()
                .is_ok_and(|parsed| specifiers.contains(&parsed));
            if matches {
                report.violations.push(format!(
                    "service `{service}` locks `{name}` {version}, which `[drift] deny` refuses (`{entry}`); upgrade it in that service's lock"
                ));
            }
        }
    }
    Ok(report)
}

fn normalize(name: &str) -> String {
    name.parse::<crate::lock::PackageName>()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| name.to_lowercase())
}

impl std::fmt::Display for DriftReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.versions.is_empty() && self.hashes.is_empty() {
            writeln!(
                f,
                "every package is locked at one version across the services"
            )?;
        }
        for (name, versions) in &self.versions {
            writeln!(f, "{name}")?;
            for (version, services) in versions {
                writeln!(f, "  {version:<16} {}", services.join(", "))?;
            }
        }
        for (package, files) in &self.hashes {
            writeln!(f, "{package} (different bytes)")?;
            for (file, hashes) in files {
                for (hash, services) in hashes {
                    writeln!(f, "  {file} sha256:{hash} {}", services.join(", "))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DriftAllow;

    fn service(packages: &[(&str, &str, &str)]) -> Locked {
        packages
            .iter()
            .map(|(name, version, hash)| {
                (
                    name.to_string(),
                    (
                        version.to_string(),
                        BTreeMap::from([(
                            format!("{name}-{version}-py3-none-any.whl"),
                            hash.to_string(),
                        )]),
                    ),
                )
            })
            .collect()
    }

    fn fleet() -> BTreeMap<String, Locked> {
        BTreeMap::from([
            (
                "api".to_string(),
                service(&[("six", "1.17.0", "aa"), ("idna", "3.10", "bb")]),
            ),
            (
                "web".to_string(),
                service(&[("six", "1.17.0", "aa"), ("idna", "3.10", "bb")]),
            ),
            (
                "old".to_string(),
                service(&[("six", "1.16.0", "cc"), ("idna", "3.10", "bb")]),
            ),
        ])
    }

    #[test]
    fn ok_split_found_and_allowed() {
        let report = compare(&fleet(), &DriftPolicy::default()).unwrap();
        assert_eq!(
            report.versions["six"],
            BTreeMap::from([
                ("1.16.0".to_string(), vec!["old".to_string()]),
                (
                    "1.17.0".to_string(),
                    vec!["api".to_string(), "web".to_string()]
                ),
            ])
        );
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
        assert!(
            report.violations[0].contains("old locks 1.16.0"),
            "{:?}",
            report.violations
        );
        let policy = DriftPolicy {
            allow: Some(vec![DriftAllow {
                name: "six".to_string(),
                services: vec!["old".to_string()],
            }]),
            ..DriftPolicy::default()
        };
        assert!(compare(&fleet(), &policy).unwrap().violations.is_empty());
        let policy = DriftPolicy {
            same_version: Some(SameVersion::Packages(vec!["idna".to_string()])),
            ..DriftPolicy::default()
        };
        assert!(compare(&fleet(), &policy).unwrap().violations.is_empty());
    }

    #[test]
    fn err_deny_and_different_bytes() {
        let policy = DriftPolicy {
            same_version: Some(SameVersion::Packages(Vec::new())),
            deny: Some(vec!["six<1.17".to_string()]),
            ..DriftPolicy::default()
        };
        let report = compare(&fleet(), &policy).unwrap();
        assert_eq!(report.violations.len(), 1);
        assert!(report.violations[0].contains("service `old` locks `six` 1.16.0"));
        let mut services = fleet();
        services.insert("odd".to_string(), service(&[("idna", "3.10", "ff")]));
        let report = compare(&services, &policy).unwrap();
        assert!(report.hashes.contains_key("idna==3.10"));
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.contains("different bytes"))
        );
        let bad = DriftPolicy {
            deny: Some(vec!["six".to_string()]),
            ..DriftPolicy::default()
        };
        assert!(compare(&fleet(), &bad).is_err());
    }
}
