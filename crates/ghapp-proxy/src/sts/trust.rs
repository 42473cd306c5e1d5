//! Trust policies, as octo-sts reads them from `.github/chainguard/NAME.sts.yaml`: who may
//! exchange an OIDC token (issuer, subject, audience, other claims: exact values or regular
//! expressions that must match the whole value) for which permissions, and (in an
//! organization's policy) on which repositories. Pure: parsing, compiling and checking.

use std::collections::BTreeMap;

use ghapp_core::permissions::{Level, Permissions};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

/// The largest policy file read (octo-sts's are a few hundred bytes).
pub(crate) const MAX_POLICY_BYTES: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    issuer: Option<String>,
    issuer_pattern: Option<String>,
    subject: Option<String>,
    subject_pattern: Option<String>,
    audience: Option<String>,
    audience_pattern: Option<String>,
    #[serde(default)]
    claim_pattern: BTreeMap<String, String>,
    #[serde(default)]
    permissions: BTreeMap<String, String>,
    /// Only in an organization's policy.
    repositories: Option<Vec<String>>,
}

/// A value to match: exactly, or by a regular expression over the whole value.
#[derive(Debug)]
enum Match {
    Exact(String),
    Pattern(String, Regex),
}

impl Match {
    fn of(
        exact: Option<String>,
        pattern: Option<String>,
        key: &str,
    ) -> Result<Option<Match>, String> {
        match (exact, pattern) {
            (Some(_), Some(_)) => Err(format!("only one of {key} and {key}_pattern may be set")),
            (Some(e), None) => Ok(Some(Match::Exact(e))),
            (None, Some(p)) => Ok(Some(Match::Pattern(p.clone(), anchored(&p, key)?))),
            (None, None) => Ok(None),
        }
    }

    fn matches(&self, v: &str) -> bool {
        match self {
            Match::Exact(e) => e == v,
            Match::Pattern(_, r) => r.is_match(v),
        }
    }

    fn describe(&self) -> String {
        match self {
            Match::Exact(e) => format!("{e:?}"),
            Match::Pattern(p, _) => format!("pattern {p:?}"),
        }
    }
}

/// `p` as a regular expression that must match a whole value: `^(?:p)$` (a bare `^p$` would
/// let `a|b` match anything starting with `a`). Bounded in size.
fn anchored(p: &str, key: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{p})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            format!(
                "{key} {p:?} is not a regular expression: {}",
                e.to_string().lines().last().unwrap_or("")
            )
        })
}

/// A compiled trust policy.
#[derive(Debug)]
pub(crate) struct TrustPolicy {
    issuer: Match,
    subject: Match,
    audience: Option<Match>,
    claims: Vec<(String, Match)>,
    pub permissions: Permissions,
    /// An organization policy's repositories (`None`: every repository of the installation).
    pub repositories: Option<Vec<String>>,
}

