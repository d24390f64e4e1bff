//! A base image whose config lists a wrong diff_id is refused when it is pulled from a
//! registry (issue 7, defect 10), since its `rootfs.diff_ids` would be copied into every
//! image built on it. The image is pushed to the real distribution registry with a config
//! that lies about its first layer; layouts and archives are covered by the unit tests
//! of `oci::layout`.

mod common;
mod registry_support;

use envbuild::digest::Sha256Digest;
use envbuild::oci::OciError;
use envbuild::registry::{Registry as Client, RegistryError, RegistryOptions, RegistryReference};
use registry_support::{Registry, assemble_image, file_layer, open_cache, read_layout_base};

#[tokio::test]
async fn registry_base_with_a_wrong_diff_id_is_refused() {
    let registry = Registry::start("");
    let scratch = common::scratch_dir("diff-ids-");
    let cache = open_cache(&scratch.path().join("cache"));
    let base = read_layout_base(&common::fixtures().base_ref, &cache);
    let layer = file_layer(&cache, &[("srv/hello.txt", b"hello\n")]);
    let client = Client::new(RegistryOptions::default()).unwrap();
    let reference = |name: &str| -> RegistryReference {
        format!("docker://{}/{name}", registry.addr)
            .parse()
            .unwrap()
    };

    // The same image twice: as it is, and with its config lying about the first layer.
    let good = assemble_image(&base, std::slice::from_ref(&layer), None);
    let wrong = Sha256Digest::of(b"not the first layer's tar");
    let mut lying = base.clone();
    let real = lying.diff_ids[0];
    lying.diff_ids[0] = wrong;
    lying.config["rootfs"]["diff_ids"][0] = serde_json::Value::from(wrong.oci());
    let bad = assemble_image(&lying, std::slice::from_ref(&layer), None);
    for (image, name) in [(&good, "good:1"), (&bad, "bad:1")] {
        client
            .push(std::slice::from_ref(image), &reference(name), &cache)
            .await
            .unwrap();
    }

    let pull_cache = open_cache(&scratch.path().join("pull-cache"));
    let error = client
        .pull_base(&reference("bad:1"), None, &pull_cache)
        .await
        .unwrap_err();
    let RegistryError::InvalidBase { source, .. } = &error else {
        panic!("{error}");
    };
    let OciError::DiffIdMismatch {
        layer: named,
        expected,
        found,
        ..
    } = source.as_ref()
    else {
        panic!("{source}");
    };
    assert_eq!(
        (*named, *expected, *found),
        (base.layers[0].digest, wrong, real)
    );
    let message = source.to_string();
    for part in [base.layers[0].digest, wrong, real].map(|digest| digest.to_string()) {
        assert!(message.contains(&part), "{message} does not name {part}");
    }

    // The same layers under an honest config pull fine, and each layer's verdict is
    // kept in the cache by its digest (so a second pull decompresses nothing).
    let pulled = client
        .pull_base(&reference("good:1"), None, &pull_cache)
        .await
        .unwrap();
    assert_eq!(pulled.diff_ids[0], real);
    for layer in &pulled.layers {
        assert!(
            scratch
                .path()
                .join("pull-cache/diff-ids")
                .join(layer.digest.hex())
                .is_file(),
            "no verdict for {}",
            layer.digest
        );
    }
}
