//! What every lockfile parser needs and used to write for itself, written once: PEP 508
//! markers and requirements parsed with bounded nesting, package names checked and
//! normalized, the file name at the end of a URL, `<algorithm>:<hex>` hashes, and
//! [`FieldError`], the error each format's error wraps for problems with these fields.
//! Where a problem is (`path:line:column`) comes from [`super::source::Source`].
//!
//! Limits: the bounds below are on what the text can make the parsers do (recursion,
//! the size of a marker's decision diagram), chosen far above what real lockfiles and
//! wheels hold; text over them is refused with an error, never half-read.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use uv_pep508::{MarkerTree, Pep508Url, Requirement};

use super::{LockFormat, PackageName};
use crate::digest::Sha256Digest;
use crate::untrusted::Untrusted;

/// The deepest parenthesis nesting read in a PEP 508 marker or requirement.
///
/// uv-pep508 parses each level of parentheses by recursion, so nesting from an input
/// must be bounded before the text reaches it: about 20,000 levels overflow the main
/// thread's stack and abort the process. Markers that tools write nest one or two
/// levels (uv's forked markers, pip-compile's and Poetry's combined markers); 32 is far
/// above that and small enough to recurse safely on any thread.
pub const MAX_MARKER_NESTING: usize = 32;

/// The most comparisons (`key op value`) read in one marker.
///
/// Combining comparisons costs time and memory that grow with the square of their
/// number when they test one key against many values (1,000 take about 100 MB that uv's
/// marker interner keeps for the whole run). Markers tools write have a few dozen at
/// most; uv's largest `resolution-markers` stay well under a hundred.
pub const MAX_MARKER_TERMS: usize = 500;

/// The most distinct boolean variables in one marker: `extra == '…'`, `'…' in key` and
/// `key in '…'` each test a variable of their own.
///
/// A marker becomes a decision diagram with a level per variable: operations on it
/// recurse once per level (a chain of a few thousand distinct extras overflows the
/// stack), and an unlucky order of variables makes it grow exponentially (sixteen
/// `(extra == 'aN' and extra == 'bN')` alternatives take a second, forty would take
/// days). Real markers test a handful of extras (uv's conflict markers a dozen).
pub const MAX_MARKER_VARIABLES: usize = 32;

/// How many characters of an untrusted text a message quotes; the rest is summarized.
const QUOTED_LENGTH: usize = 200;

/// Why a PEP 508 marker or requirement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pep508Error {
    /// Parentheses nest deeper than [`MAX_MARKER_NESTING`].
    #[error(
        "it nests parentheses {depth} levels deep, more than the {MAX_MARKER_NESTING} envbuild reads"
    )]
    TooDeep {
        /// How deep (at least).
        depth: usize,
    },
    /// More comparisons than [`MAX_MARKER_TERMS`].
    #[error("it has {terms} comparisons, more than the {MAX_MARKER_TERMS} envbuild reads")]
    TooManyTerms {
        /// How many (at least).
        terms: usize,
    },
    /// More distinct extras and `in` tests than [`MAX_MARKER_VARIABLES`].
    #[error(
        "it tests {variables} distinct extras or `in` values, more than the {MAX_MARKER_VARIABLES} envbuild reads"
    )]
    TooManyVariables {
        /// How many (at least).
        variables: usize,
    },
    /// The PEP 508 parser refused it.
    #[error("{}", Untrusted(reason))]
    Invalid {
        /// The parser's message.
        reason: String,
    },
}

/// Parse a PEP 508 marker from an input, within [`MAX_MARKER_NESTING`],
/// [`MAX_MARKER_TERMS`] and [`MAX_MARKER_VARIABLES`].
pub fn parse_marker(text: &str) -> Result<MarkerTree, Pep508Error> {
    check_bounds(text, text)?;
    MarkerTree::from_str(text).map_err(|error| Pep508Error::Invalid {
        // The bare message: the error's `Display` repeats the text with an underline.
        reason: error.message.to_string(),
    })
}

