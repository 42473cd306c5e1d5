//! GraphQL mutations through the proxy: an allow-list, and each allowed mutation's arguments
//! checked against the sandbox's policy the way the REST table and the push policy check the
//! same actions. Pure: the node ids a check needs ([`Check::ids`]) are resolved by the caller
//! (through GitHub, with the sandbox's token, [`crate::nodes`]) and handed to [`decide`].
//!
//! | mutation | allowed when |
//! |---|---|
//! | `createPullRequest` | the repository is the sandbox's, the head a branch it may push |
//! | `updatePullRequest`, `closePullRequest`, `reopenPullRequest`, `markPullRequestReadyForReview` | the pull request is in one of the sandbox's repositories |
//! | `mergePullRequest` | `allow_merge = true` in autonomous mode, and the pull request is one of the sandbox's own |
//! | `addComment` | on a pull request or issue of one of the sandbox's repositories |
//! | `createCommitOnBranch`, `createRef`, `updateRef`, `updateRefs`, `deleteRef` | the push policy allows the ref (deletes as for git) |
//!
//! Everything else (auto-merge, settings, reviews, anything not listed) is refused.

use std::collections::HashMap;

use ghapp_gitproto::graphql::Call;
use ghapp_gitproto::receive_pack::Command;
use ghapp_gitproto::repo::RepoName;
use serde_json::Value;

use crate::sandbox::Sandbox;

/// The mutations that may pass, checked as the table above says.
pub(crate) const ALLOWED: &[&str] = &[
    "createPullRequest",
    "updatePullRequest",
    "closePullRequest",
    "reopenPullRequest",
    "markPullRequestReadyForReview",
    "addComment",
    "createCommitOnBranch",
    "createRef",
    "updateRef",
    "updateRefs",
    "deleteRef",
];

/// The most node ids one request may need resolved (GitHub's `nodes` takes 100).
pub(crate) const MAX_IDS: usize = 50;

/// What a node id names, as GitHub answered for the sandbox's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub repo: RepoName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Repository,
    /// A pull request, with its head branch and the repository that holds it.
    PullRequest {
        head: String,
        head_repo: Option<RepoName>,
    },
    Issue,
    /// A ref, by its full name (`refs/heads/agent/x`).
    Ref(String),
}

impl Kind {
    fn what(&self) -> &'static str {
        match self {
            Kind::Repository => "a repository",
            Kind::PullRequest { .. } => "a pull request",
            Kind::Issue => "an issue",
            Kind::Ref(_) => "a ref",
        }
    }
}

/// An allowed mutation, its arguments read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    CreatePull {
        repository: String,
        head_repository: Option<String>,
        head: String,
        /// What a learning sandbox's held request needs to be created later.
        base: String,
        title: String,
        body: String,
        draft: bool,
    },
    /// `updatePullRequest`, `closePullRequest`, `reopenPullRequest`,
    /// `markPullRequestReadyForReview`.
    OnPull {
        pull: String,
    },
    Comment {
        subject: String,
    },
    /// `createCommitOnBranch`: the branch by ref id, or by repository and name.
    Commit {
        ref_id: Option<String>,
        named: Option<(String, String)>,
    },
    CreateRef {
        repository: String,
        name: String,
    },
    /// `updateRef` (`delete: false`) and `deleteRef`.
    Ref {
        ref_id: String,
        delete: bool,
    },
    UpdateRefs {
        repository: String,
        /// Each ref and whether the update deletes it.
        updates: Vec<(String, bool)>,
    },
}

fn string(v: &Value, key: &str, call: &str) -> Result<String, String> {
    match &v[key] {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(format!("{call} needs input.{key}")),
    }
}

fn is_zero(oid: &str) -> bool {
    !oid.is_empty() && oid.bytes().all(|b| b == b'0')
}

/// The mutation that merges, allowed only to a sandbox that may merge.
pub(crate) const MERGE: &str = "mergePullRequest";

