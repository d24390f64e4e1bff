//! Scripts: the interpreter shebang, the `#!python` rewrite of `.data/scripts`, and
//! the launchers generated for `console_scripts` and `gui_scripts` entry points
//! (standards §3.4, §3.5). Pure functions over bytes; no I/O.

use crate::wheel::error::WheelError;

/// Version of the launcher template below. Any change to the template changes the
/// bytes of every layer with a launcher: bump this and `repro::LAYER_FORMAT_VERSION`
/// together (the `launcher_template_is_pinned` test guards it).
pub const LAUNCHER_TEMPLATE_VERSION: u32 = 1;

/// The longest shebang line Linux executes (`BINPRM_BUF_SIZE` is 128 with the NUL).
const MAX_SHEBANG: usize = 127;

/// The first line(s) that make a script run with `python`. Standards §3.4 (same rule
/// in pip/distlib, pypa/installer and uv): `#!<python>` when `len("#!" + python +
/// "\n") <= 127` and the path has no whitespace; otherwise a `/bin/sh` trampoline that
/// is also a Python string literal, with the path single-quoted (POSIX escaping, as uv
/// does).
pub(crate) fn shebang(python: &str) -> String {
    let direct = format!("#!{python}\n");
    if direct.len() <= MAX_SHEBANG && !python.chars().any(char::is_whitespace) {
        return direct;
    }
    let quoted = format!("'{}'", python.replace('\'', r"'\''"));
    format!("#!/bin/sh\n'''exec' {quoted} \"$0\" \"$@\"\n' '''\n")
}

/// Whether a script starts with the `#!python` marker (also matches `#!pythonw`).
pub(crate) fn needs_rewrite(head: &[u8]) -> bool {
    head.starts_with(b"#!python")
}

/// Standards §3.4: a script whose first line starts with `#!python` gets that whole
/// first line (with its line end) replaced by the interpreter shebang; the rest is
/// copied unchanged.
pub(crate) fn rewrite_script(bytes: &[u8], shebang: &str) -> Vec<u8> {
    let rest = match bytes.iter().position(|&byte| byte == b'\n') {
        Some(end) => &bytes[end + 1..],
        None => &[],
    };
    let mut out = Vec::with_capacity(shebang.len() + rest.len());
    out.extend_from_slice(shebang.as_bytes());
    out.extend_from_slice(rest);
    out
}

/// Whether a file name in `bin` would replace the venv's interpreter. uv refuses
/// `python`, `python3`, `python3.X`, `pypy*` and `graalpy*` (standards §3.2).
pub(crate) fn is_interpreter_name(name: &str) -> bool {
    let python_version = name
        .strip_prefix("python")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'));
    python_version || name.starts_with("pypy") || name.starts_with("graalpy")
}

/// Names of `.data/scripts` files a launcher named `name` replaces (standards §3.5:
/// pip skips `name`, `name.exe`, `name-script.py` and `name.pya`).
pub(crate) fn shadowed_by_launcher(script: &str, launcher: &str) -> bool {
    script == launcher
        || script
            .strip_prefix(launcher)
            .is_some_and(|suffix| matches!(suffix, ".exe" | "-script.py" | ".pya"))
}

/// A `console_scripts` or `gui_scripts` entry point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryPoint {
    /// The script name (a file in `bin`).
    pub(crate) name: String,
    /// The module to import, e.g. `flask.cli`.
    pub(crate) module: String,
    /// The object to call, possibly dotted, e.g. `main` or `cli.main`.
    pub(crate) attribute: String,
}

