//! The one redaction rule for URLs on their way into a message, a log line, a report or a
//! record file: the user information (user name and password) becomes `***`, and so does
//! every query value (`https://***@host/simple/?token=***`). Scheme, host, port, path,
//! query keys and the fragment stay, so the URL can still be recognised; the fragment is
//! never sent to a server, and lockfiles use it for `#sha256=` hashes.
//!
//! [`redact_url`] applies the rule to a parsed URL. [`redact_text`] finds URL-like spans
//! (`scheme://` up to white space, a quote, a backtick or `<` `>`) in free text, such as
//! a lockfile value that did not parse, and applies the same rule to each, so a URL that
//! is not valid (`http://alice:S3cret@127.0.0.1:99999/x.whl`, with a port out of range)
//! cannot carry its password into a message either.

use url::{Position, Url};

/// What replaces a secret.
const HIDDEN: &str = "***";

/// `url` as it may be shown: user information and every query value replaced by `***`.
pub fn redact_url(url: &Url) -> String {
    let mut shown = String::with_capacity(url.as_str().len());
    if url.has_authority() {
        shown.push_str(&url[..Position::BeforeUsername]);
        if !url.username().is_empty() || url.password().is_some() {
            shown.push_str(HIDDEN);
            shown.push('@');
        }
        shown.push_str(&url[Position::BeforeHost..Position::AfterPath]);
    } else {
        shown.push_str(&url[..Position::AfterPath]);
    }
    if let Some(query) = url.query() {
        shown.push('?');
        shown.push_str(&redact_query(query));
    }
    if let Some(fragment) = url.fragment() {
        shown.push('#');
        shown.push_str(fragment);
    }
    shown
}

/// `text` with the rule applied to every URL-like span in it (see the module
/// documentation).
pub fn redact_text(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let mut shown = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find("://") {
        let start = found + 3;
        // The scheme is the ASCII run before `://`; what precedes it may be any text.
        let scheme_start = rest[..found]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(index, c)| index + c.len_utf8());
        let scheme = &rest[scheme_start..found];
        shown.push_str(&rest[..start]);
        let after = &rest[start..];
        let length = after.find(ends_span).unwrap_or(after.len());
        shown.push_str(&redact_span(scheme, &after[..length]));
        rest = &after[length..];
    }
    shown.push_str(rest);
    shown
}

/// Where a URL-like span in free text ends.
fn ends_span(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, '"' | '`' | '<' | '>')
}

/// One span after its `scheme://`, redacted.
fn redact_span(scheme: &str, span: &str) -> String {
    let (before_fragment, fragment) = match span.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (span, None),
    };
    let (head, query) = match before_fragment.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (before_fragment, None),
    };
    let mut shown = String::with_capacity(span.len());
    match userinfo_end(scheme, head) {
        Some(at) => {
            shown.push_str(HIDDEN);
            shown.push_str(&head[at..]);
        }
        None => shown.push_str(head),
    }
    if let Some(query) = query {
        shown.push('?');
        shown.push_str(&redact_query(query));
    }
    if let Some(fragment) = fragment {
        shown.push('#');
        shown.push_str(fragment);
    }
    shown
}

/// The index of the `@` that ends the user information of `head` (the span up to its
/// query), if it has any.
///
/// The authority ends at the first `/` or `\`, and its last `@` ends the user
/// information, as URL parsers read it. A URL that does not parse may hold a password
/// with an unescaped `/` (`https://bob:pa/ss@host/`): then an `@` after a `user:` part
/// counts too. Over-hiding a path of an invalid URL is the price of never showing a
/// password.
fn userinfo_end(scheme: &str, head: &str) -> Option<usize> {
    let authority_end = head.find(['/', '\\']).unwrap_or(head.len());
    if let Some(at) = head[..authority_end].rfind('@') {
        return Some(at);
    }
    let at = head.find('@')?;
    let parses = Url::parse(&format!(
        "{}://{head}",
        if scheme.is_empty() { "http" } else { scheme }
    ))
    .is_ok();
    (!parses && head[..at].contains(':')).then_some(at)
}