/// Parse a PEP 508 requirement (a `requirements.txt` line, a `Requires-Dist` value)
/// from an input, its marker within the bounds of [`parse_marker`].
pub fn parse_requirement<T: Pep508Url>(text: &str) -> Result<Requirement<T>, Pep508Error> {
    check_bounds(text, &without_url(text))?;
    Requirement::<T>::from_str(text).map_err(|error| Pep508Error::Invalid {
        reason: error.message.to_string(),
    })
}

/// Refuse text that could make the PEP 508 parser recurse too deep or build too large a
/// decision diagram. `tokens` is `text` with a requirement's URL left out, whose quotes
/// the parser does not read as strings.
fn check_bounds(text: &str, tokens: &str) -> Result<(), Pep508Error> {
    let depth = nesting_bound(text);
    if depth > MAX_MARKER_NESTING {
        return Err(Pep508Error::TooDeep { depth });
    }
    let terms = terms_bound(text);
    if terms > MAX_MARKER_TERMS {
        return Err(Pep508Error::TooManyTerms { terms });
    }
    let variables = variables_bound(tokens);
    if variables > MAX_MARKER_VARIABLES {
        return Err(Pep508Error::TooManyVariables { variables });
    }
    Ok(())
}

/// A requirement without the URL of `name @ URL`, found as uv-pep508 finds it: after the
/// first `@`, up to a line break, or up to whitespace followed by `;`, `#` or the end, or
/// up to a `;` or `#` followed by whitespace.
fn without_url(text: &str) -> Cow<'_, str> {
    let Some(at) = text.find('@') else {
        return Cow::Borrowed(text);
    };
    let rest = &text[at + 1..];
    let start = rest.len() - rest.trim_start().len();
    let mut end = rest.len();
    let characters: Vec<(usize, char)> = rest[start..]
        .char_indices()
        .map(|(index, character)| (start + index, character))
        .collect();
    for (position, &(index, character)) in characters.iter().enumerate() {
        if matches!(character, '\r' | '\n') {
            end = index;
            break;
        }
        if character.is_whitespace() {
            let after = rest[index..].trim_start();
            if after.is_empty() || after.starts_with([';', '#']) {
                end = index;
                break;
            }
        }
        let next = characters.get(position + 1).map(|&(_, next)| next);
        let after_next = characters.get(position + 2).map(|&(_, next)| next);
        if matches!(next, Some(';' | '#')) && after_next.is_some_and(char::is_whitespace) {
            end = index + character.len_utf8();
            break;
        }
    }
    Cow::Owned(format!("{}{}", &text[..at], &rest[end..]))
}

/// A token of marker text, as far as [`variables_bound`] needs to tell them apart.
#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    /// A quoted string, without its quotes.
    Quoted(&'a str),
    /// A key or keyword (`extra`, `in`, `not`, `and`, ...).
    Word(&'a str),
    /// A comparison operator (`==`, `~=`, ...).
    Operator,
    /// Anything else (parentheses, `;`, ...).
    Other,
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let is_word = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-');
    let is_operator = |byte: u8| matches!(byte, b'=' | b'!' | b'<' | b'>' | b'~');
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let start = index;
        if byte.is_ascii_whitespace() {
            index += 1;
        } else if matches!(byte, b'\'' | b'"') {
            let end = text[start + 1..]
                .find(char::from(byte))
                .map_or(text.len(), |end| start + 1 + end);
            tokens.push(Token::Quoted(&text[start + 1..end]));
            index = (end + 1).min(text.len());
        } else if is_word(byte) {
            while index < bytes.len() && is_word(bytes[index]) {
                index += 1;
            }
            tokens.push(Token::Word(&text[start..index]));
        } else if is_operator(byte) {
            while index < bytes.len() && is_operator(bytes[index]) {
                index += 1;
            }
            tokens.push(Token::Operator);
        } else {
            index += text[start..].chars().next().map_or(1, char::len_utf8);
            tokens.push(Token::Other);
        }
    }
    tokens
}