/// Reads an allowed mutation's arguments; a mutation not on the list (with `may_merge`, the
/// list and [`MERGE`]), or without the arguments its check needs, is refused.
pub(crate) fn check(call: &Call, may_merge: bool) -> Result<Check, String> {
    let name = call.name.as_str();
    if name == MERGE && !may_merge {
        return Err(format!(
            "mutation {name} is not allowed: merging is for autonomous sandboxes with allow_merge = true"
        ));
    }
    if !ALLOWED.contains(&name) && name != MERGE {
        return Err(format!(
            "mutation {name} is not allowed (policy: GraphQL mutations pass only from the allow-list: {})",
            ALLOWED.join(", ")
        ));
    }
    let input = &call.arguments.get("input").cloned().unwrap_or(Value::Null);
    if !input.is_object() {
        return Err(format!("{name} needs its input object"));
    }
    let s = |key: &str| string(input, key, name);
    Ok(match name {
        "createPullRequest" => Check::CreatePull {
            repository: s("repositoryId")?,
            head_repository: input["headRepositoryId"].as_str().map(str::to_owned),
            head: s("headRefName")?,
            base: input["baseRefName"].as_str().unwrap_or_default().to_owned(),
            title: input["title"].as_str().unwrap_or_default().to_owned(),
            body: input["body"].as_str().unwrap_or_default().to_owned(),
            draft: input["draft"].as_bool().unwrap_or(false),
        },
        "addComment" => Check::Comment {
            subject: s("subjectId")?,
        },
        "createCommitOnBranch" => {
            let b = &input["branch"];
            let ref_id = b["id"].as_str().map(str::to_owned);
            let named = match (
                b["repositoryNameWithOwner"].as_str(),
                b["branchName"].as_str(),
            ) {
                (Some(r), Some(n)) => Some((r.to_owned(), n.to_owned())),
                _ => None,
            };
            if ref_id.is_none() == named.is_none() {
                return Err(
                    "createCommitOnBranch needs input.branch with either id or repositoryNameWithOwner and branchName".into(),
                );
            }
            Check::Commit { ref_id, named }
        }
        "createRef" => Check::CreateRef {
            repository: s("repositoryId")?,
            name: s("name")?,
        },
        "updateRef" | "deleteRef" => Check::Ref {
            ref_id: s("refId")?,
            delete: name == "deleteRef",
        },
        "updateRefs" => {
            let Some(list) = input["refUpdates"].as_array() else {
                return Err("updateRefs needs input.refUpdates".into());
            };
            let updates = list
                .iter()
                .map(|u| {
                    Ok((
                        string(u, "name", name)?,
                        is_zero(&string(u, "afterOid", name)?),
                    ))
                })
                .collect::<Result<_, String>>()?;
            Check::UpdateRefs {
                repository: s("repositoryId")?,
                updates,
            }
        }
        _ => Check::OnPull {
            pull: s("pullRequestId")?,
        },
    })
}

impl Check {
    /// The node ids the decision needs resolved.
    pub(crate) fn ids(&self) -> Vec<&str> {
        match self {
            Check::CreatePull {
                repository,
                head_repository,
                ..
            } => std::iter::once(repository.as_str())
                .chain(head_repository.as_deref())
                .collect(),
            Check::OnPull { pull: id }
            | Check::Comment { subject: id }
            | Check::CreateRef { repository: id, .. }
            | Check::Ref { ref_id: id, .. }
            | Check::UpdateRefs { repository: id, .. } => vec![id],
            Check::Commit { ref_id, .. } => ref_id.as_deref().into_iter().collect(),
        }
    }
}

