//! Test helpers shared by the unit tests of the parsers of untrusted input: target
//! environments, and hostile variations of real files for no-panic tests.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
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

/// What the no-panic tests of the parsers of untrusted input feed them: a real file
/// (`seeds`), changed by up to eight edits of the kinds hostile files use — bytes
/// replaced, inserted, deleted or copied from elsewhere, the text cut short, thousands
/// of nested brackets, huge numbers, control characters and the format's own tokens in
/// the wrong place. The text is at most a few hundred kilobytes, so memory stays small.
pub(crate) fn hostile_text(seeds: Vec<String>) -> impl Strategy<Value = String> {
    let edits = proptest::collection::vec(edit(), 0..8);
    (0..seeds.len(), edits).prop_map(move |(seed, edits)| {
        let mut bytes = seeds[seed].as_bytes().to_vec();
        for edit in edits {
            edit.apply(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Run `parse` on [`hostile_text`] from `seeds`, `cases` times (more with
/// `ENVBUILD_HOSTILE_CASES`), with a fixed seed: the same inputs on every run, so a
/// failure reproduces. `parse` returns nothing; proptest reports any panic with the
/// smallest input it can find. A stack overflow aborts the test process instead,
/// which fails the run as well.
pub(crate) fn assert_no_panic<S: Into<String>>(
    name: &str,
    seeds: impl IntoIterator<Item = S>,
    cases: u32,
    parse: impl Fn(&str),
) {
    let seeds: Vec<String> = seeds.into_iter().map(Into::into).collect();
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let cases = std::env::var("ENVBUILD_HOSTILE_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    // One stream per parser, the same on every run.
    let seed: Vec<u8> = name.bytes().cycle().take(32).collect();
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let started = std::time::Instant::now();
    let result = runner.run(&hostile_text(seeds), |text| {
        parse(&text);
        Ok(())
    });
    if let Err(error) = result {
        panic!("{name}: a hostile input made the parser panic: {error}");
    }
    eprintln!(
        "{name}: {cases} hostile inputs in {:.1?}",
        started.elapsed()
    );
}

/// One change to a text.
#[derive(Debug, Clone)]
enum Edit {
    /// Replace the byte at this position.
    Replace(usize, u8),
    /// Insert these bytes.
    Insert(usize, Vec<u8>),
    /// Delete this many bytes.
    Delete(usize, usize),
    /// Copy a range to another position.
    Splice {
        from: usize,
        length: usize,
        to: usize,
    },
    /// Cut the text here.
    Truncate(usize),
    /// Insert this opening bracket this many times (and maybe as many closing ones).
    Nest {
        at: usize,
        open: &'static str,
        close: &'static str,
        depth: usize,
        closed: bool,
    },
    /// Insert one of the texts parsers trip on.
    Token(usize, &'static str),
}

/// Bytes hostile files are made of: control characters, quotes, brackets, separators,
/// escapes and a little non-ASCII.
const ALPHABET: &[u8] = b"\0\x01\x1b\t\r\n \"'()[]{}<>=!~;:,.#@%$\\/-_*^|&+?azAZ09\xc3\xa9\xff";

/// Texts with meaning in some format, or numbers no field expects.
const TOKENS: &[&str] = &[
    "99999999999999999999999999999",
    "18446744073709551616",
    "-1",
    "1e999",
    "NaN",
    "\u{1b}[31m",
    "\u{202e}",
    "\n[[packages]]\nname = \"",
    "\n[[package]]\nname = \"",
    "\n[metadata]\nlock-version = \"",
    "\"_meta\": {",
    "{\"files\": [",
    "extra == '",
    " and ",
    " or ",
    "'x' in extras",
    " ; ",
    " @ ",
    "==",
    "===",
    "://",
    "file:///",
    "http://user:pass@127.0.0.1:99999/",
    "%",
    "%ff",
    "${HOME}",
    "\\\n",
    "-r ",
    "-c ",
    "--hash=sha256:",
    "--index-url ",
    "sha256:",
    "<a href=\"",
    "<base href=\"",
    "<!--",
    "&#",
    "&#x110000;",
    "&amp",
    "machine ",
    "macdef x\n",
    "[global]\nindex-url = ",
    "\n  ",
    "//[",
    "//host",
    "..",
];

const OPENERS: &[(&str, &str)] = &[
    ("(", ")"),
    ("[", "]"),
    ("{", "}"),
    ("[[", "]]"),
    ("{\"a\":", "}"),
    ("x = [", "]"),
    ("a = {b=", "}"),
    ("<a>", "</a>"),
];

fn edit() -> impl Strategy<Value = Edit> {
    let position = 0..usize::MAX;
    prop_oneof![
        3 => (position.clone(), proptest::sample::select(ALPHABET)).prop_map(|(at, byte)| Edit::Replace(at, byte)),
        2 => (position.clone(), proptest::collection::vec(proptest::sample::select(ALPHABET), 1..16))
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        2 => (position.clone(), 1..64usize).prop_map(|(at, length)| Edit::Delete(at, length)),
        2 => (position.clone(), 1..512usize, position.clone())
            .prop_map(|(from, length, to)| Edit::Splice { from, length, to }),
        1 => position.clone().prop_map(Edit::Truncate),
        1 => (position.clone(), proptest::sample::select(OPENERS), prop_oneof![1..40usize, 1..25_000usize], any::<bool>())
            .prop_map(|(at, (open, close), depth, closed)| Edit::Nest { at, open, close, depth, closed }),
        3 => (position, proptest::sample::select(TOKENS)).prop_map(|(at, token)| Edit::Token(at, token)),
    ]
}

impl Edit {
    fn apply(self, bytes: &mut Vec<u8>) {
        let within = |at: usize, bytes: &Vec<u8>| at % (bytes.len() + 1);
        match self {
            Self::Replace(at, byte) => {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = byte;
                }
            }
            Self::Insert(at, inserted) => {
                let at = within(at, bytes);
                bytes.splice(at..at, inserted);
            }
            Self::Delete(at, length) => {
                let at = within(at, bytes);
                let end = (at + length).min(bytes.len());
                bytes.drain(at..end);
            }
            Self::Splice { from, length, to } => {
                let from = within(from, bytes);
                let end = (from + length).min(bytes.len());
                let copied = bytes[from..end].to_vec();
                let to = within(to, bytes);
                bytes.splice(to..to, copied);
            }
            Self::Truncate(at) => {
                let at = within(at, bytes);
                bytes.truncate(at);
            }
            Self::Nest {
                at,
                open,
                close,
                depth,
                closed,
            } => {
                let at = within(at, bytes);
                let mut nested = open.repeat(depth).into_bytes();
                if closed {
                    nested.extend(close.repeat(depth).into_bytes());
                }
                bytes.splice(at..at, nested);
            }
            Self::Token(at, token) => {
                let at = within(at, bytes);
                bytes.splice(at..at, token.bytes());
            }
        }
    }
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