/// An upper bound on the distinct boolean variables of a marker: the distinct
/// `(key, value)` pairs of `extra` comparisons and of `in`/`not in` tests (on string
/// keys these are variables; on version keys they are not, which only makes the bound
/// larger).
fn variables_bound(text: &str) -> usize {
    let tokens = tokens(text);
    let word = |index: Option<usize>| match index.and_then(|index| tokens.get(index)) {
        Some(Token::Word(word)) => Some(*word),
        _ => None,
    };
    let mut variables = std::collections::BTreeSet::new();
    for (index, token) in tokens.iter().enumerate() {
        let Token::Quoted(value) = token else {
            continue;
        };
        // `key OP 'value'`: the operator and key before the value.
        let before = index.checked_sub(1);
        let (key_before, in_before) = match (before.and_then(|at| tokens.get(at)), word(before)) {
            (Some(Token::Operator), _) => (word(index.checked_sub(2)), false),
            (_, Some("in")) => {
                let key = if word(index.checked_sub(2)) == Some("not") {
                    word(index.checked_sub(3))
                } else {
                    word(index.checked_sub(2))
                };
                (key, true)
            }
            _ => (None, false),
        };
        // `'value' OP key`: the operator and key after it.
        let (key_after, in_after) = match (tokens.get(index + 1), word(Some(index + 1))) {
            (Some(Token::Operator), _) => (word(Some(index + 2)), false),
            (_, Some("in")) => (word(Some(index + 2)), true),
            (_, Some("not")) if word(Some(index + 2)) == Some("in") => {
                (word(Some(index + 3)), true)
            }
            _ => (None, false),
        };
        for (key, is_in) in [(key_before, in_before), (key_after, in_after)] {
            if let Some(key) = key
                && (is_in || key == "extra")
            {
                variables.insert((key, *value));
            }
        }
    }
    variables.len()
}

/// An upper bound on the parenthesis nesting of `text`: every `(` opens a level, and a
/// `)` closes one only outside a quoted string. So a quoted `)` cannot hide the
/// levels after it, and neither can a quote inside a requirement's URL (which the
/// parser does not read as a string), which at worst makes the bound larger.
fn nesting_bound(text: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut quote = None;
    for byte in text.bytes() {
        match (quote, byte) {
            (Some(open), _) if byte == open => quote = None,
            (_, b'(') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(byte),
            (None, b')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// An upper bound on the comparisons in `text`: one more than its `and`/`or` keywords
/// (counted wherever they stand, quoted or not, which can only make the bound larger).
fn terms_bound(text: &str) -> usize {
    let bytes = text.as_bytes();
    let is_word = |index: usize| bytes.get(index).is_some_and(u8::is_ascii_alphanumeric);
    let mut count = 1;
    for keyword in ["and", "or"] {
        for (start, _) in text.match_indices(keyword) {
            let before = start.checked_sub(1).is_some_and(is_word);
            if !before && !is_word(start + keyword.len()) {
                count += 1;
            }
        }
    }
    count
}

/// `written`, found at `place`, as a package name.
pub(crate) fn package_name_at(written: &str, place: &str) -> Result<PackageName, FieldError> {
    PackageName::from_str(written).map_err(|name| FieldError::InvalidPackageName {
        place: place.to_string(),
        name,
    })
}

/// `written`, found at `place` as `key`, as an extra or dependency group name (or any
/// other name of the package name grammar).
pub(crate) fn name_at<T: FromStr>(
    written: &str,
    key: impl Into<String>,
    place: &str,
) -> Result<T, FieldError> {
    T::from_str(written).map_err(|_| FieldError::InvalidName {
        place: place.to_string(),
        key: key.into(),
        name: written.to_string(),
    })
}

/// `written`, the value of `key` at `place`, as a marker.
pub(crate) fn marker_at(
    written: &str,
    key: impl Into<String>,
    place: &str,
) -> Result<MarkerTree, FieldError> {
    parse_marker(written).map_err(|reason| FieldError::InvalidMarker {
        place: place.to_string(),
        key: key.into(),
        marker: written.to_string(),
        reason,
    })
}

/// The last segment of a URL's path, percent-decoded (left as written when the decoded
/// bytes are not UTF-8); `None` when it is empty.
pub(crate) fn url_filename(url: &url::Url) -> Option<String> {
    let segment = url.path_segments()?.next_back()?;
    if segment.is_empty() {
        return None;
    }
    Some(percent_decode(segment).into_owned())
}

/// `%XX` escapes decoded; the text as written when the result is not UTF-8.
pub(crate) fn percent_decode(text: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .unwrap_or(Cow::Borrowed(text))
}

/// `the extras `a`, `b`` (the names quoted), or `no extras`.
pub(crate) fn offered_list<T: fmt::Display>(
    what: &str,
    names: impl IntoIterator<Item = T>,
) -> String {
    let quoted: Vec<String> = names
        .into_iter()
        .map(|name| format!("`{}`", Untrusted(&name.to_string())))
        .collect();
    if quoted.is_empty() {
        format!("no {what}")
    } else {
        format!("the {what} {}", quoted.join(", "))
    }
}

/// `a`, `a and b`, `a, b and c`.
pub(crate) fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// What an `<algorithm>:<hex>` hash holds for envbuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    /// A SHA-256 digest.
    Sha256(Sha256Digest),
    /// A well-formed hash of another algorithm, which envbuild cannot check.
    Other,
}

/// Read an `<algorithm>:<hex>` hash as uv, Poetry, Pipenv and pip write them: `sha256`
/// with 64 hexadecimal digits, or another algorithm of `hashlib` with its digest in
/// hexadecimal; `None` for anything else.
pub(crate) fn parse_hash(written: &str) -> Option<Hash> {
    let (algorithm, hex) = written.split_once(':')?;
    let hexadecimal = !hex.is_empty() && hex.bytes().all(|byte| byte.is_ascii_hexdigit());
    match algorithm.to_ascii_lowercase().as_str() {
        "sha256" if hexadecimal => Sha256Digest::from_hex(hex).ok().map(Hash::Sha256),
        "md5" | "sha1" | "sha224" | "sha384" | "sha512" | "sha3_256" | "sha3_384" | "sha3_512"
        | "blake2b" | "blake2s"
            if hexadecimal =>
        {
            Some(Hash::Other)
        }
        _ => None,
    }
}

/// An untrusted text quoted in a message: control characters escaped, and cut after
/// [`QUOTED_LENGTH`] characters with the length of the rest said, so a megabyte of
/// marker does not become a megabyte of message.
pub struct Excerpt<'a>(pub &'a str);

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(QUOTED_LENGTH) {
            None => write!(f, "{}", Untrusted(self.0)),
            Some((cut, _)) => write!(
                f,
                "{}… ({} more bytes)",
                Untrusted(&self.0[..cut]),
                self.0.len() - cut
            ),
        }
    }
}