/// Decides the allowed mutations of one request on the resolved `nodes`: the repository whose
/// owner's token carries it, or the reason it is refused. Every mutation must be for the
/// sandbox's repositories of one owner.
pub(crate) fn decide(
    sb: &Sandbox,
    checks: &[(String, Check)],
    nodes: &HashMap<String, Node>,
) -> Result<RepoName, String> {
    let mut target: Option<RepoName> = None;
    for (name, c) in checks {
        let repo = one(sb, name, c, nodes)?;
        match &target {
            Some(t) if !t.owner().eq_ignore_ascii_case(repo.owner()) => {
                return Err(format!(
                    "one GraphQL request may change the repositories of one owner only ({} and {})",
                    t.owner(),
                    repo.owner()
                ));
            }
            Some(_) => {}
            None => target = Some(repo),
        }
    }
    target.ok_or_else(|| "the mutation has no fields".into())
}

/// The node `id` names, of kind `want` (by its description), in one of the sandbox's
/// repositories.
fn node<'n>(
    sb: &Sandbox,
    nodes: &'n HashMap<String, Node>,
    id: &str,
    want: &[&str],
) -> Result<(&'n Node, RepoName), String> {
    let Some(n) = nodes.get(id) else {
        return Err(format!(
            "node {id:?} is not {} that sandbox {}'s token can reach",
            want.join(" or "),
            sb.name()
        ));
    };
    if !want.contains(&n.kind.what()) {
        return Err(format!(
            "node {id:?} is {}, not {}",
            n.kind.what(),
            want.join(" or ")
        ));
    }
    let repo = sb.own_repo(n.repo.owner(), n.repo.repo())?;
    Ok((n, repo))
}

/// Whether a pull request (head branch `head` in `head_repo`) is one of the sandbox's own: its
/// head a branch of `repo` the sandbox may push.
pub(crate) fn pull_is_own(
    sb: &Sandbox,
    repo: &RepoName,
    head: &str,
    head_repo: Option<&RepoName>,
) -> Result<(), String> {
    if head_repo != Some(repo) {
        return Err(format!(
            "the pull request's head is not in {repo}: sandbox {} changes only pull requests from its own branches",
            sb.name()
        ));
    }
    crate::policy::pull_head_branch(sb, repo, head).map_err(|why| {
        format!(
            "{why}: sandbox {} changes only pull requests from its own branches",
            sb.name()
        )
    })
}

/// A ref update through the push policy, with git's words for a refusal.
fn push(sb: &Sandbox, refname: &str, delete: bool) -> Result<(), String> {
    if !ghapp_gitproto::receive_pack::valid_refname(refname) {
        return Err(format!("{refname:?} is not a valid ref name"));
    }
    let c = Command {
        old: "1".repeat(40),
        new: if delete { "0" } else { "1" }.repeat(40),
        refname: refname.to_owned(),
    };
    match sb.push.refuse(&c) {
        Some(why) => Err(format!("{refname}: {why}")),
        None => Ok(()),
    }
}

