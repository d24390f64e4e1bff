//! Ordered wheel-tag lists for a target (PEP 425, PEP 600, PEP 656), in exactly the
//! order `packaging.tags` gives them: `cpython_tags()` then `compatible_tags()`
//! (standards §4.3). A wheel's priority is the index of its best tag in this list; lower
//! is better. Pure computation: the target's facts come in, no host state is read.

use std::collections::HashMap;

use super::{Libc, Target};

/// The tags a target supports, most preferred first.
///
/// Built by [`Target::tags`]. Lookups by `(python, abi, platform)` are O(1).
#[derive(Debug, Clone)]
pub struct TagSet {
    /// The tags in priority order.
    tags: Vec<(String, String, String)>,
    /// python → abi → platform → index in `tags` (the first occurrence).
    index: HashMap<String, HashMap<String, HashMap<String, usize>>>,
}

/// `manylinux` legacy aliases (PEP 513, 571, 599), emitted right after the perennial
/// tag for the same glibc, as packaging does.
fn legacy_manylinux(minor: u32) -> Option<&'static str> {
    match minor {
        17 => Some("manylinux2014"),
        12 => Some("manylinux2010"),
        5 => Some("manylinux1"),
        _ => None,
    }
}

/// packaging's `_LAST_GLIBC_MINOR` default: the minor to start from for a glibc major
/// below the target's (only reached for a hypothetical glibc 3).
const LAST_GLIBC_MINOR: u32 = 50;

/// The platform tags for a target, most preferred first.
///
/// glibc: `manylinux_2_N_<arch>` from the target's minor down to the oldest glibc
/// packaging enumerates for the architecture: 2.5 on x86_64 and i686, 2.17 on every
/// other architecture (riscv64 included; uv would stop at 2.31 there, but no wheel is
/// tagged below that, so the longer list only costs lookups). musl:
/// `musllinux_1_N_<arch>` from the target's minor down to `1_0`. A target never gets
/// both families. `linux_<arch>` comes last, and only when
/// [`Target::allow_linux_tag`] is set (older packaging and uv also put it last; recent
/// packaging puts it first, but such wheels are built locally and not portable).
fn platform_tags(target: &Target) -> Vec<String> {
    let arch = target.platform.python_machine();
    let mut platforms = Vec::new();
    match target.libc {
        Libc::Glibc { major, minor } => {
            let oldest_minor_of_2 = if matches!(arch, "x86_64" | "i686") {
                5
            } else {
                17
            };
            // packaging assumes compatibility across glibc majors (sourceware bug 24636).
            for glibc_major in (2..=major).rev() {
                let newest = if glibc_major == major {
                    minor
                } else {
                    LAST_GLIBC_MINOR
                };
                let oldest = if glibc_major == 2 {
                    oldest_minor_of_2
                } else {
                    0
                };
                for glibc_minor in (oldest..=newest).rev() {
                    platforms.push(format!("manylinux_{glibc_major}_{glibc_minor}_{arch}"));
                    if glibc_major == 2
                        && let Some(legacy) = legacy_manylinux(glibc_minor)
                    {
                        platforms.push(format!("{legacy}_{arch}"));
                    }
                }
            }
        }
        Libc::Musl { major, minor } => {
            for musl_minor in (0..=minor).rev() {
                platforms.push(format!("musllinux_{major}_{musl_minor}_{arch}"));
            }
        }
    }
    if target.allow_linux_tag {
        platforms.push(format!("linux_{arch}"));
    }
    platforms
}

