//! Bytecode (standards §3.8): `.pyc` files compiled by a host CPython of the target's
//! minor version, because the format (magic number, marshal, opcodes) belongs to the
//! interpreter and cannot be made in Rust. envbuild writes PEP 552 unchecked-hash pycs:
//! they embed a hash of the source instead of its mtime, and the importer never checks
//! or rewrites them, so the bytes depend on the source only.
//!
//! [`PycCompiler`] finds and identifies the interpreter; [`PycCompiler::compile`] runs
//! one interpreter process for a list of sources, fed over stdin/stdout in a small
//! framed protocol, in the order given. Output is deterministic: hash randomization is
//! off (`PYTHONHASHSEED=0`: up to 3.10, `frozenset` constants marshal in hash order), no
//! `PYTHON*` variable or site customization of the host leaks in, and marshal writes
//! interned strings as references whatever their reference count (CPython ≥ 3.8).
//! Sources that do not compile (Python 2 files, templates in packages) are skipped,
//! as `compileall` does.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::digest::Sha256Digest;
use crate::platform::PythonVersion;
use crate::untrusted::Untrusted;
use crate::wheel::error::WheelError;

/// The compiler script, run with `python -s -S -B -c`. Requests on stdin are
/// `>II` (path length, source length), the UTF-8 path the pyc records as
/// `co_filename` (the installed path in the image), then the source bytes. Each reply
/// on stdout is `>BI` (status, length) and the payload: status 0 and the pyc bytes, or
/// status 1 and why the source does not compile. EOF on stdin ends it.
const COMPILER_SCRIPT: &str = r#"
import struct, sys, warnings
import importlib.util
from importlib._bootstrap_external import _code_to_hash_pyc
warnings.simplefilter("ignore")
source_hash = importlib.util.source_hash
requests = sys.stdin.buffer
replies = sys.stdout.buffer
def read_exact(size):
    data = requests.read(size)
    if len(data) != size:
        raise SystemExit("envbuild pyc compiler: truncated request")
    return data
while True:
    header = requests.read(8)
    if not header:
        break
    if len(header) != 8:
        raise SystemExit("envbuild pyc compiler: truncated request header")
    path_size, source_size = struct.unpack(">II", header)
    dfile = read_exact(path_size).decode("utf-8")
    source = read_exact(source_size)
    try:
        code = compile(source, dfile, "exec", dont_inherit=True, optimize=0)
        reply = bytes(_code_to_hash_pyc(code, source_hash(source), checked=False))
        status = 0
    except Exception as error:
        reply = ("%s: %s" % (type(error).__name__, error)).encode("utf-8", "replace")
        status = 1
    replies.write(struct.pack(">BI", status, len(reply)))
    replies.write(reply)
    replies.flush()
"#;

/// What a candidate interpreter reports about itself, one value a line.
const PROBE_SCRIPT: &str = r#"
import sys, importlib.util
print(sys.implementation.name)
print("%d.%d.%d" % sys.version_info[:3])
print(sys.implementation.cache_tag)
print(importlib.util.MAGIC_NUMBER.hex())
print(sys.executable)
print(sys.version.replace("\n", " "))
"#;

/// The pyc header's flags field for an unchecked-hash pyc (PEP 552: bit 0 set means
/// hash-based, bit 1 clear means the importer does not check the source).
pub const UNCHECKED_HASH_FLAGS: u32 = 0b01;

/// A host CPython able to compile bytecode for the target. Cheap to share across
/// threads: each [`compile`](Self::compile) call runs its own process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PycCompiler {
    /// The interpreter itself (`sys.executable`), not a launcher or shim in front.
    executable: PathBuf,
    /// Its version, patch level included.
    version: PythonVersion,
    /// `sys.version`, with build date and compiler.
    build: String,
    /// `sys.implementation.cache_tag`, e.g. `cpython-311`.
    cache_tag: String,
    /// `importlib.util.MAGIC_NUMBER` in hex.
    magic: String,
}

