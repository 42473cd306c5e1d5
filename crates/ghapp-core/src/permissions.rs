//! GitHub App permissions: a name (`contents`, `pull_requests`, …) and an ordered [`Level`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A permission level, ordered: `read` < `write` < `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Read,
    Write,
    Admin,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "read" => Some(Level::Read),
            "write" => Some(Level::Write),
            "admin" => Some(Level::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Read => "read",
            Level::Write => "write",
            Level::Admin => "admin",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Permission name -> level, sorted by name. Serialized as GitHub writes it
/// (`{"contents": "write"}`); read leniently, since GitHub adds permissions and levels over time:
/// an entry whose level is not `read`, `write` or `admin` is skipped, not an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Permissions(BTreeMap<String, Level>);

impl Permissions {
    /// What git and pull requests need; the helper's and the proxy's default, as a ceiling
    /// (see `TokenRequest::fit`).
    pub fn default_for_git() -> Permissions {
        [
            ("contents", Level::Write),
            ("metadata", Level::Read),
            ("pull_requests", Level::Write),
        ]
        .into_iter()
        .collect()
    }

    /// What reading a repository and its pull requests needs, nothing more: the token of a
    /// sandbox in observe mode.
    pub fn read_only_for_git() -> Permissions {
        [
            ("contents", Level::Read),
            ("metadata", Level::Read),
            ("pull_requests", Level::Read),
        ]
        .into_iter()
        .collect()
    }

    /// `NAME=LEVEL`, as `ghapp token --permission` takes it: a permission GitHub Apps have
    /// ([`KNOWN`]) at a level it takes.
    pub fn parse_pair(s: &str) -> Result<(String, Level), String> {
        let Some((name, level)) = s.split_once('=') else {
            return Err(format!("{s:?} is not NAME=LEVEL: e.g. contents=read"));
        };
        let Some((_, levels)) = KNOWN.iter().find(|(n, _)| *n == name) else {
            let hint = closest(name).map_or_else(String::new, |c| format!(" (did you mean {c}?)"));
            let all: Vec<&str> = KNOWN.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "{s:?}: {name:?} is not a GitHub App permission{hint}; they are: {}",
                all.join(", ")
            ));
        };
        let Some(level) = Level::parse(level).filter(|l| levels.contains(l)) else {
            let valid: Vec<&str> = levels.iter().map(|l| l.as_str()).collect();
            return Err(format!("{s:?}: {name} takes {}", valid.join(" or ")));
        };
        Ok((name.to_owned(), level))
    }

    pub fn get(&self, name: &str) -> Option<Level> {
        self.0.get(name).copied()
    }

    pub fn insert(&mut self, name: &str, level: Level) {
        self.0.insert(name.to_owned(), level);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Level)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// These permissions cut down to what `granted` allows: `write` becomes `read` where only
    /// read is granted; permissions not granted at all are dropped.
    pub fn fit_to(&self, granted: &Permissions) -> Permissions {
        self.iter()
            .filter_map(|(name, level)| Some((name, level.min(granted.get(name)?))))
            .collect()
    }

    /// Whether `granted` holds every permission here at this level or above.
    pub fn satisfied_by(&self, granted: &Permissions) -> bool {
        self.iter()
            .all(|(name, level)| granted.get(name).is_some_and(|g| g >= level))
    }
}

