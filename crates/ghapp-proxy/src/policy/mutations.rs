//! GraphQL mutations: an allow-list, each allowed mutation's arguments read ([`check`]), and
//! decided on the node ids it names ([`decide`]) into what it writes ([`Planned`]): the same
//! descriptions the push and REST channels produce, decided by the same rules
//! ([`super::write`], [`super::mode`]). Pure: the node ids a check needs ([`Check::ids`]) are
//! resolved by the caller through GitHub with the sandbox's token.
//!
//! | mutation | allowed when | writes |
//! |---|---|---|
//! | `createPullRequest` | the repository is the sandbox's, the head a branch it may push | a pull request (the trust mode decides) |
//! | `updatePullRequest`, `closePullRequest`, `reopenPullRequest`, `markPullRequestReadyForReview` | the pull request is one of the sandbox's own | a change of base (`baseRefName`) is measured again; the rest is a plain write |
//! | `mergePullRequest` | the pull request is one of the sandbox's own | a merge (autonomous with `allow_merge` only) |
//! | `addComment` | on a pull request or issue of one of the sandbox's repositories | a plain write |
//! | `createCommitOnBranch` | the branch is one the sandbox may push | a commit made of `fileChanges` on `expectedHeadOid` |
//! | `createRef`, `updateRef`, `updateRefs`, `deleteRef` | the sandbox's repository | ref moves, decided on what they land as a push is |
//!
//! Everything else (auto-merge, settings, reviews, anything not listed) is refused.

use std::collections::HashMap;

use base64::Engine;
use ghapp_gitproto::graphql::Call;
use ghapp_gitproto::repo::RepoName;
use serde_json::Value;

use super::nodes::{Kind, Node};
use super::write::{FileAddition, RefMove, Tip};
use crate::sandbox::Sandbox;

/// The mutations that may pass, checked as the table above says.
pub(crate) const ALLOWED: &[&str] = &[
    "createPullRequest",
    "updatePullRequest",
    "closePullRequest",
    "reopenPullRequest",
    "markPullRequestReadyForReview",
    "mergePullRequest",
    "addComment",
    "createCommitOnBranch",
    "createRef",
    "updateRef",
    "updateRefs",
    "deleteRef",
];

/// The most node ids one request may need resolved (GitHub's `nodes` takes 100).
pub(crate) const MAX_IDS: usize = 50;

/// An allowed mutation, its arguments read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    CreatePull {
        repository: String,
        head_repository: Option<String>,
        head: String,
        base: String,
        title: String,
        body: String,
        draft: bool,
    },
    /// `updatePullRequest` (with the base it moves to, if any), `closePullRequest`,
    /// `reopenPullRequest`, `markPullRequestReadyForReview`, `mergePullRequest`.
    OnPull {
        pull: String,
        base: Option<String>,
        merge: bool,
        /// `markPullRequestReadyForReview`.
        ready: bool,
    },
    Comment {
        subject: String,
    },
    /// `createCommitOnBranch`: the branch by ref id, or by repository and name; the commit
    /// it is made on, and its file changes.
    Commit {
        ref_id: Option<String>,
        named: Option<(String, String)>,
        expected_head: String,
        additions: Vec<FileAddition>,
        deletions: Vec<String>,
        /// The headline and body, as the commit will hold them.
        message: String,
    },
    CreateRef {
        repository: String,
        name: String,
        oid: String,
    },
    /// `updateRef` and `deleteRef`.
    Ref {
        ref_id: String,
        /// `None`: deleted.
        oid: Option<String>,
    },
    UpdateRefs {
        repository: String,
        updates: Vec<RefUpdate>,
    },
}

/// One of `updateRefs`' `refUpdates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefUpdate {
    pub name: String,
    /// `None`: the ref is deleted.
    pub after: Option<String>,
    /// `Some(None)`: it must not exist (a create); `None`: whatever it is now.
    pub before: Option<Option<String>>,
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