/// Parse `entry_points.txt` and return its `console_scripts` and `gui_scripts`,
/// sorted by name. Standards §3.5: an INI file read with configparser, case-sensitive
/// keys, `=` as the only delimiter; full-line `#`/`;` comments. Continuation lines
/// (indented lines after a key) are refused in the two sections envbuild reads, since
/// no valid entry point spans lines. Other sections are skipped unparsed.
pub(crate) fn parse_entry_points(
    text: &str,
    wheel: &str,
    path: &str,
) -> Result<Vec<EntryPoint>, WheelError> {
    let mut points: Vec<EntryPoint> = Vec::new();
    let mut in_scripts: Option<bool> = None;
    let syntax = |line: usize, text: &str| WheelError::EntryPointsSyntax {
        wheel: wheel.to_string(),
        path: path.to_string(),
        line,
        text: text.to_string(),
    };
    for (number, raw) in text.lines().enumerate() {
        let line_number = number + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            if raw.starts_with(char::is_whitespace) && in_scripts == Some(true) {
                return Err(syntax(line_number, raw));
            }
            in_scripts = Some(matches!(section.trim(), "console_scripts" | "gui_scripts"));
            continue;
        }
        match in_scripts {
            None => return Err(syntax(line_number, raw)),
            Some(false) => continue,
            Some(true) => {}
        }
        if raw.starts_with(char::is_whitespace) {
            return Err(syntax(line_number, raw));
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(syntax(line_number, raw));
        };
        let (name, value) = (name.trim(), value.trim());
        if !is_safe_script_name(name) {
            return Err(WheelError::InvalidEntryPointName {
                wheel: wheel.to_string(),
                name: name.to_string(),
            });
        }
        if points.iter().any(|point| point.name == name) {
            return Err(WheelError::DuplicateEntryPoint {
                wheel: wheel.to_string(),
                name: name.to_string(),
            });
        }
        let (module, attribute) = parse_object_reference(value).map_err(|missing_callable| {
            let (name, value) = (name.to_string(), value.to_string());
            let wheel = wheel.to_string();
            if missing_callable {
                WheelError::MissingCallableSuffix { wheel, name, value }
            } else {
                WheelError::InvalidEntryPointValue { wheel, name, value }
            }
        })?;
        points.push(EntryPoint {
            name: name.to_string(),
            module,
            attribute,
        });
    }
    points.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(points)
}

/// pip's special case for its own launchers (and setuptools' old `easy_install`), which
/// uv follows too: the `pip` entry point becomes `pip`, `pip3` and `pip3.X` for the
/// *target* Python, and every other versioned `pipN`/`pipN.M` entry point the wheel
/// declares (made for the Python that built it) is dropped; likewise `easy_install`
/// becomes `easy_install` and `easy_install-3.X`. Without this, a venv built by envbuild
/// would lack the `pip3.11` that pip itself installs.
pub(crate) fn apply_installer_script_names(
    points: Vec<EntryPoint>,
    python: crate::platform::PythonVersion,
) -> Vec<EntryPoint> {
    let is_versioned = |name: &str, stem: &str, separator: &str| {
        name.strip_prefix(stem)
            .and_then(|rest| rest.strip_prefix(separator))
            .is_some_and(|version| {
                let mut parts = version.split('.');
                let major = parts
                    .next()
                    .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
                let rest_ok = parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
                major && rest_ok && version.split('.').count() <= 2
            })
    };
    let pip = points.iter().find(|point| point.name == "pip").cloned();
    let easy_install = points
        .iter()
        .find(|point| point.name == "easy_install")
        .cloned();
    let mut kept: Vec<EntryPoint> = points
        .into_iter()
        .filter(|point| {
            let pip_variant =
                pip.is_some() && (point.name == "pip" || is_versioned(&point.name, "pip", ""));
            let easy_install_variant = easy_install.is_some()
                && (point.name == "easy_install" || is_versioned(&point.name, "easy_install", "-"));
            !pip_variant && !easy_install_variant
        })
        .collect();
    let (major, minor) = (python.major, python.minor);
    let renamed = |point: &EntryPoint, name: String| EntryPoint {
        name,
        ..point.clone()
    };
    if let Some(point) = &pip {
        kept.push(renamed(point, "pip".to_string()));
        kept.push(renamed(point, format!("pip{major}")));
        kept.push(renamed(point, format!("pip{major}.{minor}")));
    }
    if let Some(point) = &easy_install {
        kept.push(renamed(point, "easy_install".to_string()));
        kept.push(renamed(point, format!("easy_install-{major}.{minor}")));
    }
    kept.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    kept
}