/// The permissions a GitHub App can ask for and their levels, from GitHub's `app-permissions`
/// schema (`tests/e2e/schema.rs` checks this table against it).
pub const KNOWN: &[(&str, &[Level])] = &[
    ("actions", &[Level::Read, Level::Write]),
    ("administration", &[Level::Read, Level::Write]),
    ("artifact_metadata", &[Level::Read, Level::Write]),
    ("attestations", &[Level::Read, Level::Write]),
    ("checks", &[Level::Read, Level::Write]),
    ("code_quality", &[Level::Read, Level::Write]),
    ("codespaces", &[Level::Read, Level::Write]),
    ("contents", &[Level::Read, Level::Write]),
    ("dependabot_secrets", &[Level::Read, Level::Write]),
    ("deployments", &[Level::Read, Level::Write]),
    ("discussions", &[Level::Read, Level::Write]),
    ("environments", &[Level::Read, Level::Write]),
    ("issues", &[Level::Read, Level::Write]),
    ("merge_queues", &[Level::Read, Level::Write]),
    ("metadata", &[Level::Read, Level::Write]),
    ("packages", &[Level::Read, Level::Write]),
    ("pages", &[Level::Read, Level::Write]),
    ("pull_requests", &[Level::Read, Level::Write]),
    ("repository_custom_properties", &[Level::Read, Level::Write]),
    ("repository_hooks", &[Level::Read, Level::Write]),
    (
        "repository_projects",
        &[Level::Read, Level::Write, Level::Admin],
    ),
    ("secret_scanning_alerts", &[Level::Read, Level::Write]),
    ("secrets", &[Level::Read, Level::Write]),
    ("security_events", &[Level::Read, Level::Write]),
    ("single_file", &[Level::Read, Level::Write]),
    ("statuses", &[Level::Read, Level::Write]),
    ("vulnerability_alerts", &[Level::Read, Level::Write]),
    ("workflows", &[Level::Write]),
    (
        "custom_properties_for_organizations",
        &[Level::Read, Level::Write],
    ),
    ("members", &[Level::Read, Level::Write]),
    ("organization_administration", &[Level::Read, Level::Write]),
    ("organization_custom_roles", &[Level::Read, Level::Write]),
    (
        "organization_custom_org_roles",
        &[Level::Read, Level::Write],
    ),
    (
        "organization_custom_properties",
        &[Level::Read, Level::Write, Level::Admin],
    ),
    (
        "organization_copilot_seat_management",
        &[Level::Read, Level::Write],
    ),
    (
        "organization_copilot_agent_settings",
        &[Level::Read, Level::Write],
    ),
    (
        "organization_announcement_banners",
        &[Level::Read, Level::Write],
    ),
    ("organization_events", &[Level::Read]),
    ("organization_hooks", &[Level::Read, Level::Write]),
    (
        "organization_personal_access_tokens",
        &[Level::Read, Level::Write],
    ),
    (
        "organization_personal_access_token_requests",
        &[Level::Read, Level::Write],
    ),
    ("organization_plan", &[Level::Read]),
    (
        "organization_projects",
        &[Level::Read, Level::Write, Level::Admin],
    ),
    ("organization_packages", &[Level::Read, Level::Write]),
    ("organization_secrets", &[Level::Read, Level::Write]),
    (
        "organization_self_hosted_runners",
        &[Level::Read, Level::Write],
    ),
    ("organization_user_blocking", &[Level::Read, Level::Write]),
    ("email_addresses", &[Level::Read, Level::Write]),
    ("followers", &[Level::Read, Level::Write]),
    ("git_ssh_keys", &[Level::Read, Level::Write]),
    ("gpg_keys", &[Level::Read, Level::Write]),
    ("interaction_limits", &[Level::Read, Level::Write]),
    ("profile", &[Level::Write]),
    ("starring", &[Level::Read, Level::Write]),
    (
        "enterprise_custom_properties_for_organizations",
        &[Level::Read, Level::Write, Level::Admin],
    ),
];

/// The known permission nearest to a misspelling (at most two edits away).
fn closest(name: &str) -> Option<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let sub = prev[j] + usize::from(ca != *cb);
                cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    KNOWN
        .iter()
        .map(|(n, _)| (distance(name, n), *n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

impl<'a> FromIterator<(&'a str, Level)> for Permissions {
    fn from_iter<I: IntoIterator<Item = (&'a str, Level)>>(iter: I) -> Self {
        Permissions(iter.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }
}

impl FromIterator<(String, Level)> for Permissions {
    fn from_iter<I: IntoIterator<Item = (String, Level)>>(iter: I) -> Self {
        Permissions(iter.into_iter().collect())
    }
}

/// `contents=write, metadata=read`.
impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, level)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={level}")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
        Ok(raw
            .into_iter()
            .filter_map(|(k, v)| Some((k, Level::parse(v.as_str()?)?)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, Level)]) -> Permissions {
        pairs.iter().copied().collect()
    }

    #[test]
    fn levels_are_ordered() {
        assert!(Level::Read < Level::Write && Level::Write < Level::Admin);
        for l in [Level::Read, Level::Write, Level::Admin] {
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
        assert_eq!(Level::parse("none"), None);
    }

    #[test]
    fn fitting_to_the_grant() {
        use Level::*;
        let wanted = Permissions::default_for_git();
        assert_eq!(wanted.fit_to(&wanted), wanted);
        assert_eq!(
            wanted.fit_to(&p(&[("contents", Read), ("metadata", Read)])),
            p(&[("contents", Read), ("metadata", Read)])
        );
        assert_eq!(
            p(&[("contents", Read)]).fit_to(&p(&[("contents", Admin)])),
            p(&[("contents", Read)])
        );
        assert!(wanted.fit_to(&Permissions::default()).is_empty());
        assert!(p(&[("contents", Read)]).satisfied_by(&p(&[("contents", Write)])));
        assert!(!wanted.satisfied_by(&p(&[("contents", Write)])));
    }

    #[test]
    fn github_shapes() {
        let v: Permissions = serde_json::from_str(
            r#"{"contents":"write","metadata":"read","future":"maybe","n":1}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            p(&[("contents", Level::Write), ("metadata", Level::Read)])
        );
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"contents":"write","metadata":"read"}"#
        );
        assert_eq!(v.to_string(), "contents=write, metadata=read");
        assert_eq!(
            Permissions::parse_pair("pull_requests=write").unwrap(),
            ("pull_requests".into(), Level::Write)
        );
        for (bad, want) in [
            ("contents", "is not NAME=LEVEL"),
            ("contents=all", "contents takes read or write"),
            ("contents=admin", "contents takes read or write"),
            ("workflows=read", "workflows takes write"),
            ("=read", "is not a GitHub App permission"),
            (
                "contnets=read",
                "(did you mean contents?); they are: actions, administration",
            ),
            ("Contents=read", "(did you mean contents?)"),
        ] {
            let e = Permissions::parse_pair(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
        assert_eq!(
            Permissions::parse_pair("repository_projects=admin")
                .unwrap()
                .1,
            Level::Admin
        );
    }
}