impl TagSet {
    /// The supported tags of `target`, in `packaging.tags` order (for a non-debug,
    /// GIL-enabled CPython; `cp3Ym` ABI before 3.8):
    ///
    /// 1. `cp3Y-cp3Y-{P}`, 2. `cp3Y-abi3-{P}`, 3. `cp3Y-none-{P}`,
    /// 4. `cp3W-abi3-{P}` for W from Y-1 down to 2,
    /// 5. `py3Y-none-{P}`, `py3-none-{P}`, then `py3W-none-{P}` for W from Y-1 down to 0,
    /// 6. `cp3Y-none-any`, 7. `py3Y-none-any`, `py3-none-any`, `py3W-none-any` likewise,
    ///
    /// where `{P}` runs over the platform tags, most preferred first.
    pub fn for_target(target: &Target) -> Self {
        let platforms = platform_tags(target);
        let (major, minor) = (target.python.major, target.python.minor);
        let interpreter = format!("cp{major}{minor}");
        let abi = if minor < 8 {
            format!("cp{major}{minor}m")
        } else {
            interpreter.clone()
        };
        let mut set = Self {
            tags: Vec::new(),
            index: HashMap::new(),
        };

        // packaging.tags.cpython_tags
        set.push_all(&interpreter, &abi, &platforms);
        if minor >= 2 {
            set.push_all(&interpreter, "abi3", &platforms);
        }
        set.push_all(&interpreter, "none", &platforms);
        for older in (2..minor).rev() {
            set.push_all(&format!("cp{major}{older}"), "abi3", &platforms);
        }

        // packaging.tags.compatible_tags
        let mut python_range = vec![format!("py{major}{minor}"), format!("py{major}")];
        python_range.extend((0..minor).rev().map(|older| format!("py{major}{older}")));
        for python in &python_range {
            set.push_all(python, "none", &platforms);
        }
        set.push(&interpreter, "none", "any");
        for python in &python_range {
            set.push(python, "none", "any");
        }
        set
    }

    fn push_all(&mut self, python: &str, abi: &str, platforms: &[String]) {
        for platform in platforms {
            self.push(python, abi, platform);
        }
    }

    fn push(&mut self, python: &str, abi: &str, platform: &str) {
        let next = self.tags.len();
        let slot = self
            .index
            .entry(python.to_string())
            .or_default()
            .entry(abi.to_string())
            .or_default()
            .entry(platform.to_string());
        // Keep the first (best) position of a tag listed twice.
        if let std::collections::hash_map::Entry::Vacant(vacant) = slot {
            vacant.insert(next);
            self.tags
                .push((python.to_string(), abi.to_string(), platform.to_string()));
        }
    }

    /// The position of `python-abi-platform` in the list (0 is the most preferred), or
    /// `None` when the target does not support that tag.
    pub fn priority(&self, python: &str, abi: &str, platform: &str) -> Option<usize> {
        self.index.get(python)?.get(abi)?.get(platform).copied()
    }

