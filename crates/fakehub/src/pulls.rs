//! Pull requests: list, create (with GitHub's 422s), get, update, and issue comments.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::hub::{Hub, IssuedToken, Repo};
use crate::json as docs;

#[derive(Debug, Clone)]
pub(crate) struct Pull {
    pub number: u64,
    pub owner: String,
    pub repo: String,
    pub title: String,
    pub body: Option<String>,
    pub head: String,
    pub base: String,
    pub draft: bool,
    pub state: String,
    pub head_sha: String,
    pub base_sha: String,
    pub comments: Vec<Comment>,
    /// The commit its merge made on the base branch (`None`: not merged).
    pub merge_commit_sha: Option<String>,
    /// Who opened it: `SLUG[bot]` for an app token, the user for a personal access token.
    pub author: String,
    /// Reviews requested: user logins and team slugs.
    pub reviewers: Vec<String>,
    pub teams: Vec<String>,
}

/// A comment on a pull request (an issue comment, as GitHub stores it).
#[derive(Debug, Clone)]
pub(crate) struct Comment {
    pub id: u64,
    pub body: String,
    pub author: String,
}

/// A fresh comment id (GitHub's are global).
pub(crate) fn next_comment_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(9001);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Runs git in the bare repository of `repo` (blocking): its output, or git's complaint.
pub(crate) fn git(hub: &Hub, repo: &Repo, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("git")
        .args(args)
        .env("GIT_DIR", hub.repo_dir(repo))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", &hub.home)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Runs git in the bare repository of `repo` with `input` on stdin (blocking).
pub(crate) fn git_stdin(
    hub: &Hub,
    repo: &Repo,
    args: &[&str],
    input: &[u8],
) -> Result<String, String> {
    use std::io::Write;
    let mut child = std::process::Command::new("git")
        .args(args)
        .env("GIT_DIR", hub.repo_dir(repo))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", &hub.home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut w) = child.stdin.take() {
        w.write_all(input).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// A commit on `parent` with `additions` (path, bytes) written and `deletions` removed, as
/// GitHub's `createCommitOnBranch` makes it (blocking): its id. The repository is not
/// changed but for the new objects; the caller moves the ref.
pub(crate) fn commit_files(
    hub: &Hub,
    repo: &Repo,
    parent: &str,
    additions: &[(String, Vec<u8>)],
    deletions: &[String],
    message: &str,
    author: &str,
) -> Result<String, String> {
    use std::io::Write;
    let index = tempfile::NamedTempFile::new_in(&hub.home).map_err(|e| e.to_string())?;
    let git_in = |args: &[&str], input: Option<&[u8]>| -> Result<String, String> {
        let mut c = std::process::Command::new("git");
        c.args(args)
            .env("GIT_DIR", hub.repo_dir(repo))
            .env("GIT_INDEX_FILE", index.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", &hub.home)
            .env("GIT_AUTHOR_NAME", author)
            .env(
                "GIT_AUTHOR_EMAIL",
                format!("{author}@users.noreply.github.com"),
            )
            .env("GIT_COMMITTER_NAME", "GitHub")
            .env("GIT_COMMITTER_EMAIL", "noreply@github.com")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().map_err(|e| e.to_string())?;
        if let (Some(data), Some(mut w)) = (input, child.stdin.take()) {
            w.write_all(data).map_err(|e| e.to_string())?;
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    };
    git_in(&["read-tree", parent], None)?;
    for (path, bytes) in additions {
        let blob = git_in(&["hash-object", "-w", "--stdin"], Some(bytes))?;
        git_in(
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("100644,{blob},{path}"),
            ],
            None,
        )?;
    }
    for path in deletions {
        git_in(&["update-index", "--force-remove", path], None)?;
    }
    let tree = git_in(&["write-tree"], None)?;
    git_in(
        &["commit-tree", &tree, "-p", parent, "-F", "-"],
        Some(message.as_bytes()),
    )
}

/// Whether moving a ref from `old` (`None`: created) to `new` creates, changes or deletes a
/// workflow file: GitHub refuses that to an app token without `workflows: write`, whatever
/// the way (a push, the API). The first such path.
pub(crate) fn workflow_change(
    hub: &Hub,
    repo: &Repo,
    old: Option<&str>,
    new: &str,
) -> Option<String> {
    let base = match old {
        Some(o) => o.to_owned(),
        None => git(hub, repo, &["merge-base", new, "HEAD"])
            .unwrap_or_else(|_| "4b825dc642cb6eb9a060e54bf8d69288fbee4904".to_owned()),
    };
    git(
        hub,
        repo,
        &["diff-tree", "-r", "--name-only", "--no-renames", &base, new],
    )
    .ok()?
    .lines()
    .find(|p| p.starts_with(".github/workflows/"))
    .map(str::to_owned)
}

/// The sha of `branch` in the bare repository, if it exists (blocking).
pub(crate) fn branch_sha(hub: &Hub, repo: &Repo, branch: &str) -> Option<String> {
    git(
        hub,
        repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}^{{commit}}"),
        ],
    )
    .ok()
}

/// GitHub's node id of pull request `number` of repository `repo_id`.
pub(crate) fn node_id(repo_id: u64, number: u64) -> String {
    format!("PR_kwDO{repo_id}_{number}")
}

/// Who a token acts as: `SLUG[bot]` for an app's, the user for a personal access token's.
pub(crate) fn actor(hub: &Hub, t: &IssuedToken) -> String {
    match &t.user {
        Some(u) => u.clone(),
        None => hub
            .installation(t.installation_id)
            .and_then(|i| hub.app(i.app_id))
            .map(|a| format!("{}[bot]", a.slug))
            .unwrap_or_else(|| "ghost".into()),
    }
}

/// Why GitHub refuses to open a pull request: a field and GitHub's code, or its own words.
#[derive(Debug)]
pub(crate) enum Invalid {
    Field(&'static str, &'static str),
    Custom(String),
}

impl Invalid {
    pub(crate) fn message(&self) -> String {
        match self {
            Invalid::Field(f, "missing_field") => format!("{f} can't be blank"),
            Invalid::Field(f, _) => format!("{f} is invalid"),
            Invalid::Custom(m) => m.clone(),
        }
    }

    /// GitHub's REST answer (422 "Validation Failed").
    pub(crate) fn rest(&self) -> Value {
        match self {
            Invalid::Field(f, code) => validation_failed(f, code, None),
            Invalid::Custom(m) => validation_failed("", "", Some(m)),
        }
    }
}

/// What opening a pull request takes (REST's body or GraphQL's input, already read).
pub(crate) struct Open<'a> {
    pub title: Option<&'a str>,
    pub head: Option<&'a str>,
    pub base: Option<&'a str>,
    pub body: Option<&'a str>,
    pub draft: bool,
}

