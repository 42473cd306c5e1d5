//! Node ids, as GitHub resolves them for a sandbox's token: the one query the proxy sends
//! ([`NODES_QUERY`]) and what the policy reads of its answer ([`read_nodes`]): the
//! repository, pull request, issue or ref each id names, for [`super::mutations`] to decide on.

use std::collections::HashMap;

use ghapp_gitproto::repo::RepoName;
use serde_json::Value;

/// What a node id names, as GitHub answered for the sandbox's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub repo: RepoName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Repository,
    PullRequest(PullNode),
    Issue,
    /// A ref, by its full name (`refs/heads/agent/x`), and the commit it points at.
    Ref {
        name: String,
        oid: String,
    },
}

/// What the policy reads of a pull request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PullNode {
    pub number: u64,
    pub head: String,
    pub head_repo: Option<RepoName>,
    pub base: String,
}

impl Kind {
    pub(super) fn what(&self) -> &'static str {
        match self {
            Kind::Repository => "a repository",
            Kind::PullRequest(_) => "a pull request",
            Kind::Issue => "an issue",
            Kind::Ref { .. } => "a ref",
        }
    }
}

/// The query that resolves node ids, and how its answer is read.
pub(crate) const NODES_QUERY: &str = "query ghappProxyNodes($ids: [ID!]!) { nodes(ids: $ids) { __typename ... on Repository { nameWithOwner } ... on PullRequest { number repository { nameWithOwner } baseRefName headRefName headRepository { nameWithOwner } } ... on Issue { repository { nameWithOwner } } ... on Ref { prefix name target { oid } repository { nameWithOwner } } } }";

/// Reads GitHub's answer to [`NODES_QUERY`] for `ids`: the nodes it named that the policy can
/// use (other types, and ids GitHub did not resolve, are left out).
pub(crate) fn read_nodes(ids: &[String], answer: &Value) -> HashMap<String, Node> {
    let mut out = HashMap::new();
    let Some(list) = answer["data"]["nodes"].as_array() else {
        return out;
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    for (id, n) in ids.iter().zip(list) {
        let own = n["nameWithOwner"].as_str();
        let theirs = n["repository"]["nameWithOwner"].as_str();
        let (kind, repo) = match n["__typename"].as_str() {
            Some("Repository") => (Kind::Repository, own),
            Some("PullRequest") => (
                Kind::PullRequest(PullNode {
                    number: n["number"].as_u64().unwrap_or(0),
                    head: text(&n["headRefName"]),
                    head_repo: n["headRepository"]["nameWithOwner"]
                        .as_str()
                        .and_then(RepoName::parse),
                    base: text(&n["baseRefName"]),
                }),
                theirs,
            ),
            Some("Issue") => (Kind::Issue, theirs),
            Some("Ref") => {
                let name = format!("{}{}", text(&n["prefix"]), text(&n["name"]));
                let oid = text(&n["target"]["oid"]);
                (Kind::Ref { name, oid }, theirs)
            }
            _ => continue,
        };
        if let Some(repo) = repo.and_then(RepoName::parse) {
            out.insert(id.clone(), Node { kind, repo });
        }
    }
    out
}
