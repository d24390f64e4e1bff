//! Test helpers shared by the lockfile parsers' unit tests.

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
