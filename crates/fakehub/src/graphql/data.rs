//! What fakehub's GraphQL API knows: the fields with arguments (`Query.repository`,
//! `Repository.pullRequests`, `node`, …), the objects (repositories, pull requests, refs,
//! comments, actors) and the mutations. Objects are JSON carrying `__typename`; keys that start
//! with `__` are fakehub's own (no schema field starts so, so no query can select them).

use base64::Engine;
use serde_json::{Map, Value, json};

use super::{Cx, Error, message};
use crate::hub::{Repo, level_covers};
use crate::pulls::{self, Comment, Pull};

const ZERO: &str = "0000000000000000000000000000000000000000";

/// A connection of `ty` (`PullRequestConnection`) over `nodes`, all on one page.
pub(crate) fn connection(ty: &str, nodes: Vec<Value>) -> Value {
    let edge = ty.strip_suffix("Connection").map(|b| format!("{b}Edge"));
    let edges: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"__typename": edge, "cursor": format!("Y3Vyc29yOnYyOpHO{i}"), "node": n}))
        .collect();
    json!({
        "__typename": ty,
        "totalCount": nodes.len(),
        "nodes": nodes,
        "edges": edges,
        "pageInfo": {"__typename": "PageInfo", "hasNextPage": false, "hasPreviousPage": false, "startCursor": null, "endCursor": null},
    })
}

fn not_found(what: &str, id: &str) -> Error {
    json!({"type": "NOT_FOUND", "message": format!("Could not resolve to {what} with the global id of '{id}'.")})
}

fn forbidden() -> Error {
    json!({"type": "FORBIDDEN", "message": "Resource not accessible by integration"})
}

fn forbidden_with(m: String) -> Error {
    json!({"type": "FORBIDDEN", "message": m})
}

fn unprocessable(m: String) -> Error {
    json!({"type": "UNPROCESSABLE", "message": m})
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    let b: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(b?).ok()
}

/// What a node id names.
enum Node {
    Repository(Repo),
    PullRequest(Repo, u64),
    Ref(Repo, String),
    Comment(Repo, u64, u64),
}

