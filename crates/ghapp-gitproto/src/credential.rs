//! The git credential protocol (git's `Documentation/git-credential.adoc`).
//!
//! Input is `key=value` lines until a blank line or the end of input. Unknown keys are kept but
//! ignored; a key ending in `[]` may repeat (`capability[]=authtype`). A value cannot hold a
//! newline or NUL, and a key cannot hold `=`: git refuses to send such input and so do we.

use std::fmt;

/// The largest input we accept. git sends a few hundred bytes; anything near this is not git.
pub const MAX_INPUT: usize = 64 * 1024;

/// Why a credential request could not be read. Messages name the line, never its value (a
/// `password=` line carries a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("input is larger than {MAX_INPUT} bytes: this is not a git credential request")]
    TooLarge,
    #[error("line {line} is not UTF-8: git sends key=value text lines")]
    NotUtf8 { line: usize },
    #[error("line {line} contains a NUL byte: git never sends one")]
    Nul { line: usize },
    #[error("line {line} has no '=': expected key=value as git sends it")]
    NoEquals { line: usize },
    #[error("line {line} has an empty key: expected key=value as git sends it")]
    EmptyKey { line: usize },
}

/// One request from git: its `key=value` fields in the order they came.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Request {
    fields: Vec<(String, String)>,
}

// The password field is a secret: Debug names the keys and hides every password value.
impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (k, v) in &self.fields {
            if is_secret_key(k) {
                list.entry(&format_args!("{k}=****"));
            } else {
                list.entry(&format_args!("{k}={v}"));
            }
        }
        list.finish()
    }
}

fn is_secret_key(key: &str) -> bool {
    matches!(key, "password" | "credential" | "oauth_refresh_token")
}

impl Request {
    /// Builds a request from fields (used by tests and by callers that speak to a helper).
    pub fn from_fields<K: Into<String>, V: Into<String>>(
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Parses git's input. Reading stops at the first empty line; what follows is ignored, as
    /// git's own reader does.
    pub fn parse(input: &[u8]) -> Result<Self, ParseError> {
        if input.len() > MAX_INPUT {
            return Err(ParseError::TooLarge);
        }
        let mut fields = Vec::new();
        for (i, raw) in input.split(|&b| b == b'\n').enumerate() {
            let line_no = i + 1;
            // git writes LF; tolerate CRLF from a hand-written test or a Windows shell.
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                break;
            }
            if raw.contains(&0) {
                return Err(ParseError::Nul { line: line_no });
            }
            let line =
                std::str::from_utf8(raw).map_err(|_| ParseError::NotUtf8 { line: line_no })?;
            let (key, value) = line
                .split_once('=')
                .ok_or(ParseError::NoEquals { line: line_no })?;
            if key.is_empty() {
                return Err(ParseError::EmptyKey { line: line_no });
            }
            fields.push((key.to_owned(), value.to_owned()));
        }
        Ok(Self { fields })
    }

    /// Formats the request as git would send it, ending with the blank line.
    pub fn format(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.fields {
            out.push_str(k);
            out.push('=');
            out.push_str(v);
            out.push('\n');
        }
        out.push('\n');
        out
    }

    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The last value of a single-valued key (git's own rule when a key repeats).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a multi-valued key such as `capability[]`.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn protocol(&self) -> Option<&str> {
        self.get("protocol")
    }
    pub fn host(&self) -> Option<&str> {
        self.get("host")
    }
    pub fn path(&self) -> Option<&str> {
        self.get("path")
    }
    pub fn password(&self) -> Option<&str> {
        self.get("password")
    }
    /// Whether git announced `capability[]=authtype` (git 2.46+).
    pub fn has_authtype_capability(&self) -> bool {
        self.get_all("capability[]").any(|c| c == "authtype")
    }
}

/// The answer to `get`: a username and password for git to use.
pub struct Answer<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// Unix seconds after which git must not use the password (git 2.40+ drops it itself).
    pub password_expiry_utc: Option<u64>,
    /// Echo `capability[]=authtype` and mark the answer `ephemeral=1`, so helpers after us do not
    /// store a token that lives an hour.
    pub authtype_capability: bool,
}

impl fmt::Debug for Answer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("username", &self.username)
            .field("password", &"****")
            .field("password_expiry_utc", &self.password_expiry_utc)
            .field("authtype_capability", &self.authtype_capability)
            .finish()
    }
}

/// Why an answer could not be formatted: a value that would break the line protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {field} to send git contains a newline or NUL byte, which the credential protocol cannot carry"
)]
pub struct FormatError {
    pub field: &'static str,
}

impl Answer<'_> {
    /// Formats the answer as git reads it. Refuses values with a newline or NUL: such a value
    /// would let a server-provided string inject extra keys.
    pub fn format(&self) -> Result<String, FormatError> {
        for (field, v) in [("username", self.username), ("password", self.password)] {
            if v.contains(['\n', '\0']) {
                return Err(FormatError { field });
            }
        }
        let mut out = String::new();
        if self.authtype_capability {
            out.push_str("capability[]=authtype\n");
        }
        out.push_str("username=");
        out.push_str(self.username);
        out.push('\n');
        out.push_str("password=");
        out.push_str(self.password);
        out.push('\n');
        if let Some(t) = self.password_expiry_utc {
            out.push_str(&format!("password_expiry_utc={t}\n"));
        }
        if self.authtype_capability {
            out.push_str("ephemeral=1\n");
        }
        Ok(out)
    }
}