/// Errors finding the compiler or compiling a wheel's sources.
#[derive(Debug, thiserror::Error)]
pub enum BytecodeError {
    /// No interpreter on PATH is CPython of the target's minor version.
    #[error(
        "no host CPython {target} found to compile bytecode for the target (tried {tried}); install CPython {target} on this machine or pass `--compile-with /path/to/python{target}`",
        tried = Untrusted(.tried)
    )]
    InterpreterNotFound {
        /// The target's `major.minor`.
        target: String,
        /// What was tried and what each turned out to be.
        tried: String,
    },
    /// The interpreter found or given is another implementation or minor version.
    #[error(
        "`{python}` is {found}, but the target runs CPython {target}, and bytecode only loads in the minor version that wrote it; pass `--compile-with /path/to/python{target}`",
        python = Untrusted(.python), found = Untrusted(.found)
    )]
    InterpreterMismatch {
        /// The interpreter path.
        python: String,
        /// What it is, e.g. `CPython 3.12.1`.
        found: String,
        /// The target's `major.minor`.
        target: String,
    },
    /// The interpreter could not be run or did not describe itself.
    #[error(
        "cannot run `{python}` to check its version ({reason}); pass `--compile-with /path/to/python{target}` naming a working CPython {target}",
        python = Untrusted(.python), reason = Untrusted(.reason)
    )]
    ProbeFailed {
        /// The interpreter path.
        python: String,
        /// The target's `major.minor`.
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// The compiler process failed or broke the protocol.
    #[error(
        "compiling bytecode for wheel `{wheel}` with `{python}` failed: {reason}; check that the interpreter works, or build without `--compile-bytecode`",
        wheel = Untrusted(.wheel), python = Untrusted(.python), reason = Untrusted(.reason)
    )]
    CompilerFailed {
        /// The interpreter path.
        python: String,
        /// The wheel file name.
        wheel: String,
        /// What went wrong, with the interpreter's stderr when it has any.
        reason: String,
    },
    /// A source could not be read from the wheel (or failed its RECORD hash).
    #[error(transparent)]
    Wheel(#[from] WheelError),
}

/// One source to compile: its installed path in the image and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PycSource {
    /// The absolute path in the image, recorded as the code's file name.
    pub path: String,
    /// The source bytes.
    pub source: Vec<u8>,
}

/// The result for one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PycOutcome {
    /// The pyc bytes.
    Compiled(Vec<u8>),
    /// The source does not compile; why.
    Skipped(String),
}

impl PycCompiler {
    /// Find a host CPython of the target's `major.minor`: `explicit` if given (an
    /// error if it is another version), else the first of `python3.X`, `python3` and
    /// `python` on PATH that reports that version.
    pub fn find(target: PythonVersion, explicit: Option<&Path>) -> Result<Self, BytecodeError> {
        let wanted = format!("{}.{}", target.major, target.minor);
        if let Some(path) = explicit {
            let compiler = Self::probe(path, &wanted)?;
            return compiler.check_version(path, target, &wanted);
        }
        let names = [
            format!("python{wanted}"),
            format!("python{}", target.major),
            "python".to_string(),
        ];
        let search = std::env::var_os("PATH").unwrap_or_default();
        let mut tried = Vec::new();
        for name in &names {
            let Some(path) = std::env::split_paths(&search)
                .map(|folder| folder.join(name))
                .find(|candidate| is_executable(candidate))
            else {
                tried.push(format!("`{name}`: not on PATH"));
                continue;
            };
            match Self::probe(&path, &wanted) {
                Ok(compiler) if compiler.matches(target) => return Ok(compiler),
                Ok(compiler) => {
                    tried.push(format!("`{}`: {}", path.display(), compiler.description()))
                }
                Err(error) => tried.push(format!("`{}`: {error}", path.display())),
            }
        }
        Err(BytecodeError::InterpreterNotFound {
            target: wanted,
            tried: tried.join("; "),
        })
    }

    /// What the compiler is, exactly, for layer cache keys: `sys.version`, the magic
    /// number, the cache tag and a hash of the compiler script. Two compilers with the
    /// same identity write the same pycs.
    pub fn identity(&self) -> String {
        format!(
            "CPython {} (magic {}, cache tag {}, envbuild pyc script {})",
            self.build,
            self.magic,
            self.cache_tag,
            &Sha256Digest::of(COMPILER_SCRIPT.as_bytes()).hex()[..16]
        )
    }

    /// The interpreter's version, patch level included.
    pub fn version(&self) -> PythonVersion {
        self.version
    }

    /// The interpreter that runs (its `sys.executable`).
    pub fn executable(&self) -> &Path {
        &self.executable
    }

    /// `sys.implementation.cache_tag`, which names pycs (`x.cpython-311.pyc`).
    pub fn cache_tag(&self) -> &str {
        &self.cache_tag
    }

