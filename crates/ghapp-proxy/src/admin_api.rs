//! The admin API's contract: its requests and answers as Rust types, the same ones the proxy
//! writes and its clients (`ghapp sandbox`, `ghapp approvals`, `ghapp proposals`) read, so a
//! renamed field fails to read instead of printing nothing. `docs/reference/admin-api.yaml`
//! describes them; a test checks the proxy's real answers against it.
//!
//! | method and path | request | answer |
//! |---|---|---|
//! | `POST /v1/sandboxes` | [`NewSandbox`] | 201 [`Created`] |
//! | `GET /v1/sandboxes`, `GET /v1/sandboxes/{name}` | | [`Sandbox`] (a list, or one) |
//! | `PATCH /v1/sandboxes/{name}` | [`Policy`] | [`Sandbox`] |
//! | `DELETE /v1/sandboxes/{name}` | | [`Disconnected`] |
//! | `GET /v1/approvals[?status=S]`, `GET /v1/approvals/{id}` | | [`Approval`] (a list, or one) |
//! | `GET /v1/approvals/{id}/checks` | | [`Checks`] |
//! | `POST /v1/approvals/{id}/approve`, `…/deny` | [`Decision`] | [`Approval`] |
//! | `GET /v1/proposals[?sandbox=NAME]`, `GET /v1/proposals/{id}` | | [`Proposal`] (a list, or one) |
//! | `GET /v1/proposals/{id}/bundle` | | a git bundle |
//! | any, refused | | [`ErrorBody`] |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::store::{Approval, Proposal};
use ghapp_core::secret::ProxySecret;

/// The checks GitHub has on a held pull request's head commit (`GET
/// /v1/approvals/{id}/checks`), read with a token narrowed to `checks: read`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checks {
    /// The check runs, newest first (at most 50).
    pub checks: Vec<CheckRun>,
    /// Why they could not be read (the app lacks Checks, GitHub did not answer, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// One check run, as a person reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRun {
    pub name: String,
    /// `queued`, `in_progress`, `completed`, ...
    pub status: String,
    /// Once completed: `success`, `failure`, ...
    pub conclusion: Option<String>,
    /// Where the CI shows it (its `details_url`, else GitHub's page).
    pub url: Option<String>,
}

/// A sandbox's policy keys: every key of a `[[sandbox]]` table but `name` and `secret`; a key
/// left out takes `[defaults]`' value (when adding) or stays as it is (when changing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repos: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_delete: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_merge: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_push_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_scan: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspect: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub significant: Option<Significant>,
}

impl Policy {
    /// This policy with every key `changes` gives replaced.
    pub fn merged(self, changes: Policy) -> Policy {
        Policy {
            repos: changes.repos.or(self.repos),
            push: changes.push.or(self.push),
            allow_delete: changes.allow_delete.or(self.allow_delete),
            allow_merge: changes.allow_merge.or(self.allow_merge),
            weight: changes.weight.or(self.weight),
            reviewers: changes.reviewers.or(self.reviewers),
            rest: changes.rest.or(self.rest),
            force: changes.force.or(self.force),
            protected_paths: changes.protected_paths.or(self.protected_paths),
            max_file_bytes: changes.max_file_bytes.or(self.max_file_bytes),
            max_push_bytes: changes.max_push_bytes.or(self.max_push_bytes),
            secret_scan: changes.secret_scan.or(self.secret_scan),
            inspect: changes.inspect.or(self.inspect),
            mode: changes.mode.or(self.mode),
            significant: changes.significant.or(self.significant),
        }
    }

    /// Whether it says nothing.
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

/// When an assisted sandbox's pull request waits for a person.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Significant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
}

/// `POST /v1/sandboxes`: a name and its policy (`repos` required).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSandbox {
    pub name: String,
    pub policy: Policy,
}

impl Serialize for NewSandbox {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(&self.policy).map_err(serde::ser::Error::custom)?;
        v["name"] = serde_json::Value::String(self.name.clone());
        v.serialize(s)
    }
}

impl<'de> Deserialize<'de> for NewSandbox {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut m = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let name = match m.remove("name") {
            Some(serde_json::Value::String(n)) => n,
            Some(_) => return Err(D::Error::custom("\"name\" must be a string")),
            None => return Err(D::Error::custom("a sandbox needs a \"name\"")),
        };
        let policy = Policy::deserialize(serde_json::Value::Object(m)).map_err(D::Error::custom)?;
        Ok(NewSandbox { name, policy })
    }
}

/// A sandbox's rules as `GET /policy` words them for the agent (the admin API shows the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub sandbox: String,
    pub mode: String,
    /// Learning and assisted: who reviews its drafts at GitHub (none: held on the page).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reviewers: Vec<String>,
    /// Whether it may merge its own pull requests.
    pub merge: bool,
    pub repositories: Vec<String>,
    pub push: PushRules,
    pub rest: RestRules,
    pub graphql: GraphqlRules,
    pub lfs: LfsRules,
    pub egress: String,
    pub budget: BudgetRules,
}

