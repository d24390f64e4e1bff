//! `.netrc` credentials (the format curl, pip and uv read): `machine <host> login <user>
//! password <secret>` entries, and one `default` entry for any other host. The file is
//! `$NETRC` or `~/.netrc`. Credentials found here are put into request URLs only; they
//! never appear in messages or logs.
//!
//! Limits: `macdef` bodies are skipped up to the next empty line, as curl does; `account`
//! is ignored; there is no quoting beyond whitespace-separated tokens (curl's quoted
//! tokens are read with their quotes removed).

use std::path::{Path, PathBuf};

/// One `machine` (or `default`) entry.
#[derive(Clone, PartialEq, Eq)]
struct Entry {
    /// `None` for the `default` entry.
    machine: Option<String>,
    login: Option<String>,
    password: Option<String>,
}

/// Parsed `.netrc` entries, in file order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Netrc {
    path: Option<PathBuf>,
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Netrc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never show secrets, even in debug output.
        let machines: Vec<&str> = self
            .entries
            .iter()
            .map(|entry| entry.machine.as_deref().unwrap_or("default"))
            .collect();
        f.debug_struct("Netrc")
            .field("path", &self.path)
            .field("machines", &machines)
            .finish()
    }
}

impl Netrc {
    /// Read the file at `path`; a missing or unreadable file gives no entries (and a
    /// warning when it exists but cannot be read).
    pub fn load(path: &Path) -> Self {
        match fs_err::read_to_string(path) {
            Ok(text) => Self::parse(&text, Some(path.to_path_buf())),
            Err(error) => {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("ignoring netrc file: {error}");
                }
                Self::default()
            }
        }
    }

    /// Parse the text of a netrc file.
    pub fn parse(text: &str, path: Option<PathBuf>) -> Self {
        let mut entries: Vec<Entry> = Vec::new();
        let lines = text.lines();
        let mut pending: Vec<String> = Vec::new();
        let mut in_macdef = false;
        for line in lines {
            if in_macdef {
                if line.trim().is_empty() {
                    in_macdef = false;
                }
                continue;
            }
            let line = match line.find('#') {
                // A `#` starts a comment only at the start of a token.
                Some(index) if index == 0 || line[..index].ends_with(char::is_whitespace) => {
                    &line[..index]
                }
                _ => line,
            };
            let mut tokens = line
                .split_whitespace()
                .map(|token| token.trim_matches('"').to_string())
                .peekable();
            while let Some(token) = tokens.next() {
                if token == "macdef" {
                    // The macro's name, then its body until an empty line.
                    tokens.next();
                    in_macdef = true;
                    break;
                }
                pending.push(token);
            }
        }
        let mut tokens = pending.into_iter();
        while let Some(token) = tokens.next() {
            match token.as_str() {
                "machine" => entries.push(Entry {
                    machine: tokens.next().map(|host| host.to_ascii_lowercase()),
                    login: None,
                    password: None,
                }),
                "default" => entries.push(Entry {
                    machine: None,
                    login: None,
                    password: None,
                }),
                "login" | "password" | "account" => {
                    let value = tokens.next();
                    if let Some(entry) = entries.last_mut() {
                        match token.as_str() {
                            "login" => entry.login = value,
                            "password" => entry.password = value,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Self { path, entries }
    }

    /// `url` with the credentials for its host filled in, when the URL has no password
    /// and an entry matches: the host's `machine` entry (whose `login` equals the URL's
    /// user, when the URL names one), else the `default` entry.
    pub fn authenticate(&self, url: &url::Url) -> url::Url {
        if url.password().is_some() {
            return url.clone();
        }
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
            return url.clone();
        };
        let user = url.username();
        let fits = |entry: &&Entry| {
            entry.password.is_some() && (user.is_empty() || entry.login.as_deref() == Some(user))
        };
        let found = self
            .entries
            .iter()
            .filter(|entry| entry.machine.as_deref() == Some(host.as_str()))
            .find(fits)
            .or_else(|| {
                self.entries
                    .iter()
                    .filter(|entry| entry.machine.is_none())
                    .find(fits)
            });
        let Some(entry) = found else {
            return url.clone();
        };
        let mut authenticated = url.clone();
        if user.is_empty()
            && let Some(login) = &entry.login
        {
            // Fails only for URLs that cannot have credentials (no host), ruled out above.
            let _ = authenticated.set_username(login);
        }
        let _ = authenticated.set_password(entry.password.as_deref());
        authenticated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    const NETRC: &str = "# company indexes\nmachine pkgs.example.internal\n  login ci\n  password s3cret\n\nmachine other.example.internal login alice password a1 # trailing comment\nmachine other.example.internal login bob password b2\nmacdef init\ncd /pub\nmachine ignored.example password nope\n\ndefault login anonymous password guest\n";

    #[test]
    fn ok_machine_entry() {
        let netrc = Netrc::parse(NETRC, None);
        assert_eq!(
            netrc
                .authenticate(&url("https://PKGS.example.internal/simple/"))
                .as_str(),
            "https://ci:s3cret@pkgs.example.internal/simple/"
        );
    }

    #[test]
    fn ok_login_in_url_picks_matching_entry() {
        let netrc = Netrc::parse(NETRC, None);
        assert_eq!(
            netrc
                .authenticate(&url("https://bob@other.example.internal/simple/"))
                .as_str(),
            "https://bob:b2@other.example.internal/simple/"
        );
    }

    #[test]
    fn ok_url_password_wins_and_default_applies() {
        let netrc = Netrc::parse(NETRC, None);
        assert_eq!(
            netrc
                .authenticate(&url("https://x:y@pkgs.example.internal/"))
                .as_str(),
            "https://x:y@pkgs.example.internal/"
        );
        assert_eq!(
            netrc
                .authenticate(&url("http://127.0.0.1:8080/simple/"))
                .as_str(),
            "http://anonymous:guest@127.0.0.1:8080/simple/"
        );
    }

    #[test]
    fn ok_macdef_body_is_skipped() {
        let netrc = Netrc::parse(NETRC, None);
        assert_eq!(
            netrc
                .authenticate(&url("https://ignored.example/"))
                .as_str(),
            "https://anonymous:guest@ignored.example/"
        );
    }

    #[test]
    fn ok_debug_hides_secrets() {
        let shown = format!("{:?}", Netrc::parse(NETRC, None));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("pkgs.example.internal"), "{shown}");
    }

    #[test]
    fn ok_no_panic_on_hostile_input() {
        let urls = [
            url("https://pkgs.example.internal/simple/"),
            url("https://bob@other.example.internal/simple/"),
            url("http://127.0.0.1:8080/"),
            url("file:///tmp/wheels/"),
        ];
        crate::lock::testing::assert_no_panic("netrc", [NETRC], 2000, |text| {
            let netrc = Netrc::parse(text, None);
            for url in &urls {
                let _ = netrc.authenticate(url);
            }
            let _ = format!("{netrc:?}");
        });
    }
}