fn one(
    sb: &Sandbox,
    name: &str,
    c: &Check,
    nodes: &HashMap<String, Node>,
) -> Result<RepoName, String> {
    const REPO: &[&str] = &["a repository"];
    match c {
        Check::CreatePull {
            repository,
            head_repository,
            head,
            ..
        } => {
            let (_, repo) = node(sb, nodes, repository, REPO)?;
            if let Some(h) = head_repository {
                let (_, head_repo) = node(sb, nodes, h, REPO)?;
                if head_repo != repo {
                    return Err(format!(
                        "createPullRequest from {head_repo} into {repo}: sandbox {} may open pull requests only from its own branches",
                        sb.name()
                    ));
                }
            }
            crate::policy::pull_head_branch(sb, &repo, head)?;
            Ok(repo)
        }
        // Only pull requests from the sandbox's own branches (a head it may push, in the same
        // repository) are its to change, close or reopen.
        Check::OnPull { pull } => {
            let (n, repo) = node(sb, nodes, pull, &["a pull request"])?;
            if let Kind::PullRequest { head, head_repo } = &n.kind {
                pull_is_own(sb, &repo, head, head_repo.as_ref())?;
            }
            Ok(repo)
        }
        Check::Comment { subject } => {
            Ok(node(sb, nodes, subject, &["a pull request", "an issue"])?.1)
        }
        Check::Commit { ref_id, named } => match (ref_id, named) {
            (Some(id), _) => {
                let (n, repo) = node(sb, nodes, id, &["a ref"])?;
                let Kind::Ref(full) = &n.kind else {
                    unreachable!("node() checked the kind")
                };
                push(sb, full, false)?;
                Ok(repo)
            }
            (None, Some((full_name, branch))) => {
                let Some(r) = RepoName::parse(full_name) else {
                    return Err(format!("{full_name:?} is not OWNER/REPO"));
                };
                let repo = sb.own_repo(r.owner(), r.repo())?;
                push(sb, &format!("refs/heads/{branch}"), false)?;
                Ok(repo)
            }
            (None, None) => Err(format!("{name} names no branch")),
        },
        Check::CreateRef {
            repository,
            name: refname,
        } => {
            let (_, repo) = node(sb, nodes, repository, REPO)?;
            push(sb, refname, false)?;
            Ok(repo)
        }
        Check::Ref { ref_id, delete } => {
            let (n, repo) = node(sb, nodes, ref_id, &["a ref"])?;
            let Kind::Ref(full) = &n.kind else {
                unreachable!("node() checked the kind")
            };
            push(sb, full, *delete)?;
            Ok(repo)
        }
        Check::UpdateRefs {
            repository,
            updates,
        } => {
            let (_, repo) = node(sb, nodes, repository, REPO)?;
            for (refname, delete) in updates {
                push(sb, refname, *delete)?;
            }
            Ok(repo)
        }
    }
}

/// The query that resolves node ids, and how its answer is read.
pub(crate) const NODES_QUERY: &str = "query ghappProxyNodes($ids: [ID!]!) { nodes(ids: $ids) { __typename ... on Repository { nameWithOwner } ... on PullRequest { repository { nameWithOwner } headRefName headRepository { nameWithOwner } } ... on Issue { repository { nameWithOwner } } ... on Ref { prefix name repository { nameWithOwner } } } }";