impl Rules {
    /// One rule a line, as `GET /policy` answers in text (the operator's CLI shows the same).
    pub fn text(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        fn walk(prefix: &str, v: &serde_json::Value, out: &mut String) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, x) in m {
                        let p = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&p, x, out);
                    }
                }
                serde_json::Value::Array(a) if a.is_empty() => {
                    out.push_str(&format!("{prefix}: (none)\n"))
                }
                serde_json::Value::Array(a) => {
                    for x in a {
                        out.push_str(&format!(
                            "{prefix}: {}\n",
                            x.as_str().map_or_else(|| x.to_string(), str::to_owned)
                        ));
                    }
                }
                serde_json::Value::String(s) => out.push_str(&format!("{prefix}: {s}\n")),
                other => out.push_str(&format!("{prefix}: {other}\n")),
            }
        }
        let mut out = String::new();
        walk("", &v, &mut out);
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRules {
    pub refs: Vec<String>,
    pub delete: bool,
    pub inspected: bool,
    pub force: Vec<String>,
    pub protected_paths: Vec<String>,
    pub max_file_bytes: u64,
    pub max_push_bytes: u64,
    pub secret_scan: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestRules {
    pub reads: String,
    pub writes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphqlRules {
    pub queries: bool,
    pub mutations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LfsRules {
    pub download: bool,
    pub upload: bool,
    pub locks: bool,
}

/// What the sandbox may spend of GitHub's limits: the fleet's content-creation budget, its
/// weight, and its share per minute when it is the only one spending (half: one share is kept
/// for a newcomer; less as others spend).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetRules {
    pub weight: u32,
    pub content_per_minute: u32,
    pub content_per_hour: u32,
    pub share_per_minute_alone: i64,
    /// Its content creation so far in this minute and this hour (every replica's, through the
    /// state store).
    #[serde(default)]
    pub used_this_minute: i64,
    #[serde(default)]
    pub used_this_hour: i64,
    /// The fleet's GraphQL points per minute (a query 1, a mutation 5), and the sandbox's so
    /// far in this minute.
    #[serde(default)]
    pub graphql_points_per_minute: u32,
    #[serde(default)]
    pub graphql_points_this_minute: i64,
}

/// Where a sandbox is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The proxy's file (changed there, not through the API).
    File,
    /// The state store (added through the API).
    Store,
}

/// A sandbox as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    #[serde(flatten)]
    pub rules: Rules,
    pub source: Source,
    pub disconnected: bool,
}

/// The answer to `POST /v1/sandboxes`: the sandbox, its secret (shown this once) and the
/// environment that gives a sandbox the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    #[serde(flatten)]
    pub sandbox: Sandbox,
    pub secret: ProxySecret,
    /// `http://NAME:SECRET@HOST:PORT`.
    pub https_proxy: ProxySecret,
    pub ca_pem: String,
    /// `HTTPS_PROXY` and the variables git needs.
    pub env: BTreeMap<String, ProxySecret>,
    /// The variables that name the CA file, for every runtime.
    pub ca_env: Vec<String>,
}

/// The answer to `DELETE /v1/sandboxes/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disconnected {
    pub name: String,
    pub disconnected: bool,
    pub tokens_revoked: usize,
}

/// `POST /v1/approvals/{id}/approve` and `…/deny`: who decides, and (a denial) why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What every refusal answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_sandbox_reads_its_name_and_refuses_unknown_keys() {
        let n: NewSandbox =
            serde_json::from_str(r#"{"name":"a","repos":["o/r"],"mode":"observe"}"#).unwrap();
        assert_eq!(n.name, "a");
        assert_eq!(n.policy.mode.as_deref(), Some("observe"));
        let back = serde_json::to_value(&n).unwrap();
        assert_eq!(back["name"], "a");
        let e = serde_json::from_str::<NewSandbox>(r#"{"name":"a","repo":["o/r"]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `repo`"), "{e}");
        assert!(serde_json::from_str::<NewSandbox>(r#"{"repos":[]}"#).is_err());
        let merged = Policy {
            repos: Some(vec!["o/r".into()]),
            mode: Some("learning".into()),
            ..Policy::default()
        }
        .merged(Policy {
            mode: Some("observe".into()),
            ..Policy::default()
        });
        assert_eq!(
            (merged.repos.unwrap().len(), merged.mode.as_deref()),
            (1, Some("observe"))
        );
    }

    #[test]
    fn a_created_sandbox_s_secret_is_not_in_its_debug() {
        let c = Created {
            sandbox: Sandbox {
                rules: Rules {
                    sandbox: "a".into(),
                    mode: "autonomous".into(),
                    reviewers: vec![],
                    merge: false,
                    repositories: vec![],
                    push: PushRules {
                        refs: vec![],
                        delete: false,
                        inspected: true,
                        force: vec![],
                        protected_paths: vec![],
                        max_file_bytes: 1,
                        max_push_bytes: 1,
                        secret_scan: true,
                    },
                    rest: RestRules {
                        reads: String::new(),
                        writes: vec![],
                    },
                    graphql: GraphqlRules {
                        queries: true,
                        mutations: vec![],
                    },
                    lfs: LfsRules {
                        download: true,
                        upload: false,
                        locks: false,
                    },
                    egress: "deny".into(),
                    budget: BudgetRules {
                        weight: 1,
                        content_per_minute: 60,
                        content_per_hour: 400,
                        share_per_minute_alone: 30,
                        used_this_minute: 0,
                        used_this_hour: 0,
                        graphql_points_per_minute: 1000,
                        graphql_points_this_minute: 0,
                    },
                },
                source: Source::Store,
                disconnected: false,
            },
            secret: ProxySecret::new("s3cret-s3cret-s3cret"),
            https_proxy: ProxySecret::new("http://a:s3cret-s3cret-s3cret@h:1"),
            ca_pem: String::new(),
            env: BTreeMap::from([(
                "HTTPS_PROXY".to_owned(),
                ProxySecret::new("http://a:s3cret-s3cret-s3cret@h:1"),
            )]),
            ca_env: vec![],
        };
        assert!(!format!("{c:?}").contains("s3cret"));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["secret"], "s3cret-s3cret-s3cret");
        assert_eq!(v["sandbox"], "a");
        assert_eq!(serde_json::from_value::<Created>(v).unwrap(), c);
    }
}