/// An object id as GitHub takes it (hex), or why not.
fn oid(v: &Value, key: &str, call: &str) -> Result<String, String> {
    let s = string(v, key, call)?;
    if s.len() < 4 || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{call}: input.{key} is not a git object id"));
    }
    Ok(s.to_ascii_lowercase())
}

/// The mutation that merges, allowed only to a sandbox that may merge.
pub(crate) const MERGE: &str = "mergePullRequest";

/// Reads an allowed mutation's arguments; a mutation not on the list, or without the
/// arguments its check needs, is refused.
pub(crate) fn check(call: &Call) -> Result<Check, String> {
    let name = call.name.as_str();
    if !ALLOWED.contains(&name) {
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
        "createCommitOnBranch" => commit(input)?,
        "createRef" => Check::CreateRef {
            repository: s("repositoryId")?,
            name: s("name")?,
            oid: oid(input, "oid", name)?,
        },
        "updateRef" => Check::Ref {
            ref_id: s("refId")?,
            oid: Some(oid(input, "oid", name)?),
        },
        "deleteRef" => Check::Ref {
            ref_id: s("refId")?,
            oid: None,
        },
        "updateRefs" => {
            let Some(list) = input["refUpdates"].as_array() else {
                return Err("updateRefs needs input.refUpdates".into());
            };
            let updates = list
                .iter()
                .map(|u| {
                    let after = oid(u, "afterOid", name)?;
                    let before = match u.get("beforeOid") {
                        None | Some(Value::Null) => None,
                        Some(_) => {
                            let b = oid(u, "beforeOid", name)?;
                            Some((!is_zero(&b)).then_some(b))
                        }
                    };
                    Ok(RefUpdate {
                        name: string(u, "name", name)?,
                        after: (!is_zero(&after)).then_some(after),
                        before,
                    })
                })
                .collect::<Result<_, String>>()?;
            Check::UpdateRefs {
                repository: s("repositoryId")?,
                updates,
            }
        }
        _ => Check::OnPull {
            pull: s("pullRequestId")?,
            base: (name == "updatePullRequest")
                .then(|| input["baseRefName"].as_str().map(str::to_owned))
                .flatten(),
            merge: name == MERGE,
            ready: name == "markPullRequestReadyForReview",
        },
    })
}

/// `createCommitOnBranch`'s input: the branch, the commit it builds on, the file changes
/// (contents decoded from base64, each path once, as GitHub requires).
fn commit(input: &Value) -> Result<Check, String> {
    const CALL: &str = "createCommitOnBranch";
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
    let changes = &input["fileChanges"];
    let list = |key: &str| -> Result<Vec<Value>, String> {
        match &changes[key] {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => Ok(a.clone()),
            _ => Err(format!("{CALL}: fileChanges.{key} must be a list")),
        }
    };
    let mut seen = std::collections::HashSet::new();
    let mut path = |v: &Value| -> Result<String, String> {
        let p = string(v, "path", CALL)?;
        if p.starts_with('/') || p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(format!("{CALL}: the path {p:?} is not a path in the tree"));
        }
        if !seen.insert(p.clone()) {
            return Err(format!("{CALL}: the path {p:?} is given twice"));
        }
        Ok(p)
    };
    let mut additions = Vec::new();
    for a in list("additions")? {
        let path = path(&a)?;
        let text = a["contents"].as_str().unwrap_or_default();
        let contents = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| format!("{CALL}: the contents of {path} are not base64"))?;
        additions.push(FileAddition { path, contents });
    }
    let deletions = list("deletions")?
        .iter()
        .map(&mut path)
        .collect::<Result<_, String>>()?;
    let message = &input["message"];
    let message = match message["body"].as_str() {
        Some(body) => format!(
            "{}\n\n{body}",
            message["headline"].as_str().unwrap_or_default()
        ),
        None => message["headline"].as_str().unwrap_or_default().to_owned(),
    };
    Ok(Check::Commit {
        message,
        ref_id,
        named,
        expected_head: oid(input, "expectedHeadOid", CALL)?,
        additions,
        deletions,
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
            Check::OnPull { pull: id, .. }
            | Check::Comment { subject: id }
            | Check::CreateRef { repository: id, .. }
            | Check::Ref { ref_id: id, .. }
            | Check::UpdateRefs { repository: id, .. } => vec![id],
            Check::Commit { ref_id, .. } => ref_id.as_deref().into_iter().collect(),
        }
    }
}