impl Cx<'_> {
    /// A field whose value is computed (it takes arguments, or reaches other objects), or
    /// `None` for one read from the object itself.
    pub(super) fn field(
        &self,
        ty: &str,
        obj: &Value,
        name: &str,
        args: &Map<String, Value>,
    ) -> Result<Option<Value>, Error> {
        let arg = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default();
        Ok(Some(match (ty, name) {
            ("Mutation", m) => self.mutate(m, args.get("input").unwrap_or(&Value::Null))?,
            ("Query", "viewer") => {
                json!({"__typename": "User", "login": pulls::actor(self.hub, self.token), "id": "U_kgDOfakehub"})
            }
            ("Query", "repository") => {
                let (owner, repo) = (arg("owner"), arg("name"));
                match self.reach(self.hub.find_repo(owner, repo)) {
                    Some(r) => self.repository(&r),
                    None => {
                        return Err(json!({
                            "type": "NOT_FOUND",
                            "path": ["repository"],
                            "message": format!("Could not resolve to a Repository with the name '{owner}/{repo}'."),
                        }));
                    }
                }
            }
            ("Query", "node") => {
                let id = arg("id");
                let node = self.node(id).ok_or_else(|| not_found("a node", id))?;
                self.object(&node)
            }
            ("Query", "nodes") => Value::Array(
                args.get("ids")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|id| {
                        id.as_str()
                            .and_then(|id| self.node(id))
                            .map_or(Value::Null, |n| self.object(&n))
                    })
                    .collect(),
            ),
            ("Query", "search") => self.search(args),
            ("Repository", "pullRequests") => {
                let r = self.repo_of(obj)?;
                self.pull_requests(&r, args)
            }
            ("Repository", "pullRequest") => {
                let r = self.repo_of(obj)?;
                let n = args.get("number").and_then(Value::as_u64).unwrap_or(0);
                match self.pull(&r, n) {
                    Some(p) => self.pull_request(&p, &r),
                    None => {
                        return Err(
                            json!({"type": "NOT_FOUND", "message": format!("Could not resolve to a PullRequest with the number of {n}.")}),
                        );
                    }
                }
            }
            ("Repository", "ref") => {
                let r = self.repo_of(obj)?;
                let q = arg("qualifiedName");
                let full = if q.starts_with("refs/") {
                    q.to_owned()
                } else {
                    format!("refs/heads/{q}")
                };
                self.git_ref(&r, &full).unwrap_or(Value::Null)
            }
            ("PullRequest" | "Ref", "repository" | "headRepository" | "baseRepository") => {
                self.repository(&self.repo_of(obj)?)
            }
            ("PullRequest", "commits") => {
                // The head commit (fakehub does not walk the pull request's history).
                let oid = obj["headRefOid"].as_str().unwrap_or_default();
                let commit = json!({
                    "__typename": "PullRequestCommit",
                    "id": format!("PURC_kwDO{oid}"),
                    "url": format!("{}/commits/{oid}", obj["url"].as_str().unwrap_or_default()),
                    "commit": {
                        "__typename": "Commit",
                        "id": format!("C_kwDO{oid}"),
                        "oid": oid,
                        "abbreviatedOid": &oid[..7.min(oid.len())],
                        "statusCheckRollup": null,
                    },
                });
                connection("PullRequestCommitConnection", vec![commit])
            }
            ("PullRequest", "comments") => {
                let r = self.repo_of(obj)?;
                let n = obj["number"].as_u64().unwrap_or(0);
                let p = self
                    .pull(&r, n)
                    .ok_or_else(|| message("the pull request is gone"))?;
                let nodes = p.comments.iter().map(|c| self.comment(c, &p, &r)).collect();
                connection("IssueCommentConnection", nodes)
            }
            _ => return Ok(None),
        }))
    }

    /// `Query.search`: GitHub's search syntax over the pull requests of the repositories the
    /// token reaches (fakehub has no issues), for `type: ISSUE`; other types find nothing.
    /// Qualifiers: `repo:`, `is:pr|issue|open|closed|merged|draft`, `state:`, `author:` (a
    /// login, `app/SLUG`, `@me`), `head:`, `base:`, `review-requested:` (fakehub requests no
    /// reviews); other words must appear in the title or body.
    fn search(&self, args: &Map<String, Value>) -> Value {
        let query = args
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let first = args.get("first").and_then(Value::as_u64).unwrap_or(10) as usize;
        let issues = args.get("type").and_then(Value::as_str) == Some("ISSUE");
        let me = pulls::actor(self.hub, self.token);
        let who = |v: &str| -> String {
            match v {
                "@me" => me.clone(),
                v => match v.strip_prefix("app/") {
                    Some(slug) => format!("{slug}[bot]"),
                    None => v.to_owned(),
                },
            }
        };
        let all = self
            .hub
            .pulls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut found: Vec<(Repo, Pull)> = Vec::new();
        'pulls: for p in all.into_iter().rev() {
            let Some(r) = self.reach(self.hub.find_repo(&p.owner, &p.repo)) else {
                continue;
            };
            for term in query.split_whitespace() {
                let ok = match term.split_once(':') {
                    Some(("repo", v)) => v.eq_ignore_ascii_case(&format!("{}/{}", p.owner, p.repo)),
                    Some(("is" | "type", "pr" | "pull-request")) => true,
                    Some(("is" | "type", "issue")) => false,
                    Some(("is" | "state", st @ ("open" | "closed"))) => p.state == st,
                    Some(("is", "merged")) => p.merge_commit_sha.is_some(),
                    Some(("is", "draft")) | Some(("draft", "true")) => p.draft,
                    Some(("author", v)) => p.author.eq_ignore_ascii_case(&who(v)),
                    Some(("head", v)) => p.head == v,
                    Some(("base", v)) => p.base == v,
                    Some(("review-requested" | "reviewed-by" | "assignee" | "mentions", _)) => {
                        false
                    }
                    _ => {
                        let t = term.to_ascii_lowercase();
                        p.title.to_ascii_lowercase().contains(&t)
                            || p.body
                                .as_deref()
                                .is_some_and(|b| b.to_ascii_lowercase().contains(&t))
                    }
                };
                if !ok {
                    continue 'pulls;
                }
            }
            found.push((r, p));
        }
        if !issues {
            found.clear();
        }
        let count = found.len();
        let nodes: Vec<Value> = found
            .iter()
            .take(first)
            .map(|(r, p)| self.pull_request(p, r))
            .collect();
        let mut c = connection("SearchResultItemConnection", nodes);
        for k in [
            "issueCount",
            "repositoryCount",
            "userCount",
            "wikiCount",
            "codeCount",
            "discussionCount",
        ] {
            c[k] = json!(if k == "issueCount" { count } else { 0 });
        }
        c["pageInfo"]["hasNextPage"] = json!(count > first);
        c
    }

    /// `r`, if the token reaches it.
    fn reach(&self, r: Option<Repo>) -> Option<Repo> {
        r.filter(|r| self.hub.token_covers(self.token, &r.owner, &r.name))
    }

    fn repo_by_id(&self, id: u64) -> Option<Repo> {
        let found = {
            let repos = self.hub.repos.lock().unwrap_or_else(|e| e.into_inner());
            repos.iter().find(|r| r.id == id).cloned()
        };
        self.reach(found)
    }

    /// The repository an object belongs to (its `__repo`).
    fn repo_of(&self, obj: &Value) -> Result<Repo, Error> {
        let full = obj["__repo"].as_str().unwrap_or_default();
        let (o, n) = full.split_once('/').unwrap_or_default();
        self.reach(self.hub.find_repo(o, n))
            .ok_or_else(|| message(format!("fakehub lost the repository {full}")))
    }

    fn pull(&self, r: &Repo, n: u64) -> Option<Pull> {
        let pulls = self.hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
        pulls.iter().find(|p| p.number == n && p.is(r)).cloned()
    }

    /// What `id` names, if it exists and the token reaches it.
    fn node(&self, id: &str) -> Option<Node> {
        let (kind, rest) = id.split_once("_kwDO").or_else(|| id.split_once("_kgDO"))?;
        let (repo, tail) = rest.split_once('_').unwrap_or((rest, ""));
        let r = self.repo_by_id(repo.parse().ok()?)?;
        match kind {
            "R" if tail.is_empty() => Some(Node::Repository(r)),
            "PR" => {
                let n = tail.parse().ok()?;
                self.pull(&r, n)?;
                Some(Node::PullRequest(r, n))
            }
            "REF" => {
                let full = unhex(tail)?;
                pulls::git(self.hub, &r, &["rev-parse", "--verify", "--quiet", &full]).ok()?;
                Some(Node::Ref(r, full))
            }
            "IC" => {
                let (n, c) = tail.split_once('_')?;
                let (n, c) = (n.parse().ok()?, c.parse().ok()?);
                self.pull(&r, n)?.comments.iter().find(|x| x.id == c)?;
                Some(Node::Comment(r, n, c))
            }
            _ => None,
        }
    }

    fn object(&self, node: &Node) -> Value {
        match node {
            Node::Repository(r) => self.repository(r),
            Node::PullRequest(r, n) => self
                .pull(r, *n)
                .map_or(Value::Null, |p| self.pull_request(&p, r)),
            Node::Ref(r, full) => self.git_ref(r, full).unwrap_or(Value::Null),
            Node::Comment(r, n, c) => self
                .pull(r, *n)
                .and_then(|p| {
                    p.comments
                        .iter()
                        .find(|x| x.id == *c)
                        .map(|x| self.comment(x, &p, r))
                })
                .unwrap_or(Value::Null),
        }
    }

    fn owner(&self, login: &str) -> Value {
        let (_, kind) = self.hub.account(login);
        json!({
            "__typename": if kind == "Organization" { "Organization" } else { "User" },
            "login": login,
            "id": format!("O_kgDO{}", hex(login)),
            "url": format!("{}/{login}", self.hub.base_url),
        })
    }

    fn actor(&self, login: &str) -> Value {
        match login.strip_suffix("[bot]") {
            Some(slug) => {
                json!({"__typename": "Bot", "login": slug, "id": format!("BOT_kgDO{}", hex(slug)), "url": format!("{}/apps/{slug}", self.hub.base_url)})
            }
            None => {
                json!({"__typename": "User", "login": login, "id": format!("U_kgDO{}", hex(login)), "name": null, "url": format!("{}/{login}", self.hub.base_url)})
            }
        }
    }

    fn repository(&self, r: &Repo) -> Value {
        let full = format!("{}/{}", r.owner, r.name);
        let url = format!("{}/{full}", self.hub.base_url);
        json!({
            "__typename": "Repository",
            "__repo": full,
            "id": format!("R_kgDO{}", r.id),
            "databaseId": r.id,
            "name": r.name,
            "nameWithOwner": full,
            "owner": self.owner(&r.owner),
            "url": url,
            "sshUrl": format!("git@{}:{full}.git", self.hub.base_url.trim_start_matches("https://")),
            "isPrivate": true,
            "visibility": "PRIVATE",
            "description": null,
            "homepageUrl": null,
            "defaultBranchRef": self.git_ref(r, &format!("refs/heads/{}", r.default_branch)),
            "isFork": false,
            "isArchived": false,
            "isEmpty": false,
            "isMirror": false,
            "isTemplate": false,
            "isInOrganization": self.owner(&r.owner)["__typename"] == "Organization",
            "hasIssuesEnabled": true,
            "hasWikiEnabled": false,
            "hasProjectsEnabled": false,
            "hasDiscussionsEnabled": false,
            "mergeCommitAllowed": true,
            "squashMergeAllowed": true,
            "rebaseMergeAllowed": true,
            "deleteBranchOnMerge": false,
            "viewerPermission": "WRITE",
            "stargazerCount": 0,
            "forkCount": 0,
            "watchers": connection("UserConnection", Vec::new()),
            "createdAt": crate::json::CREATED,
            "updatedAt": crate::json::CREATED,
            "pushedAt": crate::json::CREATED,
        })
    }

    /// The ref `full` of `r`, if it exists.
    fn git_ref(&self, r: &Repo, full: &str) -> Option<Value> {
        let oid = pulls::git(
            self.hub,
            r,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{full}^{{commit}}"),
            ],
        )
        .ok()?;
        let (prefix, name) = match full.strip_prefix("refs/heads/") {
            Some(n) => ("refs/heads/", n),
            None => match full.strip_prefix("refs/tags/") {
                Some(n) => ("refs/tags/", n),
                None => ("refs/", full.trim_start_matches("refs/")),
            },
        };
        Some(json!({
            "__typename": "Ref",
            "__repo": format!("{}/{}", r.owner, r.name),
            "id": format!("REF_kwDO{}_{}", r.id, hex(full)),
            "name": name,
            "prefix": prefix,
            "target": {"__typename": "Commit", "oid": oid, "id": format!("C_kwDO{oid}"), "abbreviatedOid": &oid[..7.min(oid.len())]},
        }))
    }

    fn pull_request(&self, p: &Pull, r: &Repo) -> Value {
        let url = format!(
            "{}/{}/{}/pull/{}",
            self.hub.base_url, r.owner, r.name, p.number
        );
        let state = p.state.to_ascii_uppercase();
        json!({
            "__typename": "PullRequest",
            "__repo": format!("{}/{}", r.owner, r.name),
            "id": pulls::node_id(r.id, p.number),
            "databaseId": 8000 + p.number,
            "number": p.number,
            "title": p.title,
            "body": p.body.clone().unwrap_or_default(),
            "url": url,
            "permalink": url,
            "resourcePath": format!("/{}/{}/pull/{}", r.owner, r.name, p.number),
            "state": state,
            "closed": state != "OPEN",
            "merged": p.merge_commit_sha.is_some(),
            "isDraft": p.draft,
            "locked": false,
            "headRefName": p.head,
            "baseRefName": p.base,
            "headRefOid": p.head_sha,
            "baseRefOid": p.base_sha,
            "headRepositoryOwner": self.owner(&r.owner),
            "isCrossRepository": false,
            "maintainerCanModify": false,
            "author": self.actor(&p.author),
            "createdAt": crate::json::CREATED,
            "updatedAt": crate::json::CREATED,
            "closedAt": null,
            "mergedAt": null,
            "additions": 1,
            "deletions": 0,
            "changedFiles": 1,
            "mergeable": "MERGEABLE",
            "mergeStateStatus": "CLEAN",
            "reviewDecision": null,
            "viewerDidAuthor": true,
            "authorAssociation": "NONE",
            "bodyText": p.body.clone().unwrap_or_default(),
            "canBeRebased": true,
            "createdViaEmail": false,
            "includesCreatedEdit": false,
            "isInMergeQueue": false,
            "isMergeQueueEnabled": false,
            "checksUrl": format!("{url}/checks"),
            "checksResourcePath": format!("/{}/{}/pull/{}/checks", r.owner, r.name, p.number),
            "viewerCanClose": true,
            "viewerCanReopen": true,
            "viewerCanUpdate": true,
            "viewerCanReact": true,
            "viewerCanSubscribe": false,
            "viewerCanLabel": false,
            "viewerCanApplySuggestion": false,
            "viewerCanDeleteHeadRef": true,
            "viewerCanEditFiles": true,
            "viewerCanEnableAutoMerge": false,
            "viewerCanDisableAutoMerge": false,
            "viewerCanMergeAsAdmin": false,
            "viewerCanUpdateBranch": false,
            "viewerMergeBodyText": "",
            "viewerMergeHeadlineText": format!("Merge pull request #{} from {}/{}", p.number, r.owner, p.head),
        })
    }

    fn comment(&self, c: &Comment, p: &Pull, r: &Repo) -> Value {
        json!({
            "__typename": "IssueComment",
            "__repo": format!("{}/{}", r.owner, r.name),
            "id": format!("IC_kwDO{}_{}_{}", r.id, p.number, c.id),
            "databaseId": c.id,
            "body": c.body,
            "url": format!("{}/{}/{}/pull/{}#issuecomment-{}", self.hub.base_url, r.owner, r.name, p.number, c.id),
            "author": self.actor(&c.author),
            "authorAssociation": "NONE",
            "createdAt": crate::json::CREATED,
            "includesCreatedEdit": false,
            "isMinimized": false,
            "minimizedReason": null,
            "viewerDidAuthor": true,
            "reactionGroups": [],
        })
    }

    fn pull_requests(&self, r: &Repo, args: &Map<String, Value>) -> Value {
        let states: Vec<String> = args
            .get("states")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    .collect()
            })
            .unwrap_or_default();
        let head = args.get("headRefName").and_then(Value::as_str);
        let base = args.get("baseRefName").and_then(Value::as_str);
        let pulls = self
            .hub
            .pulls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut nodes: Vec<&Pull> = pulls
            .iter()
            .filter(|p| p.is(r))
            .filter(|p| states.is_empty() || states.contains(&p.state))
            .filter(|p| head.is_none_or(|h| h == p.head))
            .filter(|p| base.is_none_or(|b| b == p.base))
            .collect();
        if args["orderBy"]["direction"] == "DESC" {
            nodes.reverse();
        }
        if let Some(n) = args.get("first").and_then(Value::as_u64) {
            nodes.truncate(n as usize);
        }
        let nodes = nodes
            .iter()
            .map(|p| self.pull_request(p, r))
            .collect::<Vec<_>>();
        let mut c = connection("PullRequestConnection", nodes);
        c["totalCount"] = json!(
            pulls
                .iter()
                .filter(|p| p.is(r))
                .filter(|p| states.is_empty() || states.contains(&p.state))
                .count()
        );
        c
    }

    /// Whether the token may write `permission`.
    fn need(&self, permission: &str) -> Result<(), Error> {
        let granted = self
            .token
            .permissions
            .get(permission)
            .map_or("", String::as_str);
        if level_covers(granted, "write") {
            Ok(())
        } else {
            Err(forbidden())
        }
    }

    fn mutate(&self, name: &str, input: &Value) -> Result<Value, Error> {
        let id = |k: &str| input[k].as_str().unwrap_or_default().to_owned();
        let cmid = input["clientMutationId"].clone();
        let payload = match name {
            "createPullRequest" => {
                let Some(Node::Repository(r)) = self.node(&id("repositoryId")) else {
                    return Err(not_found("a Repository", &id("repositoryId")));
                };
                self.need("pull_requests")?;
                let o = pulls::Open {
                    title: input["title"].as_str(),
                    head: input["headRefName"].as_str(),
                    base: input["baseRefName"].as_str(),
                    body: input["body"].as_str(),
                    draft: input["draft"].as_bool().unwrap_or(false),
                };
                let p = pulls::open(self.hub, self.token, &r, &o)
                    .map_err(|e| unprocessable(e.message()))?;
                json!({"pullRequest": self.pull_request(&p, &r)})
            }
            "addComment" => {
                let body = input["body"].as_str().unwrap_or_default().to_owned();
                if body.trim().is_empty() {
                    return Err(unprocessable("Body can't be blank".into()));
                }
                let c = Comment {
                    id: pulls::next_comment_id(),
                    body,
                    author: pulls::actor(self.hub, self.token),
                };
                let (p, r) = self.change_pull(&id("subjectId"), |p| {
                    p.comments.push(c.clone());
                    Ok(())
                })?;
                json!({
                    "commentEdge": {"__typename": "IssueCommentEdge", "cursor": "Y3Vyc29yOnYyOpHO0", "node": self.comment(&c, &p, &r)},
                    "subject": self.pull_request(&p, &r),
                    "timelineEdge": null,
                })
            }
            "updatePullRequest" => {
                let (p, r) = self.change_pull(&id("pullRequestId"), |p| {
                    if let Some(t) = input["title"].as_str() {
                        p.title = t.to_owned();
                    }
                    if let Some(b) = input["body"].as_str() {
                        p.body = Some(b.to_owned());
                    }
                    if let Some(b) = input["baseRefName"].as_str() {
                        p.base = b.to_owned();
                    }
                    if let Some(s) = input["state"].as_str() {
                        p.state = s.to_ascii_lowercase();
                    }
                    Ok(())
                })?;
                json!({"pullRequest": self.pull_request(&p, &r)})
            }
            "closePullRequest" | "reopenPullRequest" | "markPullRequestReadyForReview" => {
                let (p, r) = self.change_pull(&id("pullRequestId"), |p| {
                    match name {
                        "closePullRequest" => p.state = "closed".into(),
                        "reopenPullRequest" => p.state = "open".into(),
                        _ => p.draft = false,
                    }
                    Ok(())
                })?;
                json!({"pullRequest": self.pull_request(&p, &r)})
            }
            "createCommitOnBranch" => self.commit_on_branch(input)?,
            "updateRefs" => {
                let Some(Node::Repository(r)) = self.node(&id("repositoryId")) else {
                    return Err(not_found("a Repository", &id("repositoryId")));
                };
                self.need("contents")?;
                let updates = input["refUpdates"].as_array().cloned().unwrap_or_default();
                // Checked whole first, then applied in one transaction, as GitHub does.
                let mut lines = String::from("start\n");
                for u in &updates {
                    let full = u["name"].as_str().unwrap_or_default();
                    let after = u["afterOid"].as_str().unwrap_or_default();
                    pulls::git(self.hub, &r, &["check-ref-format", full]).map_err(|_| {
                        unprocessable(format!("Reference name {full:?} is not valid"))
                    })?;
                    let now = pulls::git(
                        self.hub,
                        &r,
                        &[
                            "rev-parse",
                            "--verify",
                            "--quiet",
                            &format!("{full}^{{commit}}"),
                        ],
                    )
                    .ok();
                    if let Some(before) = u["beforeOid"].as_str() {
                        let want = (before.bytes().any(|b| b != b'0')).then_some(before);
                        if now.as_deref() != want {
                            return Err(unprocessable(format!("{full} is not at {before}")));
                        }
                    }
                    let delete = after.bytes().all(|b| b == b'0');
                    if !delete {
                        if let Some(now) = &now
                            && u["force"] != true
                            && pulls::git(
                                self.hub,
                                &r,
                                &["merge-base", "--is-ancestor", now, after],
                            )
                            .is_err()
                        {
                            return Err(unprocessable(format!(
                                "Update of {full} is not a fast forward"
                            )));
                        }
                        self.workflows_allowed(&r, now.as_deref(), after)?;
                        lines.push_str(&format!("update {full} {after}\n"));
                    } else {
                        lines.push_str(&format!("delete {full}\n"));
                    }
                }
                lines.push_str("commit\n");
                pulls::git_stdin(self.hub, &r, &["update-ref", "--stdin"], lines.as_bytes())
                    .map_err(unprocessable)?;
                json!({})
            }
            "createRef" => {
                let Some(Node::Repository(r)) = self.node(&id("repositoryId")) else {
                    return Err(not_found("a Repository", &id("repositoryId")));
                };
                self.need("contents")?;
                let full = id("name");
                pulls::git(self.hub, &r, &["check-ref-format", &full])
                    .map_err(|_| unprocessable(format!("Reference name {full:?} is not valid")))?;
                self.workflows_allowed(&r, None, &id("oid"))?;
                pulls::git(self.hub, &r, &["update-ref", &full, &id("oid"), ZERO]).map_err(
                    |_| {
                        unprocessable(format!(
                            "Reference {full} already exists or the object does not"
                        ))
                    },
                )?;
                json!({"ref": self.git_ref(&r, &full)})
            }
            "updateRef" | "deleteRef" => {
                let Some(Node::Ref(r, full)) = self.node(&id("refId")) else {
                    return Err(not_found("a Ref", &id("refId")));
                };
                self.need("contents")?;
                if name == "deleteRef" {
                    pulls::git(self.hub, &r, &["update-ref", "-d", &full])
                        .map_err(unprocessable)?;
                    json!({})
                } else {
                    let new = id("oid");
                    if input["force"] != true
                        && pulls::git(self.hub, &r, &["merge-base", "--is-ancestor", &full, &new])
                            .is_err()
                    {
                        return Err(unprocessable("Update is not a fast forward".into()));
                    }
                    let old = pulls::git(self.hub, &r, &["rev-parse", &full]).ok();
                    self.workflows_allowed(&r, old.as_deref(), &new)?;
                    pulls::git(self.hub, &r, &["update-ref", &full, &new])
                        .map_err(unprocessable)?;
                    json!({"ref": self.git_ref(&r, &full)})
                }
            }
            other => {
                return Err(message(format!(
                    "fakehub does not emulate the mutation {other}"
                )));
            }
        };
        let mut payload = payload;
        payload["clientMutationId"] = cmid;
        Ok(payload)
    }

    /// GitHub's rule on workflow files for app tokens without `workflows: write`, for a ref
    /// moved from `old` to `new` through the API as for a push.
    fn workflows_allowed(&self, r: &Repo, old: Option<&str>, new: &str) -> Result<(), Error> {
        let granted = self
            .token
            .permissions
            .get("workflows")
            .map_or("", String::as_str);
        if level_covers(granted, "write") {
            return Ok(());
        }
        match pulls::workflow_change(self.hub, r, old, new) {
            Some(f) => Err(forbidden_with(format!(
                "refusing to allow a GitHub App to create or update workflow `{f}` without `workflows` permission"
            ))),
            None => Ok(()),
        }
    }

    /// `createCommitOnBranch`: a commit of `fileChanges` on the branch, which must be at
    /// `expectedHeadOid`; the branch moved to it.
    fn commit_on_branch(&self, input: &Value) -> Result<Value, Error> {
        let b = &input["branch"];
        let (r, full) = match (
            b["id"].as_str(),
            b["repositoryNameWithOwner"].as_str(),
            b["branchName"].as_str(),
        ) {
            (Some(id), None, None) => match self.node(id) {
                Some(Node::Ref(r, full)) => (r, full),
                _ => return Err(not_found("a Ref", id)),
            },
            (None, Some(nwo), Some(name)) => {
                let (o, n) = nwo.split_once('/').unwrap_or_default();
                let Some(r) = self.reach(self.hub.find_repo(o, n)) else {
                    return Err(not_found("a Repository", nwo));
                };
                (r, format!("refs/heads/{name}"))
            }
            _ => {
                return Err(unprocessable(
                    "A branch must be given by id or by repositoryNameWithOwner and branchName"
                        .into(),
                ));
            }
        };
        self.need("contents")?;
        let Some(name) = full.strip_prefix("refs/heads/") else {
            return Err(unprocessable(format!("{full} is not a branch")));
        };
        let head = pulls::branch_sha(self.hub, &r, name)
            .ok_or_else(|| unprocessable(format!("Branch {name} does not exist")))?;
        let expected = input["expectedHeadOid"].as_str().unwrap_or_default();
        if head != expected {
            return Err(unprocessable(format!(
                "Expected branch to point to \"{expected}\" but it did not. Pull and try again."
            )));
        }
        let changes = &input["fileChanges"];
        let list = |k: &str| changes[k].as_array().cloned().unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        let mut additions = Vec::new();
        for a in list("additions") {
            let path = a["path"].as_str().unwrap_or_default().to_owned();
            let contents = base64::engine::general_purpose::STANDARD
                .decode(a["contents"].as_str().unwrap_or_default())
                .map_err(|_| unprocessable(format!("The contents of {path} are not base64")))?;
            if !seen.insert(path.clone()) {
                return Err(unprocessable(format!("{path} is given more than once")));
            }
            additions.push((path, contents));
        }
        let mut deletions = Vec::new();
        for d in list("deletions") {
            let path = d["path"].as_str().unwrap_or_default().to_owned();
            if !seen.insert(path.clone()) {
                return Err(unprocessable(format!("{path} is given more than once")));
            }
            deletions.push(path);
        }
        let m = &input["message"];
        let message = match m["body"].as_str() {
            Some(body) if !body.is_empty() => {
                format!("{}\n\n{body}", m["headline"].as_str().unwrap_or_default())
            }
            _ => m["headline"].as_str().unwrap_or_default().to_owned(),
        };
        let author = pulls::actor(self.hub, self.token);
        let new = pulls::commit_files(
            self.hub, &r, &head, &additions, &deletions, &message, &author,
        )
        .map_err(unprocessable)?;
        self.workflows_allowed(&r, Some(&head), &new)?;
        pulls::git(self.hub, &r, &["update-ref", &full, &new, &head]).map_err(|_| {
            unprocessable(format!(
                "Expected branch to point to \"{expected}\" but it did not. Pull and try again."
            ))
        })?;
        Ok(json!({
            "commit": {"__typename": "Commit", "oid": new, "id": format!("C_kwDO{new}"), "abbreviatedOid": &new[..7], "url": format!("{}/{}/{}/commit/{new}", self.hub.base_url, r.owner, r.name)},
            "ref": self.git_ref(&r, &full),
        }))
    }

    /// Changes the pull request `id` names (the token must write pull requests).
    fn change_pull(
        &self,
        id: &str,
        f: impl FnOnce(&mut Pull) -> Result<(), Error>,
    ) -> Result<(Pull, Repo), Error> {
        let Some(Node::PullRequest(r, n)) = self.node(id) else {
            return Err(not_found("a PullRequest", id));
        };
        self.need("pull_requests")?;
        let mut pulls = self.hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
        let p = pulls
            .iter_mut()
            .find(|p| p.number == n && p.is(&r))
            .ok_or_else(|| not_found("a PullRequest", id))?;
        f(p)?;
        Ok((p.clone(), r))
    }
}