/// How each format is mended: by regenerating the file with the tool that writes it.
fn relock(format: &LockFormat) -> &'static str {
    match format {
        LockFormat::Pylock => "export the lock again with a PEP 751 compliant tool",
        LockFormat::UvLock => "run `uv lock` again",
        LockFormat::PoetryLock => "run `poetry lock` again",
        LockFormat::PipfileLock => "run `pipenv lock` again",
        LockFormat::Requirements => super::requirements::REGENERATE,
    }
}

/// Who says a key must be there.
fn required_by(format: &LockFormat) -> &'static str {
    match format {
        LockFormat::Pylock => "PEP 751 requires",
        LockFormat::UvLock => "uv always writes",
        LockFormat::PoetryLock => "Poetry always writes",
        LockFormat::PipfileLock => "Pipenv always writes",
        LockFormat::Requirements => "pip requires",
    }
}

/// Problems with the fields every lockfile format has; each format's error wraps these.
/// Texts from the lockfile are shown with control characters escaped.
///
/// `place` fields read `<lockfile>:<line>:<column>`, `<lockfile>` when the problem has
/// no single position in the file, or `<lockfile>` and a JSON key for `Pipfile.lock`.
#[derive(Debug, thiserror::Error)]
pub enum FieldError {
    /// The text is not TOML (or JSON), or a key has the wrong type.
    #[error(
        "cannot parse lockfile `{place}`: {}; fix the file at that position or {}",
        Untrusted(message),
        relock(format)
    )]
    InvalidSyntax {
        /// Where.
        place: String,
        /// The parser's message, without its position.
        message: String,
        /// The lockfile's format.
        format: LockFormat,
    },
    /// A key the format requires is absent.
    #[error(
        "invalid lockfile `{place}`: {} has no `{key}`, which {}; {}",
        Untrusted(table),
        required_by(format),
        relock(format)
    )]
    MissingKey {
        /// Where.
        place: String,
        /// The table that lacks the key, e.g. "the top-level table" or "package `numpy`".
        table: String,
        /// The missing key.
        key: &'static str,
        /// The lockfile's format.
        format: LockFormat,
    },
    /// A package name is not a valid distribution name.
    #[error("invalid lockfile `{place}`: {name}")]
    InvalidPackageName {
        /// Where.
        place: String,
        /// The name and why it is refused.
        name: super::InvalidPackageName,
    },
    /// An extra or dependency group name is not a valid name.
    #[error(
        "invalid lockfile `{place}`: {} `{}` is not a valid name: names use letters, digits, `-`, `_` and `.`, and start and end with a letter or digit",
        Untrusted(key),
        Untrusted(name)
    )]
    InvalidName {
        /// Where.
        place: String,
        /// What kind of name, e.g. "`extras` entry" or "extra of package `flask`".
        key: String,
        /// The name, as written.
        name: String,
    },
    /// A package `version` is not a PEP 440 version.
    #[error(
        "invalid lockfile `{place}`: package `{}` has `version = \"{}\"`, which is not a PEP 440 version: {}",
        Untrusted(package),
        Excerpt(version),
        Untrusted(reason)
    )]
    InvalidVersion {
        /// Where.
        place: String,
        /// The package.
        package: String,
        /// The version, as written.
        version: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A marker does not parse, or goes past envbuild's bounds.
    #[error(
        "invalid lockfile `{place}`: {} `{}` is not a valid marker: {reason}; fix the marker, or lock again with the tool that wrote the file",
        Untrusted(key),
        Excerpt(marker)
    )]
    InvalidMarker {
        /// Where.
        place: String,
        /// Which key, e.g. "`marker` of package `numpy`".
        key: String,
        /// The marker, as written.
        marker: String,
        /// Why it is refused.
        reason: Pep508Error,
    },
    /// A version specifier (`requires-python`) does not parse.
    #[error(
        "invalid lockfile `{place}`: {} `{}` is not a valid version specifier: {}",
        Untrusted(key),
        Excerpt(value),
        Untrusted(reason)
    )]
    InvalidSpecifier {
        /// Where.
        place: String,
        /// Which key, e.g. "`requires-python` of package `numpy`".
        key: String,
        /// The value, as written.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A URL does not parse.
    #[error(
        "invalid lockfile `{place}`: {} is `{}`, which is not a URL: {reason}",
        Untrusted(key),
        Excerpt(value)
    )]
    InvalidUrl {
        /// Where.
        place: String,
        /// Which key, e.g. "`wheels[0].url` of package `numpy`".
        key: String,
        /// The value, as written (credentials removed).
        value: String,
        /// Why it does not parse.
        reason: url::ParseError,
    },
    /// A hash is not `<algorithm>:<hex>` with a known algorithm and a well-formed digest.
    #[error(
        "invalid lockfile `{place}`: {} is `{}`, but hashes are written `sha256:<64 hexadecimal characters>`; fix it, or {}",
        Untrusted(key),
        Excerpt(value),
        relock(format)
    )]
    InvalidHash {
        /// Where.
        place: String,
        /// Which key, e.g. "`hash` of `wheels[0]` of package `numpy`".
        key: String,
        /// The value, as written.
        value: String,
        /// The lockfile's format.
        format: LockFormat,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_markers_within_bounds() {
        let marker = parse_marker(
            "(python_full_version < '3.11' and sys_platform == 'darwin') or (platform_machine == 'x86_64' and (os_name == 'posix'))",
        )
        .unwrap();
        assert!(!marker.is_true());
        let nested = format!(
            "{}os_name == 'posix'{}",
            "(".repeat(MAX_MARKER_NESTING),
            ")".repeat(MAX_MARKER_NESTING)
        );
        parse_marker(&nested).unwrap();
        // A `)` inside a quoted string is a value: it closes nothing, and counts for
        // nothing. (A quoted `(` counts as a level, to stay on the safe side.)
        parse_marker(&format!("platform_version == '{}'", ")".repeat(100))).unwrap();
        parse_marker("platform_version == '#1 SMP PREEMPT_DYNAMIC Debian 6.1.0 (2023-10-07)'")
            .unwrap();
    }

    #[test]
    fn err_marker_nested_too_deep() {
        // The depth that aborted envbuild 0.1.0 with a stack overflow.
        let deep = format!(
            "{}os_name == 'posix'{}",
            "(".repeat(20_000),
            ")".repeat(20_000)
        );
        assert_eq!(
            parse_marker(&deep).unwrap_err().to_string(),
            "it nests parentheses 20000 levels deep, more than the 32 envbuild reads"
        );
        let over = format!(
            "{}os_name == 'posix'{}",
            "(".repeat(MAX_MARKER_NESTING + 1),
            ")".repeat(MAX_MARKER_NESTING + 1)
        );
        assert!(matches!(
            parse_marker(&over),
            Err(Pep508Error::TooDeep { depth: 33 })
        ));
    }

    #[test]
    fn err_quotes_cannot_hide_nesting() {
        // A quoted `)` does not close a level the parser keeps open.
        let hidden = format!("{}os_name == '{}'", "(".repeat(30), ")".repeat(30)).repeat(3);
        assert!(matches!(
            parse_marker(&hidden),
            Err(Pep508Error::TooDeep { .. })
        ));
        // A quote in a URL is not a string to the parser: the parentheses after it count.
        let requirement = format!(
            "pkg @ https://127.0.0.1/a'b.whl ; {}os_name == 'posix'{}",
            "(".repeat(40),
            ")".repeat(40)
        );
        assert!(matches!(
            parse_requirement::<url::Url>(&requirement),
            Err(Pep508Error::TooDeep { .. })
        ));
    }

    #[test]
    fn err_too_many_terms() {
        let flat: Vec<String> = (0..20_000).map(|n| format!("os_name == 'v{n}'")).collect();
        assert!(matches!(
            parse_marker(&flat.join(" or ")),
            Err(Pep508Error::TooManyTerms { terms: 20_000 })
        ));
        parse_marker(&flat[..MAX_MARKER_TERMS].join(" or ")).unwrap();
    }

    #[test]
    fn err_too_many_distinct_extras() {
        // A chain of distinct extras is a diagram as deep as the chain is long.
        let chain: Vec<String> = (0..400).map(|n| format!("extra == 'e{n}'")).collect();
        assert!(matches!(
            parse_marker(&chain.join(" and ")),
            Err(Pep508Error::TooManyVariables { variables: 400 })
        ));
        // Interleaved pairs make the diagram grow exponentially.
        let pairs: Vec<String> = (0..40)
            .map(|n| format!("('a{n}' in platform_release and 'b{n}' not in os_name)"))
            .collect();
        assert!(matches!(
            parse_marker(&pairs.join(" or ")),
            Err(Pep508Error::TooManyVariables { variables: 80 })
        ));
        let reversed: Vec<String> = (0..40).map(|n| format!("'e{n}' == extra")).collect();
        assert!(matches!(
            parse_marker(&reversed.join(" or ")),
            Err(Pep508Error::TooManyVariables { variables: 40 })
        ));
        // The same extras many times count once.
        let repeated: Vec<String> = (0..200)
            .map(|n| format!("extra == 'e{}'", n % MAX_MARKER_VARIABLES))
            .collect();
        parse_marker(&repeated.join(" or ")).unwrap();
    }

    #[test]
    fn err_url_quotes_cannot_hide_variables() {
        let pairs: Vec<String> = (0..20)
            .map(|n| format!("(extra == 'a{n}' and extra == 'b{n}')"))
            .collect();
        let requirement = format!("pkg @ https://127.0.0.1/a'b.whl ; {}", pairs.join(" or "));
        assert!(matches!(
            parse_requirement::<url::Url>(&requirement),
            Err(Pep508Error::TooManyVariables { variables: 40 })
        ));
        assert_eq!(
            without_url("pkg[x] @ https://127.0.0.1/a'b.whl ; os_name == 'a'"),
            "pkg[x]  ; os_name == 'a'"
        );
        assert_eq!(without_url("pkg @ file:///x;y.whl"), "pkg ");
    }

    #[test]
    fn ok_requirement_and_terms_count_words_only() {
        let requirement: Requirement<url::Url> = parse_requirement(
            "pandas[performance] (>=2) ; os_name == 'android' or sys_platform == 'darwin'",
        )
        .unwrap();
        assert_eq!(requirement.name.as_str(), "pandas");
        assert_eq!(
            terms_bound("os_name == 'android' or sys_platform == 'darwin'"),
            2
        );
        assert_eq!(terms_bound("platform_machine=='x' and(a) or(b)"), 3);
    }

    #[test]
    fn err_requirement_reason_is_escaped() {
        let error = parse_requirement::<url::Url>("pkg ; os_name == \u{1b}[31m").unwrap_err();
        assert!(!error.to_string().contains('\u{1b}'), "{error}");
    }

    #[test]
    fn ok_url_filename_is_percent_decoded() {
        let url = url::Url::parse("https://127.0.0.1/f/Flask%2B-0.1.tar.gz#sha256=00").unwrap();
        assert_eq!(url_filename(&url).unwrap(), "Flask+-0.1.tar.gz");
        let not_utf8 = url::Url::parse("https://127.0.0.1/f/a%FF.whl").unwrap();
        assert_eq!(url_filename(&not_utf8).unwrap(), "a%FF.whl");
        let folder = url::Url::parse("https://127.0.0.1/f/").unwrap();
        assert_eq!(url_filename(&folder), None);
    }

    #[test]
    fn ok_hashes() {
        let hex = "3b787adbf04b0db1967798dba8da1af07e387908ed1553a0d6e74c084d1ceafe";
        assert_eq!(
            parse_hash(&format!("sha256:{hex}")),
            Some(Hash::Sha256(Sha256Digest::from_hex(hex).unwrap()))
        );
        assert_eq!(parse_hash("md5:0123abcd"), Some(Hash::Other));
        for bad in [
            "sha256:xyz",
            "sha256",
            "crc32:00",
            "sha256:",
            "md5:zz",
            &format!("sha256:sha256:{hex}"),
        ] {
            assert_eq!(parse_hash(bad), None, "{bad}");
        }
    }

    #[test]
    fn ok_excerpt_is_short_and_escaped() {
        assert_eq!(Excerpt("a\u{1b}b").to_string(), "a\\u{1b}b");
        let long = "(".repeat(20_000);
        let shown = Excerpt(&long).to_string();
        assert!(shown.ends_with("… (19800 more bytes)"), "{shown}");
        assert!(shown.len() < 300);
    }

    /// Markers as uv, Poetry and Pipenv write them, from the fixture locks.
    fn real_markers() -> Vec<String> {
        let locks = [
            include_str!("../../tests/data/locks/uv-forks/uv.lock"),
            include_str!("../../tests/data/locks/uv-conflicts/uv.lock"),
            include_str!("../../tests/data/robust/pylock.forks.toml"),
        ];
        let mut markers: Vec<String> = locks
            .iter()
            .flat_map(|lock| lock.split("marker = \"").skip(1))
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_string)
            .collect();
        markers.push("'dev' in dependency_groups and 'x' not in extras".to_string());
        markers
    }

    #[test]
    fn ok_no_panic_on_hostile_markers() {
        let environment = crate::lock::testing::linux_311();
        let extras = ["cpu".parse().unwrap()];
        crate::lock::testing::assert_no_panic("marker", real_markers(), 3000, |text| {
            if let Ok(marker) = parse_marker(text) {
                let _ = marker.evaluate(&environment, &extras);
                let _ = marker.try_to_string();
            }
        });
    }

    #[test]
    fn ok_no_panic_on_hostile_requirements() {
        let seeds: Vec<String> = [
            include_str!("../../tests/data/robust/METADATA.ipython"),
            include_str!("../../tests/data/robust/METADATA.sqlalchemy"),
        ]
        .iter()
        .flat_map(|metadata| metadata.lines())
        .filter_map(|line| line.strip_prefix("Requires-Dist: "))
        .map(str::to_string)
        .chain([
            "pkg[a,b] @ https://127.0.0.1/p-1.0-py3-none-any.whl ; os_name == 'posix'".to_string(),
        ])
        .collect();
        let environment = crate::lock::testing::linux_311();
        crate::lock::testing::assert_no_panic("requirement", seeds, 3000, |text| {
            if let Ok(requirement) = parse_requirement::<url::Url>(text) {
                let _ = requirement.evaluate_markers(&environment, &[]);
                let _ = requirement.to_string();
            }
        });
    }

    #[test]
    fn err_messages_escape_what_the_lockfile_wrote() {
        let error = marker_at(
            "os_name == '\u{1b}[31m'\n and",
            "`marker` of package `x`",
            "pylock.toml:3:10",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("invalid lockfile `pylock.toml:3:10`: `marker` of package `x` `os_name == '\\u{1b}[31m'\\n and` is not a valid marker: "),
            "{error}"
        );
        assert!(!error.chars().any(char::is_control), "{error}");
        let error = FieldError::InvalidVersion {
            place: "uv.lock:4:1".to_string(),
            package: "x".to_string(),
            version: "1.0\r\u{9b}".to_string(),
            reason: "bad \u{7}".to_string(),
        }
        .to_string();
        assert_eq!(
            error,
            "invalid lockfile `uv.lock:4:1`: package `x` has `version = \"1.0\\r\\u{9b}\"`, which is not a PEP 440 version: bad \\u{7}"
        );
    }

    /// Markers built from the PEP 508 grammar (the mutated real markers above rarely stay
    /// valid long enough to reach evaluation): every key, operator and quoting, odd
    /// values (wildcards, epochs, local versions, control characters, quotes), `and`/`or`
    /// trees with parentheses up to 40 deep.
    fn generated_marker() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let key = proptest::sample::select(
            &[
                "python_version",
                "python_full_version",
                "os_name",
                "sys_platform",
                "platform_machine",
                "platform_release",
                "platform_system",
                "implementation_name",
                "platform_python_implementation",
                "extra",
                "extras",
                "dependency_groups",
                "os.name",
            ][..],
        );
        let operator = proptest::sample::select(
            &[
                "==", "!=", "<", "<=", ">", ">=", "~=", "===", "in", "not in",
            ][..],
        );
        let value = proptest::sample::select(
            &[
                "3.11",
                "3.*",
                "3",
                "1!2.0.post1.dev3+local.7",
                "",
                "linux",
                "win32",
                "cpu",
                "extra-5-toy-b-cpu",
                "a b",
                "x86_64 aarch64",
                "\u{1b}[31m",
                "\"",
                "9999999999999999999999",
                "3.11.*.1",
                "dev",
                "é",
            ][..],
        );
        let leaf =
            (key, operator, value, any::<bool>()).prop_map(|(key, operator, value, reversed)| {
                let quoted = if value.contains('\'') {
                    format!("\"{value}\"")
                } else {
                    format!("'{value}'")
                };
                if reversed {
                    format!("{quoted} {operator} {key}")
                } else {
                    format!("{key} {operator} {quoted}")
                }
            });
        leaf.prop_recursive(8, 64, 4, |inner| {
            prop_oneof![
                (
                    inner.clone(),
                    proptest::sample::select(&[" and ", " or "][..]),
                    inner.clone()
                )
                    .prop_map(|(left, joiner, right)| format!("{left}{joiner}{right}")),
                (inner, 1..6usize).prop_map(|(marker, depth)| {
                    format!("{}{marker}{}", "(".repeat(depth), ")".repeat(depth))
                }),
            ]
        })
    }

    #[test]
    fn ok_no_panic_on_generated_markers() {
        use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
        let environments = [
            crate::lock::testing::linux_311(),
            crate::lock::testing::environment("win32", "3.8.10"),
        ];
        let extras = ["cpu".parse().unwrap()];
        let groups = ["dev".parse().unwrap()];
        let config = Config {
            cases: 2000,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
        let result = runner.run(&generated_marker(), |text| {
            let Ok(marker) = parse_marker(&text) else {
                return Ok(());
            };
            for environment in &environments {
                let _ = marker.evaluate(environment, &extras);
                let _ = marker.evaluate_pep751(environment, &extras, &groups);
            }
            let _ = marker.try_to_string();
            Ok(())
        });
        if let Err(error) = result {
            panic!("a generated marker made the parser panic: {error}");
        }
    }
}