/// Opens a pull request with GitHub's validation (blocking: it reads the branches).
pub(crate) fn open(hub: &Hub, t: &IssuedToken, r: &Repo, o: &Open<'_>) -> Result<Pull, Invalid> {
    let title = o
        .title
        .filter(|t| !t.trim().is_empty())
        .ok_or(Invalid::Field("title", "missing_field"))?;
    let head_raw = o
        .head
        .filter(|h| !h.is_empty())
        .ok_or(Invalid::Field("head", "missing_field"))?;
    let base = o
        .base
        .filter(|b| !b.is_empty())
        .ok_or(Invalid::Field("base", "missing_field"))?;
    let head = match head_raw.split_once(':') {
        Some((owner, b)) if owner.eq_ignore_ascii_case(&r.owner) => b,
        Some(_) => return Err(Invalid::Field("head", "invalid")),
        None => head_raw,
    };
    let head_sha = branch_sha(hub, r, head).ok_or(Invalid::Field("head", "invalid"))?;
    let base_sha = branch_sha(hub, r, base).ok_or(Invalid::Field("base", "invalid"))?;
    if head_sha == base_sha {
        return Err(Invalid::Custom(format!(
            "No commits between {base} and {head}"
        )));
    }
    let mut pulls = hub.pulls.lock().unwrap_or_else(|e| e.into_inner());
    if pulls
        .iter()
        .any(|p| p.state == "open" && p.is(r) && p.head == head && p.base == base)
    {
        return Err(Invalid::Custom(format!(
            "A pull request already exists for {}:{head}.",
            r.owner
        )));
    }
    let p = Pull {
        number: pulls.len() as u64 + 1,
        owner: r.owner.clone(),
        repo: r.name.clone(),
        title: title.to_owned(),
        body: o.body.map(str::to_owned),
        head: head.to_owned(),
        base: base.to_owned(),
        draft: o.draft,
        state: "open".into(),
        head_sha,
        base_sha,
        comments: Vec::new(),
        merge_commit_sha: None,
        author: actor(hub, t),
        reviewers: Vec::new(),
        teams: Vec::new(),
    };
    pulls.push(p.clone());
    Ok(p)
}

