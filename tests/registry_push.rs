//! Pushing to and pulling from the real distribution registry (`docker-registry`) on
//! 127.0.0.1, checked with skopeo and podman: push then inspect, pull and run; the base
//! pulled back by tag and by digest into the cache (a second pull downloads nothing);
//! re-pushing uploads nothing; a second service sharing layers mounts or skips them;
//! large blobs go up in chunks; several platforms make an image index.

mod common;
mod registry_support;

use std::path::Path;
use std::process::Command;

use envbuild::cache::{Cache, EntryKind};
use envbuild::oci::{BaseImage, Image, top_level};
use envbuild::registry::{
    PushReport, Registry as Client, RegistryError, RegistryOptions, RegistryReference,
};
use registry_support::{
    Registry, assemble_image, file_layer, linux, noise, open_cache, read_layout_base,
};
use serde_json::Value;

/// A cache with the fixture base read into it.
fn cache_with_base(dir: &Path) -> (Cache, BaseImage) {
    let cache = open_cache(&dir.join("cache"));
    let base = read_layout_base(&common::fixtures().base_ref, &cache);
    (cache, base)
}

fn reference(registry: &Registry, name: &str) -> RegistryReference {
    format!("docker://{}/{name}", registry.addr)
        .parse()
        .expect("a valid reference")
}

fn client(options: RegistryOptions) -> Client {
    Client::new(options).expect("a registry client")
}

/// Sum of the blob sizes of `images` (configs and distinct layers).
fn blob_bytes(images: &[&Image]) -> u64 {
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    for image in images {
        if seen.insert(image.config_digest) {
            total += image.config.len() as u64;
        }
        for layer in &image.layers {
            if seen.insert(layer.digest) {
                total += layer.size;
            }
        }
    }
    total
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    common::require_tool("skopeo");
    common::run_ok(Command::new("skopeo").args(args)).stdout
}

fn skopeo_inspect(image: &str) -> Value {
    serde_json::from_slice(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]))
    .expect("skopeo inspect prints JSON")
}

fn skopeo_raw(image: &str) -> Vec<u8> {
    skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ])
}

/// `skopeo copy` from the registry into a layout: reads, and verifies, every blob.
fn skopeo_copy_out(image: &str, layout: &Path) {
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{image}"),
        &format!("oci:{}:copy", layout.display()),
    ]);
}

/// podman with the flags it needs on these machines (see tests/common).
fn podman() -> Command {
    common::require_tool("podman");
    common::require_tool("runc");
    let conf = common::scratch_root().join("registry-containers.conf");
    if !conf.is_file() {
        fs_err::create_dir_all(common::scratch_root()).unwrap();
        let temporary = conf.with_extension(format!("{}.tmp", std::process::id()));
        fs_err::write(&temporary, "[containers]\ndefault_ulimits = []\n").unwrap();
        fs_err::rename(&temporary, &conf).unwrap();
    }
    let mut command = Command::new("podman");
    command.env("CONTAINERS_CONF", conf).args([
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
    ]);
    command
}

/// `podman pull` from the registry, `podman run` it, and untag it; returns stdout.
fn podman_pull_and_run(image: &str, args: &[&str]) -> String {
    common::run_ok(podman().args(["pull", "--tls-verify=false", image]));
    let output = podman()
        .args(["run", "--rm", "--network=none", "--pull=never", image])
        .args(args)
        .output()
        .expect("running podman");
    let _ = podman().args(["untag", image]).output();
    assert!(
        output.status.success(),
        "podman run {image} failed: {}\n{}",
        common::stdout(&output),
        common::stderr(&output)
    );
    common::stdout(&output)
}