    /// Where `importlib.util.cache_from_source` puts the pyc of the source at layer
    /// path `source` (`a/b.py` → `a/__pycache__/b.cpython-311.pyc`), or `None` if it
    /// is not a `.py` file.
    pub fn pyc_path(&self, source: &str) -> Option<String> {
        let (folder, file) = match source.rsplit_once('/') {
            Some((folder, file)) => (Some(folder), file),
            None => (None, source),
        };
        let stem = file.strip_suffix(".py")?;
        // cache_from_source splits at the last dot; `.py` alone keeps `py` as the stem.
        let stem = if stem.is_empty() { "py" } else { stem };
        let name = format!("__pycache__/{stem}.{}.pyc", self.cache_tag);
        Some(match folder {
            Some(folder) => format!("{folder}/{name}"),
            None => name,
        })
    }

    /// Compile `sources` in order in one interpreter process. `wheel` names the wheel
    /// in errors. Each result is the pyc, or why the source was skipped.
    pub fn compile(
        &self,
        wheel: &str,
        sources: impl IntoIterator<Item = Result<PycSource, BytecodeError>>,
    ) -> Result<Vec<PycOutcome>, BytecodeError> {
        let mut session = Session::start(self, wheel)?;
        let mut outcomes = Vec::new();
        for source in sources {
            let source = source?;
            match session.compile(&source) {
                Ok(outcome) => outcomes.push(outcome),
                Err(reason) => return Err(session.fail(reason)),
            }
        }
        session.finish()?;
        Ok(outcomes)
    }

    fn matches(&self, target: PythonVersion) -> bool {
        self.version.major == target.major && self.version.minor == target.minor
    }

    fn description(&self) -> String {
        format!("CPython {}", self.version)
    }

    fn check_version(
        self,
        path: &Path,
        target: PythonVersion,
        wanted: &str,
    ) -> Result<Self, BytecodeError> {
        if self.matches(target) {
            Ok(self)
        } else {
            Err(BytecodeError::InterpreterMismatch {
                python: path.display().to_string(),
                found: self.description(),
                target: wanted.to_string(),
            })
        }
    }