impl TrustPolicy {
    /// Parses a policy file; `org`: an organization's policy, which may list `repositories`.
    pub(crate) fn parse(text: &str, org: bool) -> Result<TrustPolicy, String> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(format!("it is larger than {} KiB", MAX_POLICY_BYTES / 1024));
        }
        let f: File = serde_saphyr::from_str(text).map_err(|e| {
            format!(
                "it is not a trust policy: {}",
                e.to_string().replace('\n', " ")
            )
        })?;
        let issuer = Match::of(f.issuer, f.issuer_pattern, "issuer")?
            .ok_or("one of issuer and issuer_pattern must be set")?;
        let subject = Match::of(f.subject, f.subject_pattern, "subject")?
            .ok_or("one of subject and subject_pattern must be set")?;
        let audience = Match::of(f.audience, f.audience_pattern, "audience")?;
        let claims = f
            .claim_pattern
            .into_iter()
            .map(|(k, p)| {
                let r = anchored(&p, &format!("claim_pattern.{k}"))?;
                Ok((k, Match::Pattern(p, r)))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut permissions = Permissions::default();
        for (name, level) in f.permissions {
            let l = Level::parse(&level).ok_or_else(|| {
                format!("permissions.{name} = {level:?}: use read, write or admin")
            })?;
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                return Err(format!("permissions: {name:?} is not a permission name"));
            }
            permissions.insert(&name, l);
        }
        if permissions.is_empty() {
            // Least privilege: a policy that names nothing gets the repository's metadata.
            permissions.insert("metadata", Level::Read);
        }
        if f.repositories.is_some() && !org {
            return Err(
                "repositories belongs in an organization's policy (its .github repository); a repository's policy covers that repository".into(),
            );
        }
        Ok(TrustPolicy {
            issuer,
            subject,
            audience,
            claims,
            permissions,
            repositories: f.repositories,
        })
    }

    /// Whether the policy trusts tokens from `iss` (checked before any key is fetched).
    pub(crate) fn check_issuer(&self, iss: &str) -> Result<(), Refused> {
        if self.issuer.matches(iss) {
            Ok(())
        } else {
            Err(Refused::new(
                "issuer",
                format!(
                    "issuer {iss:?} does not match the policy's {}",
                    self.issuer.describe()
                ),
            ))
        }
    }

    /// Checks a verified token's claims: subject, audience (the service's `domain` when the
    /// policy names none), every `claim_pattern`.
    pub(crate) fn check(&self, claims: &Value, domain: &str) -> Result<(), Refused> {
        self.check_issuer(claims["iss"].as_str().unwrap_or(""))?;
        let sub = claims["sub"].as_str().unwrap_or("");
        if !self.subject.matches(sub) {
            return Err(Refused::new(
                "subject",
                format!(
                    "subject {sub:?} does not match the policy's {}",
                    self.subject.describe()
                ),
            ));
        }
        let auds: Vec<&str> = match &claims["aud"] {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let ok = match &self.audience {
            Some(m) => auds.iter().any(|a| m.matches(a)),
            None => auds.contains(&domain),
        };
        if !ok {
            let want = self
                .audience
                .as_ref()
                .map_or_else(|| format!("{domain:?} (this service)"), Match::describe);
            return Err(Refused::new(
                "audience",
                format!("audience {auds:?} is not {want}"),
            ));
        }
        for (name, m) in &self.claims {
            let v = match &claims[name.as_str()] {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Null => {
                    return Err(Refused::new(
                        "claim",
                        format!("the token has no {name:?} claim, which the policy matches"),
                    ));
                }
                _ => {
                    return Err(Refused::new(
                        "claim",
                        format!("the token's {name:?} claim is not a string"),
                    ));
                }
            };
            if !m.matches(&v) {
                return Err(Refused::new(
                    "claim",
                    format!(
                        "claim {name:?} = {v:?} does not match the policy's {}",
                        m.describe()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Why an exchange was refused: the check (a metric label) and the message the caller reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub check: &'static str,
    pub message: String,
}

impl Refused {
    pub(crate) fn new(check: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            check,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://token.actions.githubusercontent.com";

    fn claims(sub: &str, aud: &str) -> Value {
        json!({"iss": ISS, "sub": sub, "aud": aud, "ref": "refs/heads/main", "ref_protected": true})
    }

    #[test]
    fn octo_sts_policies_are_read_and_checked() {
        let p = TrustPolicy::parse(
            "issuer: https://token.actions.githubusercontent.com\nsubject: repo:o/r:ref:refs/heads/main\npermissions:\n  contents: read\n  issues: write\n",
            false,
        )
        .unwrap();
        assert_eq!(p.permissions.to_string(), "contents=read, issues=write");
        assert!(
            p.check(
                &claims("repo:o/r:ref:refs/heads/main", "sts.example"),
                "sts.example"
            )
            .is_ok()
        );
        let cases = [
            (
                claims("repo:o/r:ref:refs/heads/dev", "sts.example"),
                "subject",
            ),
            (claims("repo:o/r:ref:refs/heads/main", "other"), "audience"),
            (
                json!({"iss": "https://evil.example", "sub": "repo:o/r:ref:refs/heads/main", "aud": "sts.example"}),
                "issuer",
            ),
        ];
        for (c, check) in cases {
            assert_eq!(p.check(&c, "sts.example").unwrap_err().check, check, "{c}");
        }
    }

    #[test]
    fn patterns_match_whole_values_only() {
        let p = TrustPolicy::parse(
            &format!("issuer: {ISS}\nsubject_pattern: 'repo:o/r|repo:o/s'\nclaim_pattern:\n  ref: refs/heads/main\n  ref_protected: 'true'\n"),
            false,
        )
        .unwrap();
        assert!(p.check(&claims("repo:o/s", "d"), "d").is_ok());
        // Unanchored, either would match.
        assert_eq!(
            p.check(&claims("repo:o/r:ref:refs/heads/x", "d"), "d")
                .unwrap_err()
                .check,
            "subject"
        );
        assert_eq!(
            p.check(&claims("xrepo:o/s", "d"), "d").unwrap_err().check,
            "subject"
        );
        let mut c = claims("repo:o/r", "d");
        c["ref"] = json!("refs/heads/main-evil");
        assert_eq!(p.check(&c, "d").unwrap_err().check, "claim");
        c["ref"] = json!(7);
        assert_eq!(p.check(&c, "d").unwrap_err().check, "claim");
    }

    #[test]
    fn bad_policies_say_what_is_wrong() {
        for (text, org, says) in [
            ("subject: x\n", false, "issuer"),
            (&format!("issuer: {ISS}\n")[..], false, "subject"),
            (
                &format!("issuer: {ISS}\nissuer_pattern: x\nsubject: s\n")[..],
                false,
                "only one of issuer",
            ),
            (
                &format!("issuer: {ISS}\nsubject_pattern: '('\n")[..],
                false,
                "not a regular expression",
            ),
            (
                &format!("issuer: {ISS}\nsubject: s\nrepositories: [a]\n")[..],
                false,
                "organization",
            ),
            (
                &format!("issuer: {ISS}\nsubject: s\npermissions: {{contents: all}}\n")[..],
                false,
                "read, write or admin",
            ),
            (
                &format!("issuer: {ISS}\nsubject: s\nsubjekt: t\n")[..],
                false,
                "unknown field",
            ),
            ("a: &a [1]\nb: [*a, *a, *a]\n", false, "not a trust policy"),
        ] {
            let e = TrustPolicy::parse(text, org).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
        let p = TrustPolicy::parse(
            &format!("issuer: {ISS}\nsubject: s\nrepositories: [a, b]\n"),
            true,
        )
        .unwrap();
        assert_eq!(p.repositories, Some(vec!["a".into(), "b".into()]));
        assert_eq!(p.permissions.to_string(), "metadata=read");
        assert!(TrustPolicy::parse(&"#".repeat(MAX_POLICY_BYTES + 1), false).is_err());
    }
}