fn assert_counts(report: &PushReport, uploaded: usize, skipped: usize, mounted: usize) {
    assert_eq!(
        (
            report.blobs_uploaded,
            report.blobs_skipped,
            report.blobs_mounted
        ),
        (uploaded, skipped, mounted),
        "uploaded, skipped, mounted: {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_inspect_run_repush_and_pull_back() {
    let registry = Registry::start("");
    let scratch = common::scratch_dir("registry-push-");
    let (cache, base) = cache_with_base(scratch.path());
    let layer = file_layer(
        &cache,
        &[("srv/hello.py", b"print('hello from the registry')\n")],
    );
    let image = assemble_image(&base, &[layer], None);
    let destination = reference(&registry, "envbuild/app:v1");
    let pusher = client(RegistryOptions::default());

    let report = pusher
        .push(std::slice::from_ref(&image), &destination, &cache)
        .await
        .unwrap();
    assert_eq!(report.digest, image.manifest_digest);
    assert_counts(&report, 1 + image.layers.len(), 0, 0);
    assert_eq!(report.bytes_uploaded, blob_bytes(&[&image]));

    // Independent readers see exactly what was pushed.
    let name = format!("{}/envbuild/app:v1", registry.addr);
    assert_eq!(skopeo_raw(&name), image.manifest);
    let inspect = skopeo_inspect(&name);
    assert_eq!(inspect["Digest"], image.manifest_digest.oci());
    assert_eq!(inspect["Architecture"], "amd64");
    let output = podman_pull_and_run(&name, &["python3", "/srv/hello.py"]);
    assert_eq!(output.trim(), "hello from the registry");

    // Unchanged image: nothing uploaded again.
    let again = pusher
        .push(std::slice::from_ref(&image), &destination, &cache)
        .await
        .unwrap();
    assert_eq!(again.digest, report.digest);
    eprintln!("first push: {report:?}\nre-push: {again:?}");
    assert_eq!(again.bytes_uploaded, 0, "{again:?}");
    assert_counts(&again, 0, 1 + image.layers.len(), 0);

    // Pulled back as a base, by tag then by digest, into a fresh cache.
    let pull_cache = open_cache(&scratch.path().join("pull-cache"));
    let puller = client(RegistryOptions::default());
    let by_tag = puller
        .pull_base(&destination, None, &pull_cache)
        .await
        .unwrap();
    assert_eq!(by_tag.manifest_digest, image.manifest_digest);
    assert_eq!(by_tag.layers, image.layers);
    assert_eq!(by_tag.platform, linux("amd64"));
    assert_eq!(
        by_tag.reference,
        format!("{}/envbuild/app:v1", registry.addr)
    );
    assert_eq!(
        by_tag.config,
        serde_json::from_slice::<Value>(&image.config).unwrap(),
        "the config is the pushed one"
    );
    for layer in &image.layers {
        let path = pull_cache
            .lookup(EntryKind::Blob, &layer.digest, Some(layer.size))
            .expect("every layer is in the cache");
        let bytes = fs_err::read(path).unwrap();
        assert_eq!(envbuild::digest::Sha256Digest::of(&bytes), layer.digest);
    }
    let first = puller.stats();
    assert_eq!(first.blobs_downloaded, 1 + image.layers.len() as u64);
    assert_eq!(first.bytes_downloaded, blob_bytes(&[&image]));

    let by_digest_reference: RegistryReference =
        format!("{}/envbuild/app@{}", registry.addr, image.manifest_digest)
            .parse()
            .unwrap();
    let by_digest = puller
        .pull_base(&by_digest_reference, None, &pull_cache)
        .await
        .unwrap();
    assert_eq!(by_digest.manifest_digest, by_tag.manifest_digest);
    assert_eq!(by_digest.layers, by_tag.layers);
    assert_eq!(by_digest.diff_ids, by_tag.diff_ids);
    let second = puller.stats();
    assert_eq!(
        (second.blobs_downloaded, second.bytes_downloaded),
        (first.blobs_downloaded, first.bytes_downloaded),
        "a warm cache downloads no blob"
    );

    // The pull recorded where the blobs live, for later mounts (a cache record keyed by
    // the registry's name).
    let records = pull_cache
        .root()
        .join("registry")
        .join(envbuild::digest::Sha256Digest::of(registry.addr.as_bytes()).hex());
    let records = fs_err::read_to_string(records).unwrap();
    assert!(records.contains("envbuild/app"), "{records}");

    // A missing tag is a clear error naming the registry, repository and tag.
    let missing = reference(&registry, "envbuild/app:no-such-tag");
    let error = puller
        .pull_base(&missing, None, &pull_cache)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::ManifestNotFound { .. }),
        "{error}"
    );
    let message = error.to_string();
    for part in [
        registry.addr.as_str(),
        "envbuild/app",
        "no-such-tag",
        "404",
        "MANIFEST_UNKNOWN",
    ] {
        assert!(message.contains(part), "{part} missing from: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_layers_are_mounted_or_skipped() {
    let registry = Registry::start("");
    let scratch = common::scratch_dir("registry-mount-");
    let (cache, base) = cache_with_base(scratch.path());
    let service_a = assemble_image(
        &base,
        &[file_layer(&cache, &[("srv/a.py", b"print('a')\n")])],
        None,
    );
    let layer_b = file_layer(&cache, &[("srv/b.py", b"print('b')\n")]);
    let service_b = assemble_image(&base, std::slice::from_ref(&layer_b), None);
    let shared = base.layers.len();

    let first = client(RegistryOptions::default())
        .push(
            std::slice::from_ref(&service_a),
            &reference(&registry, "team/service-a:1"),
            &cache,
        )
        .await
        .unwrap();
    assert_counts(&first, 1 + service_a.layers.len(), 0, 0);

    // Another repository: the base layers are mounted from team/service-a (the cache
    // knows they live there), only the new layer and config are uploaded.
    let new_bytes = service_b.config.len() as u64 + layer_b.size;
    let second = client(RegistryOptions::default())
        .push(
            std::slice::from_ref(&service_b),
            &reference(&registry, "team/service-b:1"),
            &cache,
        )
        .await
        .unwrap();
    assert_eq!(second.digest, service_b.manifest_digest);
    eprintln!("first push: {first:?}\nsecond service, sharing the base: {second:?}");
    assert_counts(&second, 2, 0, shared);
    assert_eq!(second.bytes_uploaded, new_bytes, "{second:?}");
    let copy = scratch.path().join("copy-b");
    skopeo_copy_out(&format!("{}/team/service-b:1", registry.addr), &copy);

    // Service b into service a's repository: the base layers are there already and
    // skipped; b's config and layer are mounted from team/service-b. Nothing is sent.
    let third = client(RegistryOptions::default())
        .push(
            std::slice::from_ref(&service_b),
            &reference(&registry, "team/service-a:2"),
            &cache,
        )
        .await
        .unwrap();
    assert_counts(&third, 0, shared, 2);
    assert_eq!(third.bytes_uploaded, 0);

    // Without records (another machine's cache), blobs present elsewhere are uploaded.
    let (other_cache, other_base) = cache_with_base(&scratch.path().join("other"));
    let fresh = assemble_image(
        &other_base,
        &[file_layer(&other_cache, &[("srv/b.py", b"print('b')\n")])],
        None,
    );
    assert_eq!(fresh.manifest_digest, service_b.manifest_digest);
    let fourth = client(RegistryOptions::default())
        .push(
            &[fresh],
            &reference(&registry, "team/service-c:1"),
            &other_cache,
        )
        .await
        .unwrap();
    assert_counts(&fourth, 1 + service_b.layers.len(), 0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blobs_go_up_in_chunks() {
    let registry = Registry::start("");
    let scratch = common::scratch_dir("registry-chunks-");
    let (cache, base) = cache_with_base(scratch.path());
    let payload = noise(7, 300 * 1024);
    let layer = file_layer(&cache, &[("srv/noise.bin", &payload)]);
    let chunk_size = 64 * 1024;
    assert!(
        layer.size > 4 * chunk_size,
        "the layer spans several chunks"
    );
    let image = assemble_image(&base, std::slice::from_ref(&layer), None);
    let options = RegistryOptions {
        chunk_size,
        ..RegistryOptions::default()
    };
    let report = client(options)
        .push(
            std::slice::from_ref(&image),
            &reference(&registry, "chunked/app:1"),
            &cache,
        )
        .await
        .unwrap();
    assert_eq!(report.digest, image.manifest_digest);
    assert_eq!(report.bytes_uploaded, blob_bytes(&[&image]));

    // The registry saw PATCH requests: at least one per chunk of each blob over the size.
    let log = registry.log();
    let patches = log
        .lines()
        .filter(|line| line.contains("\"PATCH /v2/chunked/app/blobs/uploads/"))
        .count() as u64;
    let expected: u64 = image
        .layers
        .iter()
        .filter(|layer| layer.size > chunk_size)
        .map(|layer| layer.size.div_ceil(chunk_size))
        .sum();
    assert_eq!(patches, expected, "PATCH requests in the registry log");

    // The stored blob is the layer, byte for byte.
    let stored = registry
        .stored_blob(&layer.digest.oci())
        .expect("the layer is stored");
    assert_eq!(envbuild::digest::Sha256Digest::of(&stored), layer.digest);
    assert_eq!(stored.len() as u64, layer.size);
    skopeo_copy_out(
        &format!("{}/chunked/app:1", registry.addr),
        &scratch.path().join("copy"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_platforms_make_an_index() {
    let registry = Registry::start("");
    let scratch = common::scratch_dir("registry-index-");
    let (cache, base) = cache_with_base(scratch.path());
    let layer = file_layer(&cache, &[("srv/app.py", b"print('app')\n")]);
    let amd64 = assemble_image(&base, std::slice::from_ref(&layer), None);
    let arm64 = assemble_image(&base, &[layer], Some(&linux("arm64")));
    let images = [arm64.clone(), amd64.clone()];
    let top = top_level(&images, "expected").unwrap();
    let destination = reference(&registry, "multi/app:1");

    let report = client(RegistryOptions::default())
        .push(&images, &destination, &cache)
        .await
        .unwrap();
    assert_eq!(report.digest, top.descriptor.digest);
    // The two configs differ; the layers are shared and sent once.
    assert_counts(&report, 2 + amd64.layers.len(), 0, 0);
    assert_eq!(report.bytes_uploaded, blob_bytes(&[&amd64, &arm64]));

    let raw = skopeo_raw(&format!("{}/multi/app:1", registry.addr));
    assert_eq!(Some(&raw), top.index.as_ref(), "the index bytes as pushed");
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    let listed: Vec<(String, String)> = manifests
        .iter()
        .map(|entry| {
            (
                entry["platform"]["architecture"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                entry["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("amd64".to_string(), amd64.manifest_digest.oci()),
            ("arm64".to_string(), arm64.manifest_digest.oci())
        ]
    );
    // Each platform manifest is in the registry by digest.
    for image in [&amd64, &arm64] {
        let raw = skopeo_raw(&format!(
            "{}/multi/app@{}",
            registry.addr, image.manifest_digest
        ));
        assert_eq!(raw, image.manifest);
    }

    // Pulled back as a base: the platform's manifest, or a clear error without one.
    let pull_cache = open_cache(&scratch.path().join("pull-cache"));
    let puller = client(RegistryOptions::default());
    let pulled = puller
        .pull_base(&destination, Some(&linux("arm64")), &pull_cache)
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, arm64.manifest_digest);
    assert_eq!(pulled.platform, linux("arm64"));
    let error = puller
        .pull_base(&destination, None, &pull_cache)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::PlatformRequired { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("linux/amd64, linux/arm64"),
        "{error}"
    );
    let error = puller
        .pull_base(&destination, Some(&linux("s390x")), &pull_cache)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::PlatformNotFound { .. }),
        "{error}"
    );
}