impl Pull {
    /// Whether it belongs to repository `r`.
    pub(crate) fn is(&self, r: &Repo) -> bool {
        self.owner.eq_ignore_ascii_case(&r.owner) && self.repo.eq_ignore_ascii_case(&r.name)
    }
}

pub(crate) fn doc(hub: &Arc<Hub>, p: &Pull, repo: &Repo, full: bool) -> Value {
    let base = &hub.base_url;
    let api = format!("{base}/api/v3/repos/{}/{}", repo.owner, repo.name);
    let html = format!("{base}/{}/{}/pull/{}", repo.owner, repo.name, p.number);
    let repo_doc = crate::api::repo_doc(hub, repo, None);
    let owner = repo_doc["owner"].clone();
    let bot = author_doc(base, &p.author);
    let link = |h: String| json!({ "href": h });
    let mut v = json!({
        "url": format!("{api}/pulls/{}", p.number),
        "id": 8000 + p.number,
        "node_id": node_id(repo.id, p.number),
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "issue_url": format!("{api}/issues/{}", p.number),
        "commits_url": format!("{api}/pulls/{}/commits", p.number),
        "review_comments_url": format!("{api}/pulls/{}/comments", p.number),
        "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
        "comments_url": format!("{api}/issues/{}/comments", p.number),
        "statuses_url": format!("{api}/statuses/{}", p.head_sha),
        "number": p.number,
        "state": p.state,
        "locked": false,
        "title": p.title,
        "user": bot,
        "body": p.body,
        "labels": [],
        "milestone": null,
        "active_lock_reason": null,
        "created_at": docs::CREATED,
        "updated_at": docs::CREATED,
        "closed_at": p.merge_commit_sha.as_ref().map(|_| docs::CREATED),
        "merged_at": p.merge_commit_sha.as_ref().map(|_| docs::CREATED),
        "merge_commit_sha": p.merge_commit_sha,
        "assignee": null,
        "assignees": [],
        "requested_reviewers": p.reviewers.iter().enumerate().map(|(i, l)| docs::simple_user(base, l, 7000 + i as u64, "User")).collect::<Vec<_>>(),
        "requested_teams": p.teams.iter().enumerate().map(|(i, s)| team_doc(base, &repo.owner, s, 600 + i as u64)).collect::<Vec<_>>(),
        "head": {
            "label": format!("{}:{}", repo.owner, p.head),
            "ref": p.head,
            "sha": p.head_sha,
            "user": owner,
            "repo": repo_doc,
        },
        "base": {
            "label": format!("{}:{}", repo.owner, p.base),
            "ref": p.base,
            "sha": p.base_sha,
            "user": owner,
            "repo": repo_doc,
        },
        "_links": {
            "self": link(format!("{api}/pulls/{}", p.number)),
            "html": link(html),
            "issue": link(format!("{api}/issues/{}", p.number)),
            "comments": link(format!("{api}/issues/{}/comments", p.number)),
            "review_comments": link(format!("{api}/pulls/{}/comments", p.number)),
            "review_comment": link(format!("{api}/pulls/comments{{/number}}")),
            "commits": link(format!("{api}/pulls/{}/commits", p.number)),
            "statuses": link(format!("{api}/statuses/{}", p.head_sha)),
        },
        "author_association": "NONE",
        "auto_merge": null,
        "draft": p.draft,
    });
    if full {
        for (k, val) in [
            ("merged", json!(p.merge_commit_sha.is_some())),
            ("mergeable", json!(p.merge_commit_sha.is_none())),
            ("rebaseable", json!(true)),
            ("mergeable_state", json!("clean")),
            ("merged_by", Value::Null),
            ("comments", json!(p.comments.len())),
            ("review_comments", json!(0)),
            ("maintainer_can_modify", json!(false)),
            ("commits", json!(1)),
            ("additions", json!(1)),
            ("deletions", json!(0)),
            ("changed_files", json!(1)),
        ] {
            v[k] = val;
        }
    }
    v
}