/// What an allowed mutation writes, for the rules and the trust mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Planned {
    /// Refs moved onto commits GitHub has: the facts (ancestry, net change, the blobs it
    /// lands) come from the inspection's mirror.
    Refs(Vec<RefMove>),
    /// A commit GitHub makes on `refname` from these changes (on `expected_head`, when the
    /// write names it): its description is whole.
    Commit {
        refname: String,
        expected_head: Option<String>,
        additions: Vec<FileAddition>,
        deletions: Vec<String>,
        message: String,
    },
    CreatePull {
        head: String,
        base: String,
        title: String,
        body: String,
        draft: bool,
    },
    /// A change of pull request `number`'s base to `base` (its head `head`).
    Rebase {
        number: u64,
        head: String,
        base: String,
    },
    Merge,
    /// Pull request `number` marked ready for review.
    Ready {
        number: u64,
    },
    /// Objects with contents and no ref (REST's git blobs and trees): their contents meet the
    /// content rules.
    Blobs(Vec<FileAddition>),
    /// Opens nothing and moves no ref (a comment, a title, closing).
    Other,
}

/// The allowed mutations of one request decided on the resolved `nodes`: the repository whose
/// owner's token carries them and what each writes, or why the request is refused. Every
/// mutation must be for the sandbox's repositories of one owner.
pub(crate) fn decide(
    sb: &Sandbox,
    checks: &[(String, Check)],
    nodes: &HashMap<String, Node>,
) -> Result<(RepoName, Vec<(String, Planned)>), String> {
    let mut target: Option<RepoName> = None;
    let mut planned = Vec::new();
    for (name, c) in checks {
        let (repo, p) = one(sb, name, c, nodes)?;
        match &target {
            Some(t) if !t.owner().eq_ignore_ascii_case(repo.owner()) => {
                return Err(format!(
                    "one GraphQL request may change the repositories of one owner only ({} and {})",
                    t.owner(),
                    repo.owner()
                ));
            }
            Some(t) if *t != repo && matches!(p, Planned::Refs(_) | Planned::Commit { .. }) => {
                return Err(format!(
                    "one GraphQL request may move the refs of one repository only ({t} and {repo})"
                ));
            }
            Some(_) => {}
            None => target = Some(repo),
        }
        planned.push((name.clone(), p));
    }
    match target {
        Some(t) => Ok((t, planned)),
        None => Err("the mutation has no fields".into()),
    }
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
    super::pull_head_branch(sb, repo, head).map_err(|why| {
        format!(
            "{why}: sandbox {} changes only pull requests from its own branches",
            sb.name()
        )
    })
}

/// A ref move with only its names known (the facts come later).
fn moving(refname: &str, old: Option<String>, new: Option<String>) -> RefMove {
    RefMove {
        refname: refname.to_owned(),
        old,
        new: new.map_or(Tip::Deleted, Tip::Commit),
        fast_forward: None,
        changed: Vec::new(),
    }
}