    /// Run `path` to learn what it is. Anything but CPython is refused here.
    fn probe(path: &Path, wanted: &str) -> Result<Self, BytecodeError> {
        let failed = |reason: String| BytecodeError::ProbeFailed {
            python: path.display().to_string(),
            target: wanted.to_string(),
            reason,
        };
        let output = Command::new(path)
            .args(["-I", "-S", "-c", PROBE_SCRIPT])
            .stdin(Stdio::null())
            .output()
            .map_err(|error| failed(error.to_string()))?;
        if !output.status.success() {
            return Err(failed(format!(
                "it exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = text.lines().collect();
        let [implementation, version, cache_tag, magic, executable, build] = lines[..] else {
            return Err(failed(format!("unexpected output `{}`", text.trim())));
        };
        let version: PythonVersion = version
            .parse()
            .map_err(|error: crate::platform::PythonVersionError| failed(error.to_string()))?;
        if implementation != "cpython" {
            return Err(BytecodeError::InterpreterMismatch {
                python: path.display().to_string(),
                found: format!("{implementation} {version}, not CPython"),
                target: wanted.to_string(),
            });
        }
        let executable = if executable.is_empty() {
            path.to_path_buf()
        } else {
            PathBuf::from(executable)
        };
        Ok(Self {
            executable,
            version,
            build: build.to_string(),
            cache_tag: cache_tag.to_string(),
            magic: magic.to_string(),
        })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// One running compiler process.
struct Session<'a> {
    compiler: &'a PycCompiler,
    wheel: &'a str,
    child: Child,
    requests: Option<BufWriter<ChildStdin>>,
    replies: BufReader<ChildStdout>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl<'a> Session<'a> {
    fn start(compiler: &'a PycCompiler, wheel: &'a str) -> Result<Self, BytecodeError> {
        let mut command = Command::new(&compiler.executable);
        // -s -S: no user or site packages, so no `.pth` or sitecustomize runs; -B: the
        // compiler itself writes no pycs. Not -E: PYTHONHASHSEED must apply, so every
        // other PYTHON* variable is removed instead.
        command.args(["-s", "-S", "-B", "-c", COMPILER_SCRIPT]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PYTHON") {
                command.env_remove(key);
            }
        }
        command
            .env("PYTHONHASHSEED", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|error| BytecodeError::CompilerFailed {
                python: compiler.executable.display().to_string(),
                wheel: wheel.to_string(),
                reason: format!("cannot start it: {error}"),
            })?;
        let requests = child.stdin.take().map(BufWriter::new);
        let replies = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let stderr = child.stderr.take().map(|mut stderr| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = (&mut stderr).take(64 * 1024).read_to_string(&mut text);
                // Keep draining so the child never blocks on a full pipe.
                let _ = std::io::copy(&mut stderr, &mut std::io::sink());
                text
            })
        });
        Ok(Self {
            compiler,
            wheel,
            child,
            requests,
            replies,
            stderr,
        })
    }

    /// Send one request and read its reply; `Err` describes a broken exchange.
    fn compile(&mut self, source: &PycSource) -> Result<PycOutcome, String> {
        let path_size = u32::try_from(source.path.len()).map_err(|_| "path too long")?;
        let source_size =
            u32::try_from(source.source.len()).map_err(|_| "source larger than 4 GiB")?;
        let requests = self.requests.as_mut().expect("open until finish");
        let sent = requests
            .write_all(&path_size.to_be_bytes())
            .and_then(|()| requests.write_all(&source_size.to_be_bytes()))
            .and_then(|()| requests.write_all(source.path.as_bytes()))
            .and_then(|()| requests.write_all(&source.source))
            .and_then(|()| requests.flush());
        sent.map_err(|error| format!("cannot send `{}`: {error}", source.path))?;
        let mut header = [0u8; 5];
        self.replies
            .read_exact(&mut header)
            .map_err(|error| format!("no reply for `{}`: {error}", source.path))?;
        let size = u32::from_be_bytes(header[1..].try_into().expect("4 bytes")) as usize;
        let mut payload = vec![0; size];
        self.replies
            .read_exact(&mut payload)
            .map_err(|error| format!("truncated reply for `{}`: {error}", source.path))?;
        match header[0] {
            0 => Ok(PycOutcome::Compiled(payload)),
            1 => Ok(PycOutcome::Skipped(
                String::from_utf8_lossy(&payload).into_owned(),
            )),
            status => Err(format!(
                "reply status {status} for `{}` is not 0 or 1",
                source.path
            )),
        }
    }

    /// End the process after a broken exchange and describe it, stderr included.
    fn fail(mut self, reason: String) -> BytecodeError {
        self.requests = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.error(reason)
    }

    fn error(&mut self, reason: String) -> BytecodeError {
        let stderr = self
            .stderr
            .take()
            .and_then(|handle| handle.join().ok())
            .unwrap_or_default();
        let stderr = stderr.trim();
        BytecodeError::CompilerFailed {
            python: self.compiler.executable.display().to_string(),
            wheel: self.wheel.to_string(),
            reason: if stderr.is_empty() {
                reason
            } else {
                format!("{reason}; it wrote: {stderr}")
            },
        }
    }

    /// Close stdin and wait for a clean exit with nothing left on stdout.
    fn finish(mut self) -> Result<(), BytecodeError> {
        drop(self.requests.take());
        let mut rest = Vec::new();
        let read = self.replies.read_to_end(&mut rest);
        let status = self.child.wait();
        match (read, status) {
            (Ok(0), Ok(status)) if status.success() => {
                let _ = self.stderr.take().map(std::thread::JoinHandle::join);
                Ok(())
            }
            (Ok(_), Ok(status)) if status.success() => {
                Err(self.error("it wrote more replies than requests".to_string()))
            }
            (_, Ok(status)) => Err(self.error(format!("it exited with {status}"))),
            (_, Err(error)) => Err(self.error(format!("cannot wait for it: {error}"))),
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // An error on the caller's side (a source failing its RECORD hash) drops the
        // session mid-stream: make sure the process does not outlive it.
        if self.requests.take().is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The header of a pyc (PEP 552): the magic number, the flags field and the 8 bytes
/// after it (the source hash of a hash-based pyc); `None` if it is too short.
pub fn pyc_header(pyc: &[u8]) -> Option<([u8; 4], u32, [u8; 8])> {
    let magic: [u8; 4] = pyc.get(..4)?.try_into().ok()?;
    let flags = u32::from_le_bytes(pyc.get(4..8)?.try_into().ok()?);
    let hash: [u8; 8] = pyc.get(8..16)?.try_into().ok()?;
    Some((magic, flags, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> PycCompiler {
        PycCompiler::find(
            PythonVersion {
                major: 3,
                minor: 11,
                patch: None,
            },
            None,
        )
        .unwrap_or_else(|error| panic!("the tests need a host CPython 3.11: {error}"))
    }

    fn compile_one(compiler: &PycCompiler, path: &str, source: &[u8]) -> PycOutcome {
        let sources = [Ok(PycSource {
            path: path.to_string(),
            source: source.to_vec(),
        })];
        let mut outcomes = compiler
            .compile("demo-1.0-py3-none-any.whl", sources)
            .unwrap();
        assert_eq!(outcomes.len(), 1);
        outcomes.remove(0)
    }

    #[test]
    fn ok_unchecked_hash_pyc() {
        let compiler = host();
        assert_eq!(compiler.cache_tag(), "cpython-311");
        let PycOutcome::Compiled(pyc) = compile_one(&compiler, "/opt/x.py", b"x = 1\n") else {
            panic!("did not compile")
        };
        let (magic, flags, _) = pyc_header(&pyc).unwrap();
        assert_eq!(flags, UNCHECKED_HASH_FLAGS);
        assert_eq!(&magic[2..], b"\r\n");
        assert!(compiler.identity().contains(&compiler.magic));
    }

    #[test]
    fn ok_deterministic_across_processes_with_sets() {
        // Up to 3.10 a frozenset constant marshals in hash order; whatever the
        // version, separate processes must agree.
        let source = b"def f(x):\n    return x in {'alpha', 'beta', 'gamma', 'delta', 'epsilon'}\n";
        let compiler = host();
        let first = compile_one(&compiler, "/opt/m.py", source);
        for _ in 0..3 {
            assert_eq!(compile_one(&compiler, "/opt/m.py", source), first);
        }
    }

    #[test]
    fn skipped_sources_do_not_stop_the_rest() {
        let compiler = host();
        let sources = [
            Ok(PycSource {
                path: "/a.py".to_string(),
                source: b"print 'python 2'\n".to_vec(),
            }),
            Ok(PycSource {
                path: "/b.py".to_string(),
                source: b"{% if template %}\n".to_vec(),
            }),
            Ok(PycSource {
                path: "/c.py".to_string(),
                source: b"# -*- coding: latin-1 -*-\nname = '\xe9'\n".to_vec(),
            }),
            Ok(PycSource {
                path: "/d.py".to_string(),
                source: b"x = '\0'\0\n".to_vec(),
            }),
        ];
        let outcomes = compiler.compile("demo.whl", sources).unwrap();
        assert!(matches!(&outcomes[0], PycOutcome::Skipped(why) if why.starts_with("SyntaxError")));
        assert!(matches!(&outcomes[1], PycOutcome::Skipped(_)));
        assert!(matches!(&outcomes[2], PycOutcome::Compiled(_)));
        assert!(
            matches!(&outcomes[3], PycOutcome::Skipped(_)),
            "{:?}",
            outcomes[3]
        );
    }

    #[test]
    fn pyc_paths_follow_cache_from_source() {
        let compiler = host();
        assert_eq!(
            compiler.pyc_path("site/pkg/mod.py").unwrap(),
            "site/pkg/__pycache__/mod.cpython-311.pyc"
        );
        assert_eq!(
            compiler.pyc_path("site/a.b.py").unwrap(),
            "site/__pycache__/a.b.cpython-311.pyc"
        );
        assert_eq!(compiler.pyc_path("site/pkg/data.txt"), None);
        assert_eq!(compiler.pyc_path("site/pkg/x.pyi"), None);
    }

    #[test]
    fn err_wrong_minor_given() {
        let error = PycCompiler::find(
            PythonVersion {
                major: 3,
                minor: 7,
                patch: None,
            },
            Some(host().executable()),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, BytecodeError::InterpreterMismatch { .. }),
            "{message}"
        );
        assert!(
            message.contains("CPython 3.7")
                && message.contains("--compile-with /path/to/python3.7"),
            "{message}"
        );
    }

    #[test]
    fn err_no_interpreter_names_target_and_flag() {
        let error = PycCompiler::find(
            PythonVersion {
                major: 3,
                minor: 99,
                patch: None,
            },
            None,
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, BytecodeError::InterpreterNotFound { .. }),
            "{message}"
        );
        assert!(message.contains("CPython 3.99"), "{message}");
        assert!(message.contains("`python3.99`: not on PATH"), "{message}");
        assert!(
            message.contains("--compile-with /path/to/python3.99"),
            "{message}"
        );
    }

    #[test]
    fn err_explicit_path_missing() {
        let error = PycCompiler::find(
            PythonVersion {
                major: 3,
                minor: 11,
                patch: None,
            },
            Some(Path::new("/nonexistent/python3.11")),
        )
        .unwrap_err();
        assert!(
            matches!(error, BytecodeError::ProbeFailed { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("/nonexistent/python3.11"));
    }
}