/// A team of `org` as GitHub describes one (`team`: every required field).
fn team_doc(base: &str, org: &str, slug: &str, id: u64) -> Value {
    let api = format!("{base}/api/v3/orgs/{org}/teams/{slug}");
    json!({
        "id": id,
        "node_id": format!("T_kwDO{id}"),
        "url": api,
        "html_url": format!("{base}/orgs/{org}/teams/{slug}"),
        "name": slug,
        "slug": slug,
        "description": null,
        "privacy": "closed",
        "notification_setting": "notifications_enabled",
        "permission": "pull",
        "members_url": format!("{api}/members{{/member}}"),
        "repositories_url": format!("{api}/repos"),
        "type": "organization",
        "parent": null,
    })
}

/// Why a merge did not happen, in GitHub's words and status.
pub(crate) struct NotMerged(pub u16, pub String);

/// Merges pull request `p` of `repo` as GitHub's `PUT …/pulls/{n}/merge` does (blocking): a
/// merge commit, a squash, or the head's commits replayed onto the base, then the base moved
/// (compare-and-swap); the new base commit.
pub(crate) fn merge(
    hub: &Hub,
    repo: &Repo,
    p: &Pull,
    method: &str,
    title: Option<&str>,
    message: Option<&str>,
) -> Result<String, NotMerged> {
    let not_mergeable = || NotMerged(405, "Pull Request is not mergeable".into());
    let head = branch_sha(hub, repo, &p.head).ok_or_else(not_mergeable)?;
    let base = branch_sha(hub, repo, &p.base).ok_or_else(not_mergeable)?;
    let who = [
        "-c",
        "user.name=GitHub",
        "-c",
        "user.email=noreply@github.com",
    ];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = who.to_vec();
        all.extend_from_slice(args);
        git(hub, repo, &all)
    };
    // The tree of `ours` and `theirs` merged (from `base_of` when given), or not mergeable.
    let merged_tree = |ours: &str, theirs: &str, base_of: Option<&str>| {
        let mut args = vec!["merge-tree", "--write-tree"];
        let mb;
        if let Some(b) = base_of {
            mb = format!("--merge-base={b}");
            args.push(&mb);
        }
        args.extend([ours, theirs]);
        run(&args)
            .ok()
            .and_then(|o| o.lines().next().map(str::to_owned))
            .ok_or_else(not_mergeable)
    };
    let default_title = format!("{} (#{})", p.title, p.number);
    let new = match method {
        "merge" => {
            let tree = merged_tree(&base, &head, None)?;
            let msg = format!(
                "{}\n\n{}",
                title.map_or_else(
                    || format!(
                        "Merge pull request #{} from {}/{}",
                        p.number, repo.owner, p.head
                    ),
                    str::to_owned
                ),
                message.unwrap_or(&p.title)
            );
            run(&["commit-tree", &tree, "-p", &base, "-p", &head, "-m", &msg])
        }
        "squash" => {
            let tree = merged_tree(&base, &head, None)?;
            let msg = format!(
                "{}\n\n{}",
                title.unwrap_or(&default_title),
                message.unwrap_or_default()
            );
            run(&["commit-tree", &tree, "-p", &base, "-m", msg.trim_end()])
        }
        "rebase" => {
            let list = run(&[
                "rev-list",
                "--reverse",
                "--no-merges",
                &format!("{base}..{head}"),
            ])
            .map_err(|_| not_mergeable())?;
            let mut on = base.clone();
            for c in list.lines() {
                let tree = merged_tree(&on, c, Some(&format!("{c}^")))?;
                let msg = run(&["log", "-1", "--format=%B", c]).map_err(|_| not_mergeable())?;
                on = run(&["commit-tree", &tree, "-p", &on, "-m", &msg])
                    .map_err(|_| not_mergeable())?;
            }
            Ok(on)
        }
        _ => {
            return Err(NotMerged(
                422,
                format!("merge_method {method:?} is not one of merge, squash, rebase"),
            ));
        }
    }
    .map_err(|_| not_mergeable())?;
    run(&["update-ref", &format!("refs/heads/{}", p.base), &new, &base]).map_err(|_| {
        NotMerged(
            409,
            "Base branch was modified. Review and try the merge again.".into(),
        )
    })?;
    Ok(new)
}