/// A query with every value replaced: `a=1&b` becomes `a=***&***`; empty values and
/// empty pairs stay as they are (there is nothing to hide).
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, "")) => format!("{key}="),
            Some((key, _)) => format!("{key}={HIDDEN}"),
            None if pair.is_empty() => String::new(),
            None => HIDDEN.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the lockfile property tests: a multi-byte character right before a URL.
    #[test]
    fn ok_multibyte_text_before_a_scheme() {
        assert_eq!(
            redact_text("\u{202e}http://u:p@127.0.0.1:8002/links/"),
            "\u{202e}http://***@127.0.0.1:8002/links/"
        );
        assert_eq!(redact_text("é://x"), "é://x");
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn ok_redact_url_cases() {
        let cases = [
            // Nothing to hide.
            ("https://127.0.0.1/simple/", "https://127.0.0.1/simple/"),
            // User and password, user alone, password alone.
            (
                "https://alice:S3cret@127.0.0.1/simple/",
                "https://***@127.0.0.1/simple/",
            ),
            ("https://token@127.0.0.1/x", "https://***@127.0.0.1/x"),
            ("https://:S3cret@127.0.0.1/x", "https://***@127.0.0.1/x"),
            // Every query value; keys, empty values and empty pairs stay.
            (
                "https://h.test/x.whl?token=abc&sig=def&flag&empty=&&x=1",
                "https://h.test/x.whl?token=***&sig=***&***&empty=&&x=***",
            ),
            // The fragment stays (never sent; lockfiles put hashes there).
            (
                "https://u:p@h.test/x.whl?t=1#sha256=00ff",
                "https://***@h.test/x.whl?t=***#sha256=00ff",
            ),
            (
                "https://h.test/x.whl#sha256=00ff",
                "https://h.test/x.whl#sha256=00ff",
            ),
            // IPv6 hosts and ports.
            (
                "http://user:pw@[fe80::1]:8080/simple/?k=v",
                "http://***@[fe80::1]:8080/simple/?k=***",
            ),
            // Percent-encoded secrets go whole.
            (
                "https://us%40er:p%40ss%2Fword@h.test/?token=a%26b%3Dc",
                "https://***@h.test/?token=***",
            ),
            // No authority.
            (
                "file:///srv/wheels/a.whl?x=1",
                "file:///srv/wheels/a.whl?x=***",
            ),
            ("mailto:someone@h.test", "mailto:someone@h.test"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_url(&url(input)), expected, "{input}");
        }
    }

    #[test]
    fn ok_redact_text_cases() {
        let cases = [
            ("no url here", "no url here"),
            // Unparsable (port out of range): the password still goes.
            (
                "cannot parse `http://alice:S3cret@127.0.0.1:99999/x.whl`: invalid port",
                "cannot parse `http://***@127.0.0.1:99999/x.whl`: invalid port",
            ),
            // Several URLs, in prose and in options.
            (
                "a https://u:p@h/x b http://h2/y --i=https://t@h3",
                "a https://***@h/x b http://h2/y --i=https://***@h3",
            ),
            // Query values and fragments.
            (
                "GET https://h.test/f.whl?token=secret#sha256=00 failed",
                "GET https://h.test/f.whl?token=***#sha256=00 failed",
            ),
            // Quotes end a span.
            (
                r#"url = "https://u:p@h.test/s?a=1" is bad"#,
                r#"url = "https://***@h.test/s?a=***" is bad"#,
            ),
            // IPv6, with and without credentials.
            (
                "http://[::1]:8080/x?t=1 and http://u:p@[::1]/",
                "http://[::1]:8080/x?t=*** and http://***@[::1]/",
            ),
            // Percent-encoded secrets.
            (
                "https://us%40er:p%40ss@h.test/?token=a%26b",
                "https://***@h.test/?token=***",
            ),
            // A password with an unescaped `/` makes the URL invalid; still hidden.
            (
                "https://bob:pa/ss@h.test/simple/",
                "https://***@h.test/simple/",
            ),
            // A valid URL with `@` in its path keeps its host and path.
            (
                "git+https://h.test:8443/org/repo.git@v1.0",
                "git+https://h.test:8443/org/repo.git@v1.0",
            ),
            // An unterminated authority.
            ("see https://u:p@", "see https://***@"),
            ("://", "://"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_text(input), expected, "{input}");
        }
    }

    #[test]
    fn ok_redaction_is_idempotent_and_agrees_with_redact_url() {
        for input in [
            "https://alice:S3cret@127.0.0.1/simple/?token=abc#frag",
            "http://u:p@[fe80::1]:8080/simple/?k=v&w",
            "https://h.test/x.whl",
        ] {
            let once = redact_url(&url(input));
            assert_eq!(redact_text(input), once, "{input}");
            assert_eq!(redact_text(&once), once, "{input}");
        }
    }
}
