//! `.dockerignore` patterns with Docker's semantics (moby's `patternmatcher`), which
//! differ from `.gitignore`'s: a pattern is anchored at the root of the copied folder
//! (`foo` is only `./foo`, never `a/foo`; `**/foo` is any `foo`), `*` and `?` stop at
//! `/`, `[...]` is a class negated by `^`, `\` escapes, `**` matches any number of
//! folders (including none), a pattern that matches a folder excludes everything in it,
//! and the last matching line decides (`!pattern` re-includes). Lines are trimmed,
//! `#` starts a comment, and each pattern is cleaned as Go's `filepath.Clean` does with
//! a leading `/` dropped, so `/foo`, `./foo` and `foo/` all mean `foo`.
//!
//! No maintained Rust crate implements these rules (the `ignore` crate's matcher is
//! gitignore's, which matches unanchored names at any depth), so patterns are turned
//! into regular expressions the way moby does and matched with the `regex` crate.

use regex::Regex;

/// One line of an ignore file that did not compile.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid ignore pattern `{pattern}` on line {line} of `{file}`: {reason}; fix or remove the line"
)]
pub struct IgnoreError {
    /// The ignore file (or `the default patterns`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The pattern as written.
    pub pattern: String,
    /// Why it does not compile.
    pub reason: String,
}

/// A compiled list of patterns.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    regex: Regex,
    exception: bool,
}

impl IgnoreRules {
    /// Parse the text of an ignore file; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, IgnoreError> {
        let mut rules = Vec::new();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |reason: &str| IgnoreError {
                file: file.to_string(),
                line: index + 1,
                pattern: line.to_string(),
                reason: reason.to_string(),
            };
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if pattern.is_empty() {
                return Err(error("`!` needs a pattern after it"));
            }
            let cleaned = clean(pattern);
            let cleaned = match cleaned.strip_prefix('/') {
                Some(rest) if !rest.is_empty() => rest.to_string(),
                _ => cleaned,
            };
            let regex = Regex::new(&translate(&cleaned).map_err(|reason| error(&reason))?)
                .map_err(|problem| error(&problem.to_string()))?;
            rules.push(Rule { regex, exception });
        }
        Ok(Self { rules })
    }

    /// These rules, then `other`'s (which win where both match).
    pub fn then(mut self, other: IgnoreRules) -> Self {
        self.rules.extend(other.rules);
        self
    }

    /// Whether any rule is an exception (`!pattern`): then an excluded folder must
    /// still be walked, since something inside it may be re-included.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|rule| rule.exception)
    }

    /// Whether `path` (relative to the copied folder, `/`-separated, no leading `./`)
    /// is excluded: the last rule matching it or one of its parent folders decides.
    pub fn excludes(&self, path: &str) -> bool {
        let parents: Vec<&str> = path
            .match_indices('/')
            .map(|(index, _)| &path[..index])
            .collect();
        let mut excluded = false;
        for rule in &self.rules {
            let matched = rule.regex.is_match(path)
                || parents.iter().any(|parent| rule.regex.is_match(parent));
            if matched {
                excluded = !rule.exception;
            }
        }
        excluded
    }
}

/// Go's `path.Clean`: no repeated or trailing `/`, no `.` parts, `..` folded.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The regular expression of one cleaned pattern, as moby's `patternmatcher` builds it.
fn translate(pattern: &str) -> Result<String, String> {
    let mut regex = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut index = 0;
    while index < chars.len() {
        let ch = chars[index];
        index += 1;
        match ch {
            '*' if chars.get(index) == Some(&'*') => {
                index += 1;
                // `**/` is `**`: the slash is eaten.
                if chars.get(index) == Some(&'/') {
                    index += 1;
                }
                if index == chars.len() {
                    regex.push_str(".*");
                } else {
                    regex.push_str("(.*/)?");
                }
            }
            '*' => regex.push_str("[^/]*"),
            '?' => regex.push_str("[^/]"),
            '\\' => match chars.get(index) {
                Some(next) => {
                    index += 1;
                    regex.push_str(&regex::escape(&next.to_string()));
                }
                None => return Err("it ends in a lone `\\`".to_string()),
            },
            '[' => {
                let start = index;
                let Some(length) = chars[start..].iter().position(|c| *c == ']') else {
                    return Err("a `[` has no closing `]`".to_string());
                };
                let class: String = chars[start..start + length].iter().collect();
                index = start + length + 1;
                let (negated, body) = match class.strip_prefix('^') {
                    Some(body) => (true, body),
                    None => (false, class.as_str()),
                };
                if body.is_empty() {
                    return Err("a character class `[]` is empty".to_string());
                }
                regex.push('[');
                if negated {
                    regex.push('^');
                }
                for member in body.chars() {
                    match member {
                        '-' => regex.push('-'),
                        other => regex.push_str(&regex::escape(&other.to_string())),
                    }
                }
                regex.push(']');
            }
            other => regex.push_str(&regex::escape(&other.to_string())),
        }
    }
    regex.push('$');
    Ok(regex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(text, ".dockerignore").unwrap()
    }

    #[test]
    fn ok_patterns_are_anchored_unlike_gitignore() {
        let rules = rules("foo\n");
        assert!(rules.excludes("foo"));
        assert!(rules.excludes("foo/bar.txt"));
        // gitignore would exclude a nested `foo`; Docker does not.
        assert!(!rules.excludes("a/foo"));
    }

    #[test]
    fn ok_double_star_and_single_star() {
        let rules = rules("**/*.pyc\n*.md\ndocs/**\n");
        assert!(rules.excludes("x.pyc"));
        assert!(rules.excludes("a/b/x.pyc"));
        assert!(rules.excludes("README.md"));
        assert!(!rules.excludes("sub/README.md"));
        assert!(rules.excludes("docs/a/b"));
        assert!(!rules.excludes("docsx"));
    }

    #[test]
    fn ok_last_match_wins_and_exceptions() {
        let rules = rules("# comment\n\n*.txt\n!keep.txt\n");
        assert!(rules.excludes("drop.txt"));
        assert!(!rules.excludes("keep.txt"));
        assert!(rules.has_exceptions());
    }

    #[test]
    fn ok_cleaning_leading_slash_and_dots() {
        for pattern in ["/build", "./build", "build/", "build//", "x/../build"] {
            let rules = rules(pattern);
            assert!(rules.excludes("build/out.o"), "{pattern}");
            assert!(!rules.excludes("src/build"), "{pattern}");
        }
    }

    #[test]
    fn ok_classes_escape_and_question_mark() {
        let rules = rules("file[0-9].txt\n[^a]b\n\\*star\nq?\n");
        assert!(rules.excludes("file3.txt"));
        assert!(!rules.excludes("filex.txt"));
        assert!(rules.excludes("cb"));
        assert!(!rules.excludes("ab"));
        assert!(rules.excludes("*star"));
        assert!(!rules.excludes("xstar"));
        assert!(rules.excludes("qz"));
        assert!(!rules.excludes("q/"));
    }

    #[test]
    fn err_bad_lines_name_file_and_line() {
        let error = IgnoreRules::parse("ok\n!\n", "src/.dockerignore").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.to_string().contains("src/.dockerignore"), "{error}");
        let error = IgnoreRules::parse("[abc\n", "f").unwrap_err();
        assert!(error.to_string().contains("no closing"), "{error}");
    }
}
