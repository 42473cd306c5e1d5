//! Pull requests: list, create (with GitHub's 422s), get, update, and issue comments.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::hub::{Hub, Repo};
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
    pub comments: u64,
    /// Who opened it: `SLUG[bot]` for an app token, the user for a personal access token.
    pub author: String,
}

/// The sha of `branch` in the bare repository, if it exists.
pub(crate) async fn branch_sha(hub: &Hub, repo: &Repo, branch: &str) -> Option<String> {
    let out = tokio::process::Command::new("git")
        .args([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ])
        .env(
            "GIT_DIR",
            hub.repos_root
                .join(repo.owner.to_ascii_lowercase())
                .join(format!("{}.git", repo.name.to_ascii_lowercase())),
        )
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", &hub.home)
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub(crate) fn doc(hub: &Arc<Hub>, p: &Pull, repo: &Repo, full: bool) -> Value {
    let base = &hub.base_url;
    let api = format!("{base}/api/v3/repos/{}/{}", repo.owner, repo.name);
    let html = format!("{base}/{}/{}/pull/{}", repo.owner, repo.name, p.number);
    let repo_doc = crate::api::repo_doc(hub, repo, None);
    let owner = repo_doc["owner"].clone();
    let bot = if p.author.ends_with("[bot]") {
        docs::simple_user(base, &p.author, 41898282, "Bot")
    } else {
        docs::simple_user(base, &p.author, 7100, "User")
    };
    let link = |h: String| json!({ "href": h });
    let mut v = json!({
        "url": format!("{api}/pulls/{}", p.number),
        "id": 8000 + p.number,
        "node_id": format!("PR_kwDO{}", p.number),
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
        "closed_at": null,
        "merged_at": null,
        "merge_commit_sha": null,
        "assignee": null,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
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
            ("merged", json!(false)),
            ("mergeable", json!(true)),
            ("rebaseable", json!(true)),
            ("mergeable_state", json!("clean")),
            ("merged_by", Value::Null),
            ("comments", json!(p.comments)),
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