/// A script name is a single safe path component.
fn is_safe_script_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with(".wh.")
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// Entry points specification: `module[.sub]:object[.attr]`, optionally followed by
/// ` [extras]` (parsed and ignored). Each part must be dotted Python identifiers,
/// which also keeps anything but a name out of the generated Python source.
/// `Err(true)` means the `:callable` suffix is missing, `Err(false)` any other flaw.
fn parse_object_reference(value: &str) -> Result<(String, String), bool> {
    let reference = match value.find('[') {
        Some(start) => {
            if !value.trim_end().ends_with(']') {
                return Err(false);
            }
            &value[..start]
        }
        None => value,
    };
    let Some((module, attribute)) = reference.split_once(':') else {
        return Err(is_dotted_identifier(reference.trim()));
    };
    let (module, attribute) = (module.trim(), attribute.trim());
    if !is_dotted_identifier(module) || !is_dotted_identifier(attribute) {
        return Err(false);
    }
    Ok((module.to_string(), attribute.to_string()))
}

fn is_dotted_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|first| first == '_' || first.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        })
}

/// envbuild's launcher, template version [`LAUNCHER_TEMPLATE_VERSION`]. What every
/// installer's launcher does (standards §3.5): run with the venv's python, import the
/// entry point's module, strip a trailing `-script.pyw` or `.exe` from `argv[0]`, call
/// the object (following dotted attributes) and pass its result to `sys.exit`.
pub(crate) fn launcher(shebang: &str, point: &EntryPoint) -> Vec<u8> {
    let head = point
        .attribute
        .split('.')
        .next()
        .unwrap_or(&point.attribute);
    format!(
        "{shebang}\
# -*- coding: utf-8 -*-
# Generated by envbuild (launcher template {LAUNCHER_TEMPLATE_VERSION}).
import sys
from {module} import {head}

if __name__ == \"__main__\":
    if sys.argv[0].endswith(\"-script.pyw\"):
        sys.argv[0] = sys.argv[0][:-11]
    elif sys.argv[0].endswith(\".exe\"):
        sys.argv[0] = sys.argv[0][:-4]
    sys.exit({attribute}())
",
        module = point.module,
        attribute = point.attribute,
    )
    .into_bytes()
}

#[cfg(test)]
mod installer_name_tests {
    use super::*;
    use crate::platform::PythonVersion;

    fn point(name: &str) -> EntryPoint {
        EntryPoint {
            name: name.to_string(),
            module: "pip._internal.cli.main".to_string(),
            attribute: "main".to_string(),
        }
    }

    #[test]
    fn pip_launchers_follow_the_target_python() {
        let python = PythonVersion {
            major: 3,
            minor: 11,
            patch: None,
        };
        let names: Vec<String> = apply_installer_script_names(
            vec![
                point("pip"),
                point("pip3"),
                point("pip3.13"),
                point("pipx-like"),
                point("black"),
            ],
            python,
        )
        .into_iter()
        .map(|point| point.name)
        .collect();
        assert_eq!(names, ["black", "pip", "pip3", "pip3.11", "pipx-like"]);
    }

    #[test]
    fn easy_install_and_no_pip_untouched() {
        let python = PythonVersion {
            major: 3,
            minor: 12,
            patch: None,
        };
        let names: Vec<String> = apply_installer_script_names(
            vec![
                point("easy_install"),
                point("easy_install-3.6"),
                point("pip3"),
            ],
            python,
        )
        .into_iter()
        .map(|point| point.name)
        .collect();
        // Without a `pip` entry point, `pip3` is an ordinary script.
        assert_eq!(names, ["easy_install", "easy_install-3.12", "pip3"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Sha256Digest;

    fn point(name: &str, module: &str, attribute: &str) -> EntryPoint {
        EntryPoint {
            name: name.into(),
            module: module.into(),
            attribute: attribute.into(),
        }
    }

    #[test]
    fn shebang_direct_and_trampoline() {
        assert_eq!(shebang("/opt/venv/bin/python"), "#!/opt/venv/bin/python\n");
        let spaced = shebang("/opt/my venv/bin/python");
        assert_eq!(
            spaced,
            "#!/bin/sh\n'''exec' '/opt/my venv/bin/python' \"$0\" \"$@\"\n' '''\n"
        );
        let long = format!("/{}/bin/python", "x".repeat(120));
        assert!(shebang(&long).starts_with("#!/bin/sh\n"));
        // Exactly 127 bytes with "#!" and "\n" is still direct.
        let edge = format!("/{}", "y".repeat(127 - 4));
        assert_eq!(shebang(&edge).len(), 127);
        assert!(shebang(&edge).starts_with("#!/y"));
        assert_eq!(
            shebang("/a'b c"),
            "#!/bin/sh\n'''exec' '/a'\\''b c' \"$0\" \"$@\"\n' '''\n"
        );
    }

    #[test]
    fn rewrite_replaces_whole_first_line() {
        let shebang = "#!/opt/venv/bin/python\n";
        assert_eq!(
            rewrite_script(b"#!python -u\r\nprint(1)\n", shebang),
            b"#!/opt/venv/bin/python\nprint(1)\n"
        );
        assert_eq!(rewrite_script(b"#!pythonw", shebang), shebang.as_bytes());
        assert!(needs_rewrite(b"#!pythonw\n"));
        assert!(!needs_rewrite(b"#!/usr/bin/env python\n"));
    }

    #[test]
    fn interpreter_names() {
        for name in [
            "python",
            "python3",
            "python3.11",
            "pypy3",
            "pypy",
            "graalpy",
        ] {
            assert!(is_interpreter_name(name), "{name}");
        }
        for name in ["python-config", "pythonw", "pip", "ipython"] {
            assert!(!is_interpreter_name(name), "{name}");
        }
    }

    #[test]
    fn shadowing_names() {
        for script in ["flask", "flask.exe", "flask-script.py", "flask.pya"] {
            assert!(shadowed_by_launcher(script, "flask"), "{script}");
        }
        assert!(!shadowed_by_launcher("flask2", "flask"));
    }

    #[test]
    fn ok_entry_points_configparser() {
        let text = "\
# comment
[console_scripts]
Flask = flask.cli:main
tool=pkg.mod:obj.attr.call [extra1, extra2]
; another comment

[other.section]
ignored = not a : valid value
  continuation in another section is fine
[gui_scripts]
gui = pkg:gui
";
        let points = parse_entry_points(text, "w.whl", "e.txt").unwrap();
        assert_eq!(
            points,
            vec![
                point("Flask", "flask.cli", "main"),
                point("gui", "pkg", "gui"),
                point("tool", "pkg.mod", "obj.attr.call"),
            ]
        );
    }

    #[test]
    fn err_entry_point_without_callable() {
        let error =
            parse_entry_points("[console_scripts]\nx = pkg.mod\n", "w.whl", "e.txt").unwrap_err();
        assert!(
            matches!(error, WheelError::MissingCallableSuffix { .. }),
            "{error}"
        );
    }

    #[test]
    fn err_entry_point_code_injection() {
        for value in ["os:system('id')", "a;b:c", "a:b()", "a:", ":b", "1a:b"] {
            let text = format!("[console_scripts]\nx = {value}\n");
            let error = parse_entry_points(&text, "w.whl", "e.txt").unwrap_err();
            assert!(
                matches!(error, WheelError::InvalidEntryPointValue { .. }),
                "{value}: {error}"
            );
        }
    }

    #[test]
    fn err_entry_point_names_and_syntax() {
        for name in ["../x", ".wh.x", "a/b", ".."] {
            let text = format!("[console_scripts]\n{name} = a:b\n");
            let error = parse_entry_points(&text, "w.whl", "e.txt").unwrap_err();
            assert!(
                matches!(error, WheelError::InvalidEntryPointName { .. }),
                "{name}: {error}"
            );
        }
        let error = parse_entry_points("[console_scripts]\nx = a:b\nx = a:c\n", "w.whl", "e.txt")
            .unwrap_err();
        assert!(
            matches!(error, WheelError::DuplicateEntryPoint { .. }),
            "{error}"
        );
        for text in [
            "x = a:b\n",
            "[console_scripts]\nnovalue\n",
            "[console_scripts]\nx = a:b\n  y = c:d\n",
        ] {
            let error = parse_entry_points(text, "w.whl", "e.txt").unwrap_err();
            assert!(
                matches!(error, WheelError::EntryPointsSyntax { .. }),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn launcher_content() {
        let text = launcher(
            "#!/opt/venv/bin/python\n",
            &point("x", "pkg.cli", "app.main"),
        );
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("#!/opt/venv/bin/python\n# -*- coding: utf-8 -*-\n"));
        assert!(text.contains("from pkg.cli import app\n"));
        assert!(text.contains("    sys.exit(app.main())\n"));
    }

    /// Changing the template changes layer digests: bump LAUNCHER_TEMPLATE_VERSION and
    /// repro::LAYER_FORMAT_VERSION, then update this hash.
    #[test]
    fn launcher_template_is_pinned() {
        let text = launcher("#!/opt/venv/bin/python\n", &point("x", "pkg.cli", "main"));
        assert_eq!(LAUNCHER_TEMPLATE_VERSION, 1);
        assert_eq!(crate::repro::LAYER_FORMAT_VERSION, 1);
        assert_eq!(
            Sha256Digest::of(&text).hex(),
            "6033516628e6da34b45aabdd9f57b40a0dce7405c0bfbd3004ee329ec36cb859"
        );
    }

    const ENTRY_POINT_SEEDS: &[&str] = &[
        "[console_scripts]\nflask = flask.cli:main\n\n[gui_scripts]\ndemo-gui = demo.gui:run [qt]\n",
        "# comment\n; other comment\n[console_scripts]\npip = pip._internal.cli.main:main\npip3.13 = pip._internal.cli.main:main\n[pytest11]\nplugin = pkg.plugin\n  continued\n",
        "[console_scripts]\r\neasy_install = setuptools.command.easy_install:main\r\neasy_install-3.6 = setuptools.command.easy_install:main\r\n",
        "[console_scripts]\nbad name = x:y\n[console_scripts]\nnocallable = x\n",
    ];

    /// No text makes the entry-point parser (or the launcher made from its result)
    /// panic; what it accepts is a safe name and an importable reference; errors are one
    /// printable line.
    #[test]
    fn ok_no_panic_on_mutated_entry_points() {
        use proptest::prelude::*;

        use crate::platform::PythonVersion;
        use crate::wheel::testing::mutate;

        let inputs = prop_oneof![
            4 => (proptest::sample::select(ENTRY_POINT_SEEDS), mutate::mutations(6))
                .prop_map(|(seed, mutations)| {
                    let bytes = mutate::apply(seed.as_bytes().to_vec(), &mutations);
                    String::from_utf8_lossy(&bytes).into_owned()
                }),
            1 => "(\\[[a-z_]{0,16}\\]|[ -~\\t\\x00-\\x1f\\u{80}-\\u{2fff}]{0,40})(\\n[ -~\\u{80}-\\u{2fff}]{0,40}){0,8}",
        ];
        let python = PythonVersion {
            major: 3,
            minor: 11,
            patch: None,
        };
        proptest::test_runner::TestRunner::new(crate::wheel::testing::mutate::config(
            4000,
            0x5eed_0002,
        ))
        .run(&inputs, |text| {
            match parse_entry_points(&text, "demo-1.0-py3-none-any.whl", "entry_points.txt") {
                Ok(points) => {
                    for point in apply_installer_script_names(points, python) {
                        prop_assert!(is_safe_script_name(&point.name), "{point:?}");
                        prop_assert!(is_dotted_identifier(&point.module), "{point:?}");
                        prop_assert!(is_dotted_identifier(&point.attribute), "{point:?}");
                        launcher(&shebang("/opt/venv/bin/python"), &point);
                    }
                }
                Err(error) => prop_assert!(mutate::printable(&error.to_string()), "{error}"),
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn err_control_characters_in_entry_points_are_escaped() {
        let error = parse_entry_points(
            "[console_scripts]\nevil\u{1b}[2J = x:y\n",
            "w.whl",
            "entry_points.txt",
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`evil\\u{1b}[2J`"), "{message}");
        let error =
            parse_entry_points("[console_scripts]\ntool = x\u{7}y\n", "w.whl", "e").unwrap_err();
        assert!(!error.to_string().contains('\u{7}'), "{error}");
    }
}
