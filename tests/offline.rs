//! `--offline` means no network at all, proved by running the build in a network namespace
//! with no interfaces (`unshare -n`, as root): after one online `envbuild fetch`, a build
//! with a registry base (by tag and by digest), a lockfile with URLs (pylock.toml) and a
//! lockfile with hashes only (requirements.txt looked up on an index) gives the same digest
//! as the online build, and the report says the base's tag came from the cache.
//!
//! The namespace is checked first: the same build without `--offline` must fail there.

mod common;
mod registry_support;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use registry_support::Registry;
use serde_json::Value;

/// `envbuild ARGS` inside a new network namespace (only a loopback that is down).
fn envbuild_without_network(args: &[&str], cache: &Path) -> Output {
    require_tool("unshare");
    let template = envbuild()
        .args(args)
        .arg("--cache-dir")
        .arg(cache)
        .command();
    let mut command = Command::new("unshare");
    command.arg("-n").arg(template.get_program());
    command.args(template.get_args());
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    command.output().expect("running unshare -n envbuild")
}

fn report(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "envbuild failed:\n{}",
        stderr(output)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

/// Pushes the fixture base to `registry` as `base:py311` with skopeo.
fn push_base(registry: &Registry) -> String {
    require_tool("skopeo");
    let reference = registry.reference("base:py311");
    run_ok(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &fixtures().base_ref,
        &format!("docker://{reference}"),
    ]));
    reference
}

/// `uv export` of the locked example as a hash-only requirements file.
fn export_requirements(project: &Path, uv_cache: &Path) -> std::path::PathBuf {
    require_tool("uv");
    run_ok(
        Command::new("uv")
            .current_dir(project)
            .env("UV_CACHE_DIR", uv_cache)
            .args([
                "export",
                "--quiet",
                "--frozen",
                "--format",
                "requirements.txt",
            ])
            .args(["--no-emit-project", "--no-header", "-o", "requirements.txt"]),
    );
    let path = project.join("requirements.txt");
    let text = fs_err::read_to_string(&path).unwrap();
    assert!(
        text.contains("--hash=sha256:") && !text.contains("http"),
        "expected pins with hashes and no URLs:\n{text}"
    );
    path
}

#[test]
fn offline_builds_need_no_network_after_a_fetch() {
    let registry = Registry::start("");
    let base = push_base(&registry);
    let index = IndexServer::start(&fixtures().wheels);
    let locked = lock_example(&index.url, &hello_service());
    let scratch = scratch_dir("offline-");
    let requirements = export_requirements(&locked.dir, &scratch.path().join("uv-cache"));
    let cache = scratch.path().join("cache");

    // Each lock is built online once (a fetch fills the cache), then offline without a
    // network; the hash-only lock needs the index for its lookups.
    let locks: [(&str, &Path, Vec<&str>); 2] = [
        ("pylock.toml", &locked.pylock, vec![]),
        (
            "requirements.txt",
            &requirements,
            vec!["--index-url", &index.url],
        ),
    ];
    let base_ref = format!("docker://{base}");
    let mut base_digest = String::new();
    for (name, lock, index_args) in &locks {
        let lock = lock.to_str().unwrap();
        let online_out = format!(
            "oci:{}:online",
            scratch.path().join(format!("online-{name}")).display()
        );
        let online = report(
            &envbuild()
                .args(["image", "--json", "--lock", lock, "--base", &base_ref])
                .args(["--output", &online_out])
                .args(index_args)
                .arg("--cache-dir")
                .arg(&cache)
                .output(),
        );
        assert_eq!(online["base"]["tag_resolution"], "registry", "{online}");
        base_digest = online["base"]["digest"].as_str().unwrap().to_owned();

        let mut fetch_args = vec!["fetch", "--lock", lock, "--base", &base_ref];
        fetch_args.extend(index_args.iter().copied());
        run_ok(
            &mut envbuild()
                .args(&fetch_args)
                .arg("--cache-dir")
                .arg(&cache)
                .command(),
        );

        let offline_out = format!(
            "oci:{}:offline",
            scratch.path().join(format!("offline-{name}")).display()
        );
        let mut args = vec!["image", "--json", "--offline", "--lock", lock];
        args.extend(["--base", &base_ref, "--output", &offline_out]);
        args.extend(index_args.iter().copied());

        // The namespace really has no network: without --offline the same build fails.
        let args_online: Vec<&str> = args.iter().copied().filter(|a| *a != "--offline").collect();
        let refused = envbuild_without_network(&args_online, &cache);
        assert!(
            !refused.status.success(),
            "a build reached the network inside `unshare -n`: the test proves nothing"
        );

        let offline = report(&envbuild_without_network(&args, &cache));
        assert_eq!(
            offline["digest"], online["digest"],
            "{name}: the offline build differs from the online one"
        );
        assert_eq!(offline["base"]["tag_resolution"], "cache", "{offline}");
        assert_eq!(offline["base"]["digest"], online["base"]["digest"]);
    }

    // A base by digest needs no tag resolution at all.
    let by_digest = format!("docker://{}@{base_digest}", registry.reference("base"));
    let pylock = locked.pylock.to_str().unwrap();
    let out = format!("oci:{}:digest", scratch.path().join("by-digest").display());
    let built = report(&envbuild_without_network(
        &[
            "image",
            "--json",
            "--offline",
            "--lock",
            pylock,
            "--base",
            &by_digest,
            "--output",
            &out,
        ],
        &cache,
    ));
    assert!(built["base"].get("tag_resolution").is_none(), "{built}");

    // An empty cache: one error that says what is missing and how to fill it.
    let empty = scratch.path().join("empty-cache");
    let out = format!("oci:{}:never", scratch.path().join("never").display());
    let failed = envbuild_without_network(
        &[
            "image",
            "--offline",
            "--lock",
            pylock,
            "--base",
            &base_ref,
            "--output",
            &out,
        ],
        &empty,
    );
    assert!(!failed.status.success());
    let message = stderr(&failed);
    assert!(
        message.contains(&format!(
            "base image `{base}` is not in the cache for an offline build"
        )) && message.contains("tag `py311` was never resolved with this cache")
            && message.contains("envbuild fetch --base"),
        "{message}"
    );
    assert!(!scratch.path().join("never").exists());

    // A push needs the network: refused up front.
    let failed = envbuild()
        .args(["image", "--offline", "--lock", pylock, "--base", &base_ref])
        .args(["--push", &registry.reference("out:1")])
        .arg("--cache-dir")
        .arg(&cache)
        .output();
    assert!(!failed.status.success());
    assert!(
        stderr(&failed).contains("with `--offline`: a push needs the registry"),
        "{}",
        stderr(&failed)
    );
}