    /// The number of supported tags.
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// Whether the target supports no tag at all (never true for a built set: `py3-none-any`
    /// is always supported).
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// The tags as `(python, abi, platform)`, most preferred first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &str)> + '_ {
        self.tags
            .iter()
            .map(|(python, abi, platform)| (python.as_str(), abi.as_str(), platform.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::tests::target;

    /// Golden lists from pypa `packaging` (see `tests/data/tags/generate.py`).
    fn golden(name: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/tags")
            .join(name);
        fs_err::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn assert_matches_golden(tags: &TagSet, name: &str) {
        let expected = golden(name);
        let actual: Vec<String> = tags
            .iter()
            .map(|(python, abi, platform)| format!("{python}-{abi}-{platform}"))
            .collect();
        for (position, (actual, expected)) in actual.iter().zip(&expected).enumerate() {
            assert_eq!(actual, expected, "{name}: tag {position} differs");
        }
        assert_eq!(actual.len(), expected.len(), "{name}: tag count differs");
        assert_eq!(tags.len(), expected.len());
    }

    #[test]
    fn ok_golden_cp311_manylinux_2_36_x86_64() {
        let tags = target("3.11", "linux/amd64", "glibc 2.36").tags();
        assert_matches_golden(&tags, "cp311-manylinux-2.36-x86_64.txt");
    }

    #[test]
    fn ok_golden_cp312_manylinux_2_28_aarch64() {
        let tags = target("3.12.7", "linux/arm64", "glibc 2.28").tags();
        assert_matches_golden(&tags, "cp312-manylinux-2.28-aarch64.txt");
    }

    #[test]
    fn ok_golden_cp311_musllinux_1_2_x86_64() {
        let tags = target("3.11", "linux/amd64", "musl 1.2").tags();
        assert_matches_golden(&tags, "cp311-musllinux-1.2-x86_64.txt");
    }

    #[test]
    fn ok_standards_count_cp312_with_linux_tag() {
        // standards §4.3: cp312, glibc 2.36, x86_64 with linux_x86_64 → 36 platforms, 987 tags.
        let mut target = target("3.12", "linux/amd64", "glibc 2.36");
        target.allow_linux_tag = true;
        let tags = target.tags();
        assert_eq!(tags.len(), 987);
        let platforms = tags
            .iter()
            .filter(|(python, abi, _)| *python == "cp312" && *abi == "cp312")
            .count();
        assert_eq!(platforms, 36);
        // linux_<arch> is the last platform of each group.
        assert_eq!(tags.priority("cp312", "cp312", "linux_x86_64"), Some(35));
    }

    #[test]
    fn ok_priority_order() {
        let tags = target("3.11", "linux/amd64", "glibc 2.36").tags();
        assert_eq!(
            tags.priority("cp311", "cp311", "manylinux_2_36_x86_64"),
            Some(0)
        );
        assert_eq!(
            tags.priority("cp311", "cp311", "manylinux_2_17_x86_64"),
            Some(19)
        );
        assert_eq!(
            tags.priority("cp311", "cp311", "manylinux2014_x86_64"),
            Some(20)
        );
        let abi3 = tags
            .priority("cp38", "abi3", "manylinux_2_17_x86_64")
            .unwrap();
        let pure = tags.priority("py3", "none", "any").unwrap();
        assert!(abi3 < pure);
        assert_eq!(tags.priority("py3", "none", "any"), Some(tags.len() - 12));
        let (python, abi, platform) = tags.iter().nth(pure).unwrap();
        assert_eq!((python, abi, platform), ("py3", "none", "any"));
    }

    #[test]
    fn err_priority_unsupported() {
        let tags = target("3.11", "linux/amd64", "glibc 2.17").tags();
        assert_eq!(
            tags.priority("cp311", "cp311", "manylinux_2_28_x86_64"),
            None
        );
        assert_eq!(
            tags.priority("cp312", "cp312", "manylinux_2_17_x86_64"),
            None
        );
        assert_eq!(
            tags.priority("cp311", "cp311", "musllinux_1_1_x86_64"),
            None
        );
        assert_eq!(
            tags.priority("cp311", "cp311", "manylinux_2_17_aarch64"),
            None
        );
        assert_eq!(tags.priority("cp311", "cp311", "linux_x86_64"), None);
        assert_eq!(
            tags.priority("cp311", "abi3t", "manylinux_2_17_x86_64"),
            None
        );
    }

    #[test]
    fn ok_musl_never_manylinux() {
        let tags = target("3.12", "linux/arm64", "musl 1.1").tags();
        assert!(
            tags.iter()
                .all(|(_, _, platform)| !platform.starts_with("manylinux"))
        );
        assert_eq!(
            tags.priority("cp312", "cp312", "musllinux_1_1_aarch64"),
            Some(0)
        );
        assert_eq!(
            tags.priority("cp312", "cp312", "musllinux_1_0_aarch64"),
            Some(1)
        );
    }

    #[test]
    fn ok_glibc_older_than_arch_minimum_has_only_pure_tags() {
        let tags = target("3.12", "linux/arm64", "glibc 2.12").tags();
        assert!(tags.iter().all(|(_, _, platform)| platform == "any"));
        assert!(!tags.is_empty());
    }

    #[test]
    fn ok_armv7l_and_i686_names() {
        let tags = target("3.12", "linux/arm/v7", "glibc 2.31").tags();
        assert_eq!(
            tags.priority("cp312", "cp312", "manylinux_2_31_armv7l"),
            Some(0)
        );
        assert!(
            tags.priority("cp312", "cp312", "manylinux2014_armv7l")
                .is_some()
        );
        let tags = target("3.12", "linux/386", "glibc 2.12").tags();
        assert_eq!(
            tags.priority("cp312", "cp312", "manylinux2010_i686"),
            Some(1)
        );
        assert_eq!(tags.priority("cp312", "cp312", "manylinux1_i686"), Some(9));
    }
}
