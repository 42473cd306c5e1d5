//! `RepoName`: an `owner/repo` pair as GitHub names them, parsed once and compared as GitHub
//! does (case-insensitively).

use std::fmt;
use std::hash::{Hash, Hasher};

use crate::credential::valid_name;

/// An owner and a repository name, each 1-100 ASCII letters, digits, `-`, `_` or `.` (not `.`
/// or `..`). Equality and hashing ignore ASCII case; the spelling given is kept for display.
#[derive(Debug, Clone, Eq)]
pub struct RepoName {
    owner: String,
    repo: String,
}

impl RepoName {
    /// From its two parts; `None` when either is not a GitHub name.
    pub fn new(owner: &str, repo: &str) -> Option<RepoName> {
        (valid_name(owner) && valid_name(repo)).then(|| RepoName {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
        })
    }

    /// `OWNER/REPO`, with an optional `.git`.
    pub fn parse(s: &str) -> Option<RepoName> {
        let (owner, repo) = s.split_once('/')?;
        Self::new(owner, repo.strip_suffix(".git").unwrap_or(repo))
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// Whether this repository belongs to `owner` (case-insensitively).
    pub fn is_owned_by(&self, owner: &str) -> bool {
        self.owner.eq_ignore_ascii_case(owner)
    }
}

impl PartialEq for RepoName {
    fn eq(&self, other: &Self) -> bool {
        self.owner.eq_ignore_ascii_case(&other.owner) && self.repo.eq_ignore_ascii_case(&other.repo)
    }
}

impl Hash for RepoName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.owner.to_ascii_lowercase().hash(state);
        self.repo.to_ascii_lowercase().hash(state);
    }
}

impl std::str::FromStr for RepoName {
    type Err = String;

    fn from_str(s: &str) -> Result<RepoName, String> {
        RepoName::parse(s).ok_or_else(|| format!("{s:?} is not OWNER/REPO"))
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.repo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_compare() {
        let r = RepoName::parse("Octo-Org/Widgets.git").unwrap();
        assert_eq!((r.owner(), r.repo()), ("Octo-Org", "Widgets"));
        assert_eq!(r, RepoName::parse("octo-org/widgets").unwrap());
        assert_eq!(r.to_string(), "Octo-Org/Widgets");
        assert!(r.is_owned_by("OCTO-ORG"));
        for bad in [
            "widgets", "o/r/x", "o/", "/r", "../r", "o/..", "o/r%2f", "o r/x", "",
        ] {
            assert_eq!(RepoName::parse(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn displays_back_to_itself(s in "\\PC{0,40}") {
            if let Some(r) = RepoName::parse(&s) {
                prop_assert_eq!(RepoName::parse(&r.to_string()), Some(r));
            }
        }
    }
}
