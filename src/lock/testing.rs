//! Test helpers shared by the unit tests of the parsers of untrusted input: target
//! environments, and hostile variations of real files for no-panic tests.

use uv_pep508::{MarkerEnvironment, MarkerEnvironmentBuilder};

/// A target environment: CPython on `sys_platform` (`linux` or `win32`) with
/// `python_full_version`.
pub(crate) fn environment(sys_platform: &str, python_full_version: &str) -> MarkerEnvironment {
    let python_version: Vec<&str> = python_full_version.split('.').take(2).collect();
    let python_version = python_version.join(".");
    let windows = sys_platform == "win32";
    MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
        implementation_name: "cpython",
        implementation_version: python_full_version,
        os_name: if windows { "nt" } else { "posix" },
        platform_machine: if windows { "AMD64" } else { "x86_64" },
        platform_python_implementation: "CPython",
        platform_release: "",
        platform_system: if windows { "Windows" } else { "Linux" },
        platform_version: "",
        python_full_version,
        python_version: &python_version,
        sys_platform,
    })
    .unwrap()
}

/// CPython 3.11 on Linux x86_64.
pub(crate) fn linux_311() -> MarkerEnvironment {
    environment("linux", "3.11.7")
}

/// Run `parse` over hostile variations of the texts `seeds` (see
/// [`crate::mutate::assert_no_panic`], the project's one mutator), each given as text.
pub(crate) fn assert_no_panic<S: Into<String>>(
    name: &str,
    seeds: impl IntoIterator<Item = S>,
    cases: u32,
    parse: impl Fn(&str),
) {
    let seeds: Vec<String> = seeds.into_iter().map(Into::into).collect();
    crate::mutate::assert_no_panic(name, seeds, cases, |bytes| {
        parse(&String::from_utf8_lossy(bytes));
    });
}

/// Targets and choices of extras and groups to select with, in no-panic tests: the
/// defaults on Linux, and on Windows with an old Python, extras, groups and no defaults.
pub(crate) fn hostile_selections() -> Vec<(MarkerEnvironment, super::GroupSelection)> {
    let mut asked = super::GroupSelection::default();
    for extra in ["cpu", "gpu", "x", "socks"] {
        asked.extras.insert(extra.to_string());
    }
    for group in ["dev", "develop", "test", "new"] {
        asked.groups.insert(group.to_string());
    }
    let no_defaults = super::GroupSelection {
        no_default_groups: true,
        ..super::GroupSelection::default()
    };
    vec![
        (linux_311(), super::GroupSelection::default()),
        (environment("win32", "3.8.10"), asked),
        (environment("linux", "3.13.1"), no_defaults),
    ]
}