/// The simple-user document of who wrote a pull request or comment: an app's bot
/// (`SLUG[bot]`) or a user.
fn author_doc(base: &str, login: &str) -> Value {
    if login.ends_with("[bot]") {
        docs::simple_user(base, login, 41898282, "Bot")
    } else {
        docs::simple_user(base, login, 7100, "User")
    }
}

/// GitHub's issue-comment document for comment `c` on pull request `number` of `repo`.
pub(crate) fn comment_doc(hub: &Hub, repo: &Repo, number: u64, c: &Comment) -> Value {
    let base = &hub.base_url;
    let api = format!("{base}/api/v3/repos/{}/{}", repo.owner, repo.name);
    let user = author_doc(base, &c.author);
    let performed_via = if c.author.ends_with("[bot]") {
        hub.apps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|a| format!("{}[bot]", a.app.slug) == c.author)
            .map(|a| crate::api::app_doc(hub, &a.app))
    } else {
        None
    };
    json!({
        "id": c.id,
        "node_id": format!("IC_kwDO{}_{number}_{}", repo.id, c.id),
        "url": format!("{api}/issues/comments/{}", c.id),
        "html_url": format!("{base}/{}/{}/pull/{number}#issuecomment-{}", repo.owner, repo.name, c.id),
        "issue_url": format!("{api}/issues/{number}"),
        "body": c.body,
        "user": user,
        "created_at": docs::CREATED,
        "updated_at": docs::CREATED,
        "author_association": "NONE",
        "performed_via_github_app": performed_via,
        "reactions": {
            "url": format!("{api}/issues/comments/{}/reactions", c.id),
            "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "confused": 0,
            "heart": 0, "hooray": 0, "eyes": 0, "rocket": 0,
        },
    })
}

pub(crate) fn validation_failed(field: &str, code: &str, message: Option<&str>) -> Value {
    let mut e = json!({"resource": "PullRequest", "field": field, "code": code});
    if let Some(m) = message {
        e = json!({"resource": "PullRequest", "code": "custom", "message": m});
    }
    json!({
        "message": "Validation Failed",
        "errors": [e],
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
        "status": "422"
    })
}