fn one(
    sb: &Sandbox,
    name: &str,
    c: &Check,
    nodes: &HashMap<String, Node>,
) -> Result<(RepoName, Planned), String> {
    const REPO: &[&str] = &["a repository"];
    match c {
        Check::CreatePull {
            repository,
            head_repository,
            head,
            base,
            title,
            body,
            draft,
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
            super::pull_head_branch(sb, &repo, head)?;
            let head = head.rsplit(':').next().unwrap_or_default().to_owned();
            let p = Planned::CreatePull {
                head,
                base: base.clone(),
                title: title.clone(),
                body: body.clone(),
                draft: *draft,
            };
            Ok((repo, p))
        }
        // Only pull requests from the sandbox's own branches (a head it may push, in the same
        // repository) are its to change, close, reopen or merge.
        Check::OnPull {
            pull,
            base,
            merge,
            ready,
        } => {
            let (n, repo) = node(sb, nodes, pull, &["a pull request"])?;
            let Kind::PullRequest(p) = &n.kind else {
                unreachable!("node() checked the kind")
            };
            pull_is_own(sb, &repo, &p.head, p.head_repo.as_ref())?;
            let planned = match (merge, base) {
                (true, _) => Planned::Merge,
                _ if *ready => Planned::Ready { number: p.number },
                (false, Some(b)) if *b != p.base => Planned::Rebase {
                    number: p.number,
                    head: p.head.clone(),
                    base: b.clone(),
                },
                _ => Planned::Other,
            };
            Ok((repo, planned))
        }
        Check::Comment { subject } => Ok((
            node(sb, nodes, subject, &["a pull request", "an issue"])?.1,
            Planned::Other,
        )),
        Check::Commit {
            ref_id,
            named,
            expected_head,
            additions,
            deletions,
            message,
        } => {
            let (repo, refname) = match (ref_id, named) {
                (Some(id), _) => {
                    let (n, repo) = node(sb, nodes, id, &["a ref"])?;
                    let Kind::Ref { name: full, .. } = &n.kind else {
                        unreachable!("node() checked the kind")
                    };
                    (repo, full.clone())
                }
                (None, Some((full_name, branch))) => {
                    let Some(r) = RepoName::parse(full_name) else {
                        return Err(format!("{full_name:?} is not OWNER/REPO"));
                    };
                    (
                        sb.own_repo(r.owner(), r.repo())?,
                        format!("refs/heads/{branch}"),
                    )
                }
                (None, None) => return Err(format!("{name} names no branch")),
            };
            let p = Planned::Commit {
                refname,
                expected_head: Some(expected_head.clone()),
                additions: additions.clone(),
                deletions: deletions.clone(),
                message: message.clone(),
            };
            Ok((repo, p))
        }
        Check::CreateRef {
            repository,
            name: refname,
            oid,
        } => {
            let (_, repo) = node(sb, nodes, repository, REPO)?;
            let m = moving(refname, None, Some(oid.clone()));
            Ok((repo, Planned::Refs(vec![m])))
        }
        Check::Ref { ref_id, oid } => {
            let (n, repo) = node(sb, nodes, ref_id, &["a ref"])?;
            let Kind::Ref {
                name: full,
                oid: now,
            } = &n.kind
            else {
                unreachable!("node() checked the kind")
            };
            let m = moving(full, Some(now.clone()), oid.clone());
            Ok((repo, Planned::Refs(vec![m])))
        }
        Check::UpdateRefs {
            repository,
            updates,
        } => {
            let (_, repo) = node(sb, nodes, repository, REPO)?;
            let mut moves: Vec<RefMove> = Vec::new();
            for u in updates {
                if moves.iter().any(|m| m.refname == u.name) {
                    return Err(format!("updateRefs names {} twice", u.name));
                }
                // The old value: what the update says it must be, else what the mirror has.
                let old = u.before.clone().flatten();
                let mut m = moving(&u.name, old, u.after.clone());
                if u.before.is_none() {
                    m.old = Some(String::new());
                }
                moves.push(m);
            }
            Ok((repo, Planned::Refs(moves)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::nodes::read_nodes;
    use crate::policy::write;
    use crate::sandbox::tests::sandbox;
    use serde_json::json;

    fn nodes() -> HashMap<String, Node> {
        let answer = json!({"data": {"nodes": [
            {"__typename": "Repository", "nameWithOwner": "octo-org/widgets"},
            {"__typename": "Repository", "nameWithOwner": "octo-org/gadgets"},
            {"__typename": "PullRequest", "number": 1, "repository": {"nameWithOwner": "octo-org/widgets"}, "baseRefName": "main", "headRefName": "agent/x", "headRepository": {"nameWithOwner": "octo-org/widgets"}},
            {"__typename": "Ref", "prefix": "refs/heads/", "name": "main", "target": {"oid": "aaaa"}, "repository": {"nameWithOwner": "octo-org/widgets"}},
            {"__typename": "Ref", "prefix": "refs/heads/", "name": "agent/x", "target": {"oid": "bbbb"}, "repository": {"nameWithOwner": "octo-org/widgets"}},
            {"__typename": "User"},
            null,
            {"__typename": "PullRequest", "number": 2, "repository": {"nameWithOwner": "octo-org/widgets"}, "baseRefName": "main", "headRefName": "feature", "headRepository": {"nameWithOwner": "octo-org/widgets"}},
            {"__typename": "PullRequest", "number": 3, "repository": {"nameWithOwner": "octo-org/widgets"}, "baseRefName": "main", "headRefName": "agent/x", "headRepository": {"nameWithOwner": "someone/widgets"}},
        ]}});
        let ids: Vec<String> = [
            "R_w", "R_g", "PR_1", "REF_main", "REF_x", "U_1", "R_gone", "PR_human", "PR_fork",
        ]
        .map(str::to_owned)
        .into();
        read_nodes(&ids, &answer)
    }

    fn call(name: &str, input: Value) -> Call {
        Call {
            name: name.into(),
            arguments: [("input".to_owned(), input)].into_iter().collect(),
        }
    }

    fn planned(name: &str, input: Value) -> Result<(RepoName, Planned), String> {
        let c = check(&call(name, input))?;
        decide(&sandbox(), &[(name.to_owned(), c)], &nodes()).map(|(r, mut p)| (r, p.remove(0).1))
    }

    /// The repository, once the ref names of what the mutation moves pass the push rule.
    fn verdict(name: &str, input: Value) -> Result<String, String> {
        let (repo, p) = planned(name, input)?;
        let refs = match p {
            Planned::Refs(r) => r,
            Planned::Commit { refname, .. } => vec![moving(&refname, None, Some("1".into()))],
            _ => Vec::new(),
        };
        let w = write::Write {
            refs,
            ..write::Write::default()
        };
        write::decide(&sandbox(), &w).map_err(|r| r.why())?;
        Ok(repo.to_string())
    }

    #[test]
    fn merging_is_planned_only_for_its_own_pull_requests() {
        assert_eq!(
            planned(MERGE, json!({"pullRequestId": "PR_1"})).map(|(_, p)| p),
            Ok(Planned::Merge)
        );
        assert!(
            planned(MERGE, json!({"pullRequestId": "PR_human"}))
                .unwrap_err()
                .contains("its own branches")
        );
        assert!(planned(MERGE, json!({"pullRequestId": "PR_fork"})).is_err());
    }

    #[test]
    fn what_each_mutation_writes() {
        let (_, p) = planned(
            "updatePullRequest",
            json!({"pullRequestId": "PR_1", "baseRefName": "release"}),
        )
        .unwrap();
        assert_eq!(
            p,
            Planned::Rebase {
                number: 1,
                head: "agent/x".into(),
                base: "release".into()
            }
        );
        let (_, p) = planned(
            "updatePullRequest",
            json!({"pullRequestId": "PR_1", "baseRefName": "main", "title": "t"}),
        )
        .unwrap();
        assert_eq!(p, Planned::Other, "the same base is no change");
        let (_, p) = planned(
            "updateRef",
            json!({"refId": "REF_x", "oid": "cccc", "force": true}),
        )
        .unwrap();
        assert_eq!(
            p,
            Planned::Refs(vec![moving(
                "refs/heads/agent/x",
                Some("bbbb".into()),
                Some("cccc".into())
            )])
        );
        let (_, p) = planned(
            "createCommitOnBranch",
            json!({"branch": {"id": "REF_x"}, "expectedHeadOid": "bbbb",
                   "message": {"headline": "h"},
                   "fileChanges": {"additions": [{"path": "a/b.txt", "contents": "aGk="}], "deletions": [{"path": "c"}]}}),
        )
        .unwrap();
        assert_eq!(
            p,
            Planned::Commit {
                refname: "refs/heads/agent/x".into(),
                expected_head: Some("bbbb".into()),
                additions: vec![FileAddition {
                    path: "a/b.txt".into(),
                    contents: b"hi".to_vec()
                }],
                deletions: vec!["c".into()],
                message: "h".into(),
            }
        );
        for (bad, why) in [
            (
                json!({"additions": [{"path": "a", "contents": "!!"}]}),
                "not base64",
            ),
            (
                json!({"additions": [{"path": "a", "contents": ""}], "deletions": [{"path": "a"}]}),
                "given twice",
            ),
            (json!({"deletions": [{"path": "../x"}]}), "not a path"),
        ] {
            let got = planned(
                "createCommitOnBranch",
                json!({"branch": {"id": "REF_x"}, "expectedHeadOid": "bbbb", "fileChanges": bad}),
            )
            .unwrap_err();
            assert!(got.contains(why), "{got}");
        }
        let (_, p) = planned(
            "updateRefs",
            json!({"repositoryId": "R_w", "refUpdates": [
                {"name": "refs/heads/agent/y", "afterOid": "dddd", "beforeOid": "0000000000000000000000000000000000000000"},
                {"name": "refs/heads/agent/x", "afterOid": "0000000000000000000000000000000000000000"}
            ]}),
        )
        .unwrap();
        let Planned::Refs(m) = p else { panic!() };
        assert_eq!(
            (m[0].old.clone(), m[0].new.clone()),
            (None, Tip::Commit("dddd".into()))
        );
        assert!(m[1].is_delete());
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
                json!({"branch": {"id": "REF_main"}, "expectedHeadOid": "abcd"}),
                "refs/heads/main: pushes allowed only to refs/heads/agent/*",
            ),
            (
                "createCommitOnBranch",
                json!({"branch": {"repositoryNameWithOwner": "octo-org/widgets", "branchName": "main"}, "expectedHeadOid": "abcd"}),
                "refs/heads/main",
            ),
            (
                "createCommitOnBranch",
                json!({"branch": {"repositoryNameWithOwner": "octo-org/gadgets", "branchName": "agent/x"}, "expectedHeadOid": "abcd"}),
                "not among",
            ),
            (
                "createCommitOnBranch",
                json!({"branch": {}}),
                "needs input.branch",
            ),
            (
                "updateRef",
                json!({"refId": "REF_main", "oid": "abcd"}),
                "refs/heads/main",
            ),
            (
                "deleteRef",
                json!({"refId": "REF_x"}),
                "deleting refs is not allowed",
            ),
            (
                "createRef",
                json!({"repositoryId": "R_w", "name": "refs/heads/main", "oid": "abcd"}),
                "refs/heads/main",
            ),
            (
                "createRef",
                json!({"repositoryId": "R_w", "name": "refs/heads/agent/../main", "oid": "abcd"}),
                "not a valid ref name",
            ),
            (
                "updateRefs",
                json!({"repositoryId": "R_w", "refUpdates": [{"name": "refs/heads/agent/y", "afterOid": "abcd"}, {"name": "refs/heads/main", "afterOid": "abcd"}]}),
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
            (
                "createCommitOnBranch",
                json!({"branch": {"id": "REF_x"}, "expectedHeadOid": "abcd"}),
            ),
            (
                "createCommitOnBranch",
                json!({"branch": {"repositoryNameWithOwner": "octo-org/widgets", "branchName": "agent/y"}, "expectedHeadOid": "abcd"}),
            ),
            ("updateRef", json!({"refId": "REF_x", "oid": "abcd"})),
            (
                "createRef",
                json!({"repositoryId": "R_w", "name": "refs/heads/agent/y", "oid": "abcd"}),
            ),
            (
                "updateRefs",
                json!({"repositoryId": "R_w", "refUpdates": [{"name": "refs/heads/agent/y", "afterOid": "abcd"}]}),
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