/// `owner/repo` from git's `path`: `owner/repo`, `owner/repo.git`, with extra segments such as
/// `/info/lfs` tolerated. Returns `None` for anything that is not a plain repository path
/// (`..`, empty segments, characters GitHub does not allow in names).
pub fn repo_from_path(path: &str) -> Option<(String, String)> {
    let path = path.trim_start_matches('/');
    let mut parts = path.split('/');
    let owner = parts.next()?;
    let repo = parts.next()?;
    let r = crate::repo::RepoName::new(owner, repo.strip_suffix(".git").unwrap_or(repo))?;
    Some((r.owner().to_owned(), r.repo().to_owned()))
}

/// GitHub owner and repository names: ASCII letters, digits, `-`, `_`, `.`; not `.` or `..`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Case<'a> = (&'a [u8], Result<Vec<(&'a str, &'a str)>, ParseError>);

    #[test]
    fn parse_table() {
        let cases: &[Case] = &[
            (b"", Ok(vec![])),
            (b"\n", Ok(vec![])),
            (
                b"protocol=https\nhost=github.com\n\n",
                Ok(vec![("protocol", "https"), ("host", "github.com")]),
            ),
            (b"protocol=https", Ok(vec![("protocol", "https")])),
            (b"a=b\r\nc=d\r\n\r\n", Ok(vec![("a", "b"), ("c", "d")])),
            (b"a=b=c\n", Ok(vec![("a", "b=c")])),
            (b"a=\n", Ok(vec![("a", "")])),
            (b"a=b\n\nignored\n", Ok(vec![("a", "b")])),
            (b"noequals\n", Err(ParseError::NoEquals { line: 1 })),
            (b"a=b\n=v\n", Err(ParseError::EmptyKey { line: 2 })),
            (b"a=\xff\n", Err(ParseError::NotUtf8 { line: 1 })),
            (b"a=b\0c\n", Err(ParseError::Nul { line: 1 })),
        ];
        for (input, want) in cases {
            let got = Request::parse(input).map(|r| r.fields().to_vec());
            let want = want.clone().map(|v| {
                v.into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn too_large() {
        let big = vec![b'a'; MAX_INPUT + 1];
        assert_eq!(Request::parse(&big), Err(ParseError::TooLarge));
    }

    #[test]
    fn accessors() {
        let r = Request::parse(
            b"capability[]=authtype\ncapability[]=state\nprotocol=https\nhost=h\nhost=h2\n",
        )
        .unwrap();
        assert!(r.has_authtype_capability());
        assert_eq!(r.host(), Some("h2"));
        assert_eq!(r.get_all("capability[]").count(), 2);
        assert_eq!(r.path(), None);
    }

    #[test]
    fn debug_hides_password() {
        let r = Request::parse(b"host=h\npassword=hunter2\n").unwrap();
        let d = format!("{r:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("host=h"));
        let a = Answer {
            username: "x",
            password: "hunter2",
            password_expiry_utc: None,
            authtype_capability: false,
        };
        assert!(!format!("{a:?}").contains("hunter2"));
    }

    #[test]
    fn answer_format() {
        let a = Answer {
            username: "x-access-token",
            password: "ghs_abc.def",
            password_expiry_utc: Some(1700000000),
            authtype_capability: false,
        };
        assert_eq!(
            a.format().unwrap(),
            "username=x-access-token\npassword=ghs_abc.def\npassword_expiry_utc=1700000000\n"
        );
        let a = Answer {
            authtype_capability: true,
            password_expiry_utc: None,
            ..a
        };
        assert_eq!(
            a.format().unwrap(),
            "capability[]=authtype\nusername=x-access-token\npassword=ghs_abc.def\nephemeral=1\n"
        );
        let bad = Answer {
            password: "a\nhost=evil",
            ..a
        };
        assert_eq!(bad.format(), Err(FormatError { field: "password" }));
    }

    #[test]
    fn repo_paths() {
        let cases = [
            ("octo/widgets", Some(("octo", "widgets"))),
            ("octo/widgets.git", Some(("octo", "widgets"))),
            ("/octo/widgets.git", Some(("octo", "widgets"))),
            ("octo/widgets.git/info/lfs", Some(("octo", "widgets"))),
            ("octo/my.repo", Some(("octo", "my.repo"))),
            ("octo", None),
            ("octo/", None),
            ("../widgets", None),
            ("octo/..", None),
            ("octo/wid%2fgets", None),
            ("octo/wid gets", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(
                repo_from_path(path),
                want.map(|(o, r)| (o.to_owned(), r.to_owned())),
                "{path}"
            );
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Request::parse(&input);
        }

        #[test]
        fn format_then_parse_roundtrips(
            fields in proptest::collection::vec(
                ("[a-z_\\[\\]]{1,12}", "[^\n\r\0]{0,40}"), 0..8)
        ) {
            let req = Request::from_fields(fields);
            let parsed = Request::parse(req.format().as_bytes()).unwrap();
            prop_assert_eq!(parsed, req);
        }

        #[test]
        fn answer_parses_back(user in "[a-z-]{1,20}", pass in "[^\n\r\0]{1,600}", expiry in proptest::option::of(any::<u32>()), authtype in any::<bool>()) {
            let a = Answer { username: &user, password: &pass, password_expiry_utc: expiry.map(u64::from), authtype_capability: authtype };
            let text = a.format().unwrap();
            let back = Request::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(back.get("username"), Some(user.as_str()));
            prop_assert_eq!(back.get("password"), Some(pass.as_str()));
            prop_assert_eq!(back.has_authtype_capability(), authtype);
        }

        #[test]
        fn repo_from_path_never_panics(path in "\\PC{0,80}") {
            if let Some((o, r)) = repo_from_path(&path) {
                prop_assert!(valid_name(&o) && valid_name(&r));
            }
        }
    }
}
