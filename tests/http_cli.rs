//! The command line against hostile locations (issue 7, defects 4 and 6): URLs that
//! carry credentials or tokens never reach a message whole, local paths that are not
//! files are refused, and `--max-artifact-size` bounds what a server can send (the
//! minimum rate is tested with small windows in `tests/fetch.rs`). The server is a few lines on 127.0.0.1 that answers every request
//! the same way.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{envbuild, scratch_dir, stderr};

/// How the server answers.
#[derive(Clone, Copy)]
enum Answer {
    /// 404.
    NotFound,
    /// 200 with bytes for ever and no `Content-Length`.
    Endless,
}

/// A server on 127.0.0.1 answering every request with `answer`; its address.
fn serve(answer: Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = match answer {
                    Answer::NotFound => stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                    Answer::Endless => (|| {
                        stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
                        let block = vec![b'z'; 64 * 1024];
                        loop {
                            stream.write_all(&block)?;
                        }
                    })(),
                };
            });
        }
    });
    address
}

/// A pylock.toml with one wheel at `location` (`url = "..."` or `path = "..."`), with no
/// size, in `dir`.
fn lock_with(dir: &Path, location: &str) -> std::path::PathBuf {
    let path = dir.join("pylock.toml");
    fs_err::write(
        &path,
        format!(
            "lock-version = \"1.0\"\ncreated-by = \"test\"\n\n[[packages]]\nname = \"x\"\nversion = \"1.0\"\nwheels = [{{ name = \"x-1.0-py3-none-any.whl\", {location}, hashes = {{ sha256 = \"{}\" }} }}]\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    path
}

/// `envbuild fetch` of `lock` for a fixed target (no base needed), with `extra` flags.
fn fetch(dir: &Path, lock: &Path, extra: &[&str]) -> Output {
    envbuild()
        .args(["fetch", "--lock"])
        .arg(lock)
        .args([
            "--platform",
            "linux/amd64",
            "--python",
            "3.12",
            "--glibc",
            "2.36",
        ])
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(extra)
        .output()
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs_err::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn assert_failed_without(output: &Output, secrets: &[&str]) -> String {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.starts_with("error: "), "{text}");
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    text
}

#[test]
fn err_unparsable_url_with_credentials_is_shown_redacted() {
    let dir = scratch_dir("http-cli-");
    let lock = lock_with(
        dir.path(),
        "url = \"http://alice:S3cret@127.0.0.1:99999/x.whl?token=t0ken\"",
    );

    let output = fetch(dir.path(), &lock, &[]);

    let text = assert_failed_without(&output, &["S3cret", "alice", "t0ken"]);
    assert!(
        text.contains("http://***@127.0.0.1:99999/x.whl?token=***"),
        "{text}"
    );
    assert!(text.contains("pylock.toml:"), "{text}");
}

#[test]
fn err_not_found_never_shows_the_token() {
    let address = serve(Answer::NotFound);
    let dir = scratch_dir("http-cli-");
    let lock = lock_with(
        dir.path(),
        &format!("url = \"http://{address}/files/x-1.0-py3-none-any.whl?token=secret-token\""),
    );

    let output = fetch(dir.path(), &lock, &[]);

    let text = assert_failed_without(&output, &["secret"]);
    assert!(text.contains("404"), "{text}");
    assert!(text.contains("?token=***"), "{text}");
}

#[test]
fn err_dev_zero_is_refused_at_once() {
    let dir = scratch_dir("http-cli-");
    let lock = lock_with(dir.path(), "path = \"/dev/zero\"");
    let started = Instant::now();

    let output = fetch(dir.path(), &lock, &[]);

    assert!(started.elapsed() < Duration::from_secs(20));
    let text = assert_failed_without(&output, &[]);
    assert!(
        text.contains("`/dev/zero`") && text.contains("is a device, not a regular file"),
        "{text}"
    );
    assert!(files_under(&dir.path().join("cache/wheels")).is_empty());
    assert!(files_under(&dir.path().join("cache/tmp")).is_empty());
}

#[test]
fn err_endless_body_stops_at_max_artifact_size() {
    let address = serve(Answer::Endless);
    let dir = scratch_dir("http-cli-");
    let lock = lock_with(
        dir.path(),
        &format!("url = \"http://{address}/x-1.0-py3-none-any.whl\""),
    );
    let started = Instant::now();

    let output = fetch(dir.path(), &lock, &["--max-artifact-size", "1MiB"]);

    assert!(started.elapsed() < Duration::from_secs(30));
    let text = assert_failed_without(&output, &[]);
    for part in [
        "larger than the limit of 1 MiB",
        "more than 1048576 bytes",
        "--max-artifact-size",
    ] {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
    assert!(files_under(&dir.path().join("cache/wheels")).is_empty());
    assert!(files_under(&dir.path().join("cache/tmp")).is_empty());
}

#[test]
fn err_max_artifact_size_must_be_a_size() {
    let dir = scratch_dir("http-cli-");
    let lock = lock_with(dir.path(), "path = \"/dev/zero\"");

    let output = fetch(dir.path(), &lock, &["--max-artifact-size", "4gigs"]);

    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("`4gigs` is not a size"), "{text}");
    assert!(text.contains("`4GiB`"), "{text}");
}