/// Reads GitHub's answer to [`NODES_QUERY`] for `ids`: the nodes it named that the policy can
/// use (other types, and ids GitHub did not resolve, are left out).
pub(crate) fn read_nodes(ids: &[String], answer: &Value) -> HashMap<String, Node> {
    let mut out = HashMap::new();
    let Some(list) = answer["data"]["nodes"].as_array() else {
        return out;
    };
    for (id, n) in ids.iter().zip(list) {
        let own = n["nameWithOwner"].as_str();
        let theirs = n["repository"]["nameWithOwner"].as_str();
        let (kind, repo) = match n["__typename"].as_str() {
            Some("Repository") => (Kind::Repository, own),
            Some("PullRequest") => (
                Kind::PullRequest {
                    head: n["headRefName"].as_str().unwrap_or_default().to_owned(),
                    head_repo: n["headRepository"]["nameWithOwner"]
                        .as_str()
                        .and_then(RepoName::parse),
                },
                theirs,
            ),
            Some("Issue") => (Kind::Issue, theirs),
            Some("Ref") => {
                let full = format!(
                    "{}{}",
                    n["prefix"].as_str().unwrap_or_default(),
                    n["name"].as_str().unwrap_or_default()
                );
                (Kind::Ref(full), theirs)
            }
            _ => continue,
        };
        if let Some(repo) = repo.and_then(RepoName::parse) {
            out.insert(id.clone(), Node { kind, repo });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::tests::sandbox;
    use serde_json::json;

    fn nodes() -> HashMap<String, Node> {
        let answer = json!({"data": {"nodes": [
            {"__typename": "Repository", "nameWithOwner": "octo-org/widgets"},
            {"__typename": "Repository", "nameWithOwner": "octo-org/gadgets"},
            {"__typename": "PullRequest", "repository": {"nameWithOwner": "octo-org/widgets"}, "headRefName": "agent/x", "headRepository": {"nameWithOwner": "octo-org/widgets"}},
            {"__typename": "Ref", "prefix": "refs/heads/", "name": "main", "repository": {"nameWithOwner": "octo-org/widgets"}},
            {"__typename": "Ref", "prefix": "refs/heads/", "name": "agent/x", "repository": {"nameWithOwner": "octo-org/widgets"}},
            {"__typename": "User"},
            null,
            {"__typename": "PullRequest", "repository": {"nameWithOwner": "octo-org/widgets"}, "headRefName": "feature", "headRepository": {"nameWithOwner": "octo-org/widgets"}},
            {"__typename": "PullRequest", "repository": {"nameWithOwner": "octo-org/widgets"}, "headRefName": "agent/x", "headRepository": {"nameWithOwner": "someone/widgets"}},
        ]}});
        let ids: Vec<String> = [
            "R_w", "R_g", "PR_1", "REF_main", "REF_x", "U_1", "R_gone", "PR_human", "PR_fork",
        ]
        .map(str::to_owned)
        .into();
        read_nodes(&ids, &answer)
    }

    fn verdict(name: &str, input: Value) -> Result<String, String> {
        let call = Call {
            name: name.into(),
            arguments: [("input".to_owned(), input)].into_iter().collect(),
        };
        let c = check(&call, false)?;
        decide(&sandbox(), &[(name.to_owned(), c)], &nodes()).map(|r| r.to_string())
    }

    #[test]
    fn merging_only_when_allowed_and_only_its_own() {
        let call = |pr: &str| Call {
            name: MERGE.into(),
            arguments: [("input".to_owned(), json!({ "pullRequestId": pr }))]
                .into_iter()
                .collect(),
        };
        assert!(
            check(&call("PR_1"), false)
                .unwrap_err()
                .contains("allow_merge")
        );
        let sb = sandbox();
        let decide_one = |pr: &str| {
            let c = check(&call(pr), true).unwrap();
            decide(&sb, &[(MERGE.to_owned(), c)], &nodes()).map(|r| r.to_string())
        };
        assert_eq!(decide_one("PR_1").as_deref(), Ok("Octo-Org/Widgets"));
        assert!(
            decide_one("PR_human")
                .unwrap_err()
                .contains("its own branches")
        );
        assert!(decide_one("PR_fork").is_err());
    }

    #[test]
    fn the_allow_list_and_each_check() {
        let ok = "Octo-Org/Widgets";
        let pr = |head: &str| json!({"repositoryId": "R_w", "headRefName": head, "baseRefName": "main", "title": "t"});
        assert_eq!(
            verdict("createPullRequest", pr("agent/x")).as_deref(),
            Ok(ok)
        );
        assert_eq!(
            verdict("createPullRequest", pr("octo-org:agent/x")).as_deref(),
            Ok(ok)
        );
        for (name, input, why) in [
            (
                "mergePullRequest",
                json!({"pullRequestId": "PR_1"}),
                "mutation mergePullRequest is not allowed",
            ),
            (
                "enablePullRequestAutoMerge",
                json!({"pullRequestId": "PR_1"}),
                "not allowed",
            ),
            (
                "updateRepository",
                json!({"repositoryId": "R_w"}),
                "not allowed",
            ),
            (
                "createPullRequest",
                pr("main"),
                "not allowed for sandbox agent-a",
            ),
            ("createPullRequest", pr("evil:agent/x"), "fork"),
            (
                "createPullRequest",
                json!({"repositoryId": "R_g", "headRefName": "agent/x"}),
                "octo-org/gadgets is not among sandbox agent-a's repositories",
            ),
            (
                "createPullRequest",
                json!({"repositoryId": "R_gone", "headRefName": "agent/x"}),
                "is not a repository that sandbox agent-a's token can reach",
            ),
            (
                "createPullRequest",
                json!({"repositoryId": "R_w", "headRepositoryId": "R_g", "headRefName": "agent/x"}),
                "gadgets",
            ),
            (
                "createPullRequest",
                json!({"repositoryId": "PR_1", "headRefName": "agent/x"}),
                "is a pull request, not a repository",
            ),
            (
                "createCommitOnBranch",
                json!({"branch": {"id": "REF_main"}}),
                "refs/heads/main: pushes allowed only to refs/heads/agent/*",
            ),
            (
                "createCommitOnBranch",
                json!({"branch": {"repositoryNameWithOwner": "octo-org/widgets", "branchName": "main"}}),
                "refs/heads/main",
            ),
            (
                "createCommitOnBranch",
                json!({"branch": {"repositoryNameWithOwner": "octo-org/gadgets", "branchName": "agent/x"}}),
                "not among",
            ),
            (
                "createCommitOnBranch",
                json!({"branch": {}}),
                "needs input.branch",
            ),
            (
                "updateRef",
                json!({"refId": "REF_main", "oid": "abc"}),
                "refs/heads/main",
            ),
            (
                "deleteRef",
                json!({"refId": "REF_x"}),
                "deleting refs is not allowed",
            ),
            (
                "createRef",
                json!({"repositoryId": "R_w", "name": "refs/heads/main", "oid": "abc"}),
                "refs/heads/main",
            ),
            (
                "createRef",
                json!({"repositoryId": "R_w", "name": "refs/heads/agent/../main", "oid": "abc"}),
                "not a valid ref name",
            ),
            (
                "updateRefs",
                json!({"repositoryId": "R_w", "refUpdates": [{"name": "refs/heads/agent/y", "afterOid": "abc"}, {"name": "refs/heads/main", "afterOid": "abc"}]}),
                "refs/heads/main",
            ),
            (
                "addComment",
                json!({"subjectId": "U_1", "body": "x"}),
                "is not a pull request or an issue",
            ),
            ("closePullRequest", json!({}), "needs input.pullRequestId"),
            (
                "closePullRequest",
                json!({"pullRequestId": "PR_human"}),
                "pull request head \"feature\" is not allowed for sandbox agent-a",
            ),
            (
                "updatePullRequest",
                json!({"pullRequestId": "PR_fork", "title": "x"}),
                "the pull request's head is not in Octo-Org/Widgets",
            ),
            ("closePullRequest", json!(null), "needs its input object"),
        ] {
            let got = verdict(name, input.clone()).unwrap_err();
            assert!(got.contains(why), "{name} {input}: {got}");
        }
        for (name, input) in [
            ("createCommitOnBranch", json!({"branch": {"id": "REF_x"}})),
            (
                "createCommitOnBranch",
                json!({"branch": {"repositoryNameWithOwner": "octo-org/widgets", "branchName": "agent/y"}}),
            ),
            ("updateRef", json!({"refId": "REF_x", "oid": "abc"})),
            (
                "createRef",
                json!({"repositoryId": "R_w", "name": "refs/heads/agent/y", "oid": "abc"}),
            ),
            (
                "updateRefs",
                json!({"repositoryId": "R_w", "refUpdates": [{"name": "refs/heads/agent/y", "afterOid": "abc"}]}),
            ),
            ("addComment", json!({"subjectId": "PR_1", "body": "x"})),
            ("closePullRequest", json!({"pullRequestId": "PR_1"})),
            (
                "markPullRequestReadyForReview",
                json!({"pullRequestId": "PR_1"}),
            ),
        ] {
            assert_eq!(
                verdict(name, input.clone()).as_deref(),
                Ok(ok),
                "{name} {input}"
            );
        }
    }
}
