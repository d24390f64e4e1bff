//! The dependency consistency check on the real fixture wheels: the hello-service set
//! passes; taking a package away or swapping one for an incompatible version fails
//! with the requirement and the chain that needs it.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use envbuild::check::{
    CheckError, DependencyProblem, InstalledDistribution, check_dependencies, check_error,
    read_metadata,
};
use envbuild::platform::{Libc, Platform, PythonVersion, Target};

/// The fixture's target: CPython 3.11 on linux/amd64 with glibc 2.36.
fn environment() -> uv_pep508::MarkerEnvironment {
    Target {
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        python: PythonVersion {
            major: 3,
            minor: 11,
            patch: None,
        },
        libc: Libc::Glibc {
            major: 2,
            minor: 36,
        },
        allow_linux_tag: false,
    }
    .marker_environment()
}

fn fixture_metadata() -> Vec<InstalledDistribution> {
    common::fixture_wheels()
        .iter()
        .map(|path| read_metadata(path).unwrap_or_else(|error| panic!("{error}")))
        .collect()
}

fn without(wheels: &[InstalledDistribution], name: &str) -> Vec<InstalledDistribution> {
    let kept: Vec<InstalledDistribution> = wheels
        .iter()
        .filter(|wheel| wheel.name.as_str() != name)
        .cloned()
        .collect();
    assert_eq!(
        kept.len() + 1,
        wheels.len(),
        "`{name}` is in the fixture set"
    );
    kept
}

/// A minimal wheel holding only `METADATA` (and WHEEL), written next to `folder`.
fn handmade_wheel(folder: &Path, name: &str, version: &str, requires: &[&str]) -> PathBuf {
    let path = folder.join(format!("{name}-{version}-py3-none-any.whl"));
    let file = fs_err::File::create(&path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default();
    let dist_info = format!("{name}-{version}.dist-info");
    let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    for line in requires {
        metadata.push_str(&format!("Requires-Dist: {line}\n"));
    }
    zip.start_file(format!("{dist_info}/METADATA"), options)
        .unwrap();
    zip.write_all(metadata.as_bytes()).unwrap();
    zip.start_file(format!("{dist_info}/WHEEL"), options)
        .unwrap();
    zip.write_all(b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        .unwrap();
    zip.finish().unwrap();
    path
}

#[test]
fn fixture_set_is_consistent() {
    let wheels = fixture_metadata();
    let names: Vec<&str> = wheels.iter().map(|wheel| wheel.name.as_str()).collect();
    for expected in [
        "flask",
        "jinja2",
        "markupsafe",
        "requests",
        "jaraco-context",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let report = check_dependencies(&wheels, &environment());
    assert!(report.is_ok(), "{report}");
    check_error(&report).unwrap();
    // Real metadata: flask 3.1.3 declares werkzeug and extras-only requirements.
    let flask = wheels
        .iter()
        .find(|wheel| wheel.name.as_str() == "flask")
        .unwrap();
    assert_eq!(flask.version, "3.1.3");
    assert!(
        flask
            .requires_dist
            .iter()
            .any(|line| line.value.starts_with("werkzeug>=") && line.line > 3)
    );
}

#[test]
fn err_missing_markupsafe_names_jinja2() {
    let wheels = without(&fixture_metadata(), "markupsafe");
    let report = check_dependencies(&wheels, &environment());
    let messages: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    let jinja = messages
        .iter()
        .find(|message| message.starts_with("jinja2 3.1.6 requires MarkupSafe>=2.0"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(jinja.contains("which is not locked"), "{jinja}");
    // jinja2 is there because flask requires it.
    assert!(jinja.ends_with("(via flask 3.1.3)"), "{jinja}");
    assert!(
        report.problems.iter().all(|problem| matches!(
            problem,
            DependencyProblem::Missing { requirement, .. }
                if requirement.to_ascii_lowercase().starts_with("markupsafe")
        )),
        "{report}"
    );
    let error = check_error(&report).unwrap_err();
    assert!(matches!(error, CheckError::Unsatisfied { .. }));
    assert!(
        error
            .to_string()
            .contains("jinja2 3.1.6 requires MarkupSafe>=2.0")
    );
}

#[test]
fn err_old_werkzeug_conflicts_with_flask() {
    let folder = common::scratch_dir("depcheck-");
    let old = handmade_wheel(folder.path(), "werkzeug", "0.1", &["MarkupSafe>=2.1.1"]);
    let mut wheels = without(&fixture_metadata(), "werkzeug");
    wheels.push(read_metadata(&old).unwrap());
    let report = check_dependencies(&wheels, &environment());
    assert_eq!(report.problems.len(), 1, "{report}");
    let DependencyProblem::Conflict {
        chain,
        requirement,
        locked_version,
    } = &report.problems[0]
    else {
        panic!("{report}");
    };
    assert_eq!(chain.last().unwrap().name.as_str(), "flask");
    assert!(requirement.starts_with("werkzeug>="), "{requirement}");
    assert_eq!(locked_version, "0.1");
    let message = report.problems[0].to_string();
    assert!(
        message.starts_with("flask 3.1.3 requires werkzeug>=")
            && message.ends_with(", locked werkzeug 0.1"),
        "{message}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["problems"][0]["kind"], "conflict");
    assert_eq!(json["problems"][0]["locked_version"], "0.1");
}

#[test]
fn err_metadata_missing_from_wheel() {
    let folder = common::scratch_dir("depcheck-");
    let path = folder.path().join("empty-1.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(fs_err::File::create(&path).unwrap());
    zip.start_file(
        "empty/__init__.py",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.finish().unwrap();
    let error = read_metadata(&path).unwrap_err();
    assert!(
        matches!(error, CheckError::MetadataMissing { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("empty-1.0-py3-none-any.whl"));
}
