//! Text that came from an untrusted input (a lockfile, a wheel, a registry's answer) on its
//! way into a message: control characters are shown as escapes, so a package name or an
//! error body can neither move the cursor, recolour the terminal nor forge a line of its
//! own. The one rule for every message; the CLI also applies it to the whole error text
//! as a last line of defence (keeping the newlines the messages themselves put there).

use std::borrow::Cow;
use std::fmt;

/// `text` with every control character (C0, DEL and C1, including newlines and tabs)
/// written as an escape (`\n`, `\t`, `\u{1b}`); borrowed when there is nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_except(text, &[])
}

/// [`escape`], keeping the characters in `keep` (the CLI keeps `\n`, which its own
/// messages use to list problems one a line).
pub fn escape_except<'a>(text: &'a str, keep: &[char]) -> Cow<'a, str> {
    if !text.chars().any(|c| c.is_control() && !keep.contains(&c)) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && !keep.contains(&c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Displays a string from an untrusted input with its control characters escaped:
/// `format!("package `{}`", Untrusted(name))`.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_plain_text_is_borrowed() {
        assert!(matches!(escape("flask 3.1.3 (ünïcode)"), Cow::Borrowed(_)));
    }

    #[test]
    fn err_terminal_escapes_and_newlines_are_shown() {
        assert_eq!(
            escape("evil\u{1b}[31mred\nerror: forged\r\u{7f}\u{9b}"),
            "evil\\u{1b}[31mred\\nerror: forged\\r\\u{7f}\\u{9b}"
        );
        assert_eq!(Untrusted("a\tb").to_string(), "a\\tb");
    }

    #[test]
    fn ok_kept_characters_stay() {
        assert_eq!(escape_except("one\ntwo\u{1b}", &['\n']), "one\ntwo\\u{1b}");
    }
}
