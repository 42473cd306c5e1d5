//! Repositories and what a token asks about itself: a repository, the installation's
//! repositories, the token's user, its revocation, the rate limit.

use crate::hub::Repo;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{Value, json};

use super::{Answer, Ctx, err, not_found};
use crate::hub::{Hub, level_covers};
use crate::{json as docs, json_response};

pub(super) async fn get_user(c: Ctx) -> Answer {
    let t = c.token()?;
    let Some(login) = &t.user else {
        return Err(err(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        ));
    };
    let mut r = json_response(
        StatusCode::OK,
        &docs::simple_user(&c.hub.base_url, login, 7100, "User"),
    );
    if let Some(v) = pat_expiry_header(t.expires_at) {
        r.headers_mut()
            .insert("github-authentication-token-expiration", v);
    }
    Ok(r)
}

pub(super) async fn installation_repositories(c: Ctx) -> Answer {
    let t = c.token()?;
    let hub = &c.hub;
    let inst = hub.installation(t.installation_id).ok_or_else(not_found)?;
    let repos: Vec<Value> = hub
        .installation_repos(&inst)
        .into_iter()
        .filter(|r| hub.token_covers(&t, &r.owner, &r.name))
        .map(|r| repo_doc(hub, &r, None))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "total_count": repos.len(),
            "repository_selection": if t.repositories.is_some() { "selected" } else { "all" },
            "repositories": repos
        }),
    ))
}

pub(super) async fn revoke_token(c: Ctx) -> Answer {
    let super::Auth::Token(raw) = &c.auth else {
        return Err(err(StatusCode::UNAUTHORIZED, "Requires authentication"));
    };
    c.token()?;
    let mut tokens = c.hub.tokens.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = tokens.get_mut(raw) {
        t.revoked = true;
    }
    Ok(crate::empty(StatusCode::NO_CONTENT))
}

pub(super) async fn get_repo(c: Ctx) -> Answer {
    let t = c.token()?;
    match c.hub.find_repo(c.param(0), c.param(1)) {
        Some(r) if c.hub.token_covers(&t, &r.owner, &r.name) => {
            let push = t
                .permissions
                .get("contents")
                .is_some_and(|l| level_covers(l, "write"));
            Ok(json_response(
                StatusCode::OK,
                &repo_doc(&c.hub, &r, Some((true, push))),
            ))
        }
        _ => Ok(not_found()),
    }
}

pub(super) async fn rate_limit(c: Ctx) -> Answer {
    let now = c.hub.now();
    let core = json!({"limit": 5000, "used": 0, "remaining": 5000, "reset": now + 3600});
    Ok(json_response(
        StatusCode::OK,
        &json!({"resources": {"core": core, "search": core}, "rate": core}),
    ))
}

pub(crate) fn repo_doc(hub: &Hub, r: &Repo, perms: Option<(bool, bool)>) -> Value {
    let kind = hub.account(&r.owner);
    let owner = docs::simple_user(&hub.base_url, &r.owner, kind.0, kind.1);
    docs::repository(
        &hub.base_url,
        &owner,
        &r.name,
        r.id,
        &r.default_branch,
        perms,
    )
}

/// `github-authentication-token-expiration`, sent with every answer to a token that expires
/// (GitHub's format: `2026-12-01 00:00:00 UTC`).
fn pat_expiry_header(expires_at: i64) -> Option<hyper::header::HeaderValue> {
    if expires_at == i64::MAX {
        return None;
    }
    let t = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(expires_at.max(0) as u64),
    )
    .to_string();
    let t = t.trim_end_matches('Z').replace('T', " ");
    format!("{t} UTC").parse().ok()
}

/// A commit as GitHub's REST `commit` document (`rev` resolved in `r`).
fn commit_doc(hub: &Hub, r: &Repo, rev: &str) -> Result<Value, String> {
    let out = crate::pulls::git(
        hub,
        r,
        &[
            "log",
            "-1",
            "--format=%H%n%T%n%P%n%an%n%ae%n%aI%n%cn%n%ce%n%cI%n%B",
            rev,
            "--",
        ],
    )?;
    let mut l = out.lines();
    let mut next = || l.next().unwrap_or_default().to_owned();
    let (sha, tree, parents) = (next(), next(), next());
    let (an, ae, ad, cn, ce, cd) = (next(), next(), next(), next(), next(), next());
    let message: String = out.lines().skip(9).collect::<Vec<_>>().join("\n");
    let base = &hub.base_url;
    let api = format!("{base}/api/v3/repos/{}/{}", r.owner, r.name);
    let html = format!("{base}/{}/{}", r.owner, r.name);
    let who = |n: &str, e: &str, d: &str| json!({"name": n, "email": e, "date": d});
    let parents: Vec<Value> = parents
        .split_whitespace()
        .map(|p| json!({"sha": p, "url": format!("{api}/commits/{p}"), "html_url": format!("{html}/commit/{p}")}))
        .collect();
    Ok(json!({
        "sha": sha,
        "node_id": format!("C_kwDO{sha}"),
        "url": format!("{api}/commits/{sha}"),
        "html_url": format!("{html}/commit/{sha}"),
        "comments_url": format!("{api}/commits/{sha}/comments"),
        "commit": {
            "url": format!("{api}/git/commits/{sha}"),
            "author": who(&an, &ae, &ad),
            "committer": who(&cn, &ce, &cd),
            "message": message,
            "comment_count": 0,
            "tree": {"sha": tree, "url": format!("{api}/git/trees/{tree}")},
            "verification": {"verified": false, "reason": "unsigned", "payload": null, "signature": null, "verified_at": null},
        },
        "author": null,
        "committer": null,
        "parents": parents,
    }))
}

/// The repository a token may read, from the first two path parameters.
fn readable_repo(c: &Ctx) -> Result<Repo, hyper::Response<crate::Body>> {
    let t = c.token()?;
    c.hub
        .find_repo(c.param(0), c.param(1))
        .filter(|r| c.hub.token_covers(&t, &r.owner, &r.name))
        .ok_or_else(not_found)
}

/// `GET /repos/{owner}/{repo}/branches/{branch}` (the branch's name may hold slashes): the
/// branch with its head commit, unprotected.
pub(super) async fn branch(c: Ctx) -> Answer {
    let r = readable_repo(&c)?;
    let name = c.param(2).to_owned();
    let hub = c.hub.clone();
    let (r2, n2) = (r.clone(), name.clone());
    let commit =
        tokio::task::spawn_blocking(move || commit_doc(&hub, &r2, &format!("refs/heads/{n2}")))
            .await
            .map_err(|_| not_found())?
            .map_err(|_| err(StatusCode::NOT_FOUND, "Branch not found"))?;
    let base = &c.hub.base_url;
    let api = format!("{base}/api/v3/repos/{}/{}", r.owner, r.name);
    let html = format!("{base}/{}/{}", r.owner, r.name);
    let doc = json!({
        "name": name,
        "commit": commit,
        "_links": {"html": format!("{html}/tree/{name}"), "self": format!("{api}/branches/{name}")},
        "protected": false,
        "protection": {"enabled": false, "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []}},
        "protection_url": format!("{api}/branches/{name}/protection"),
    });
    Ok(json_response(StatusCode::OK, &doc))
}

/// `GET /repos/{owner}/{repo}/compare/{basehead}` (`BASE...HEAD`, branches or commits of the
/// repository): GitHub's commit comparison, its commits (up to 250, oldest first) and its
/// files (up to 300) against the merge base, with their line counts.
pub(super) async fn compare(c: Ctx) -> Answer {
    let r = readable_repo(&c)?;
    let basehead = c.param(2).to_owned();
    let Some((base, head)) = basehead.split_once("...") else {
        return Err(err(StatusCode::NOT_FOUND, "Not Found"));
    };
    let (base, head) = (base.to_owned(), head.to_owned());
    let hub = c.hub.clone();
    let doc = tokio::task::spawn_blocking(move || -> Result<Value, String> {
        let git = |args: &[&str]| crate::pulls::git(&hub, &r, args);
        let rev = |name: &str| {
            git(&[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{name}^{{commit}}"),
            ])
        };
        let (b, h) = (rev(&base)?, rev(&head)?);
        let mb = git(&["merge-base", &b, &h])?;
        let count = |range: &str| -> usize {
            git(&["rev-list", "--count", range])
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let (ahead, behind) = (count(&format!("{b}..{h}")), count(&format!("{h}..{b}")));
        let status = match (ahead, behind) {
            (0, 0) => "identical",
            (_, 0) => "ahead",
            (0, _) => "behind",
            _ => "diverged",
        };
        let list = git(&[
            "rev-list",
            "--reverse",
            "--max-count=250",
            &format!("{mb}..{h}"),
        ])?;
        let commits = list
            .lines()
            .map(|sha| commit_doc(&hub, &r, sha))
            .collect::<Result<Vec<_>, _>>()?;
        let numstat = git(&["diff", "--numstat", "--no-renames", &mb, &h])?;
        let names = git(&["diff", "--name-status", "--no-renames", &mb, &h])?;
        let base_url = &hub.base_url;
        let api = format!("{base_url}/api/v3/repos/{}/{}", r.owner, r.name);
        let html = format!("{base_url}/{}/{}", r.owner, r.name);
        let files: Vec<Value> = numstat
            .lines()
            .zip(names.lines())
            .take(300)
            .map(|(n, s)| {
                let mut f = n.split('\t');
                let add: u64 = f.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                let del: u64 = f.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                let name = f.next().unwrap_or_default();
                let status = match s.chars().next() {
                    Some('A') => "added",
                    Some('D') => "removed",
                    _ => "modified",
                };
                let blob = git(&["rev-parse", &format!("{h}:{name}")]).unwrap_or_default();
                // GitHub's `patch`: the file's hunks, without the diff's header lines; left
                // out for a binary file or one too large to show.
                let patch = git(&["diff", "--no-color", "--no-renames", &mb, &h, "--", name])
                    .ok()
                    .filter(|d| d.len() <= 1 << 20 && !d.contains("\nBinary files "))
                    .and_then(|d| d.find("\n@@").map(|i| d[i + 1..].trim_end().to_owned()));
                let mut doc = json!({
                    "sha": blob,
                    "filename": name,
                    "status": status,
                    "additions": add,
                    "deletions": del,
                    "changes": add + del,
                    "blob_url": format!("{html}/blob/{h}/{name}"),
                    "raw_url": format!("{html}/raw/{h}/{name}"),
                    "contents_url": format!("{api}/contents/{name}?ref={h}"),
                });
                if let Some(p) = patch {
                    doc["patch"] = Value::String(p);
                }
                doc
            })
            .collect();
        Ok(json!({
            "url": format!("{api}/compare/{base}...{head}"),
            "html_url": format!("{html}/compare/{base}...{head}"),
            "permalink_url": format!("{html}/compare/{}...{}", &b[..7], &h[..7]),
            "diff_url": format!("{html}/compare/{base}...{head}.diff"),
            "patch_url": format!("{html}/compare/{base}...{head}.patch"),
            "base_commit": commit_doc(&hub, &r, &b)?,
            "merge_base_commit": commit_doc(&hub, &r, &mb)?,
            "status": status,
            "ahead_by": ahead,
            "behind_by": behind,
            "total_commits": ahead,
            "commits": commits,
            "files": files,
        }))
    })
    .await
    .map_err(|_| not_found())?
    .map_err(|_| err(StatusCode::NOT_FOUND, "Not Found"))?;
    Ok(json_response(StatusCode::OK, &doc))
}

/// `GET /repos/{owner}/{repo}/contents/{path}[?ref=]` for a file (`contents` read): GitHub's
/// content-file document, the content base64 in lines of 60 as GitHub sends it. A directory, a
/// missing path or ref: 404. Files over 1 MB are not inlined by GitHub's JSON form; fakehub
/// refuses them with 403 `too_large`, as GitHub does for over 100 MB.
pub(super) async fn contents(c: Ctx) -> Answer {
    let t = c.token()?;
    let r = super::repo_with(&c.hub, &t, c.param(0), c.param(1), "contents", "read")?;
    let path = c.param(2).to_owned();
    let rev = c
        .query()
        .get("ref")
        .cloned()
        .unwrap_or_else(|| r.default_branch.clone());
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
        || rev.starts_with('-')
    {
        return Err(not_found());
    }
    let dir = c.hub.repo_dir(&r);
    let home = c.hub.home.clone();
    let spec = format!("{rev}:{path}");
    let found = tokio::task::spawn_blocking(move || -> Option<(String, Vec<u8>)> {
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .env("GIT_DIR", &dir)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("HOME", &home)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| o.stdout)
        };
        let kind = git(&["cat-file", "-t", &spec])?;
        if kind.trim_ascii() != b"blob" {
            return None;
        }
        let sha = String::from_utf8(git(&["rev-parse", &spec])?).ok()?;
        Some((sha.trim().to_owned(), git(&["cat-file", "blob", &spec])?))
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(not_found)?;
    let (sha, bytes) = found;
    if bytes.len() > 1_000_000 {
        return Err(err(
            StatusCode::FORBIDDEN,
            "This API returns blobs up to 1 MB in size. The requested blob is too large to fetch via the API, but you can use the Git Data API to request blobs up to 100 MB in size.",
        ));
    }
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let content: String = b64
        .as_bytes()
        .chunks(60)
        .map(|l| format!("{}\n", String::from_utf8_lossy(l)))
        .collect();
    let base = &c.hub.base_url;
    let api = format!("{base}/api/v3/repos/{}/{}", r.owner, r.name);
    let html = format!("{base}/{}/{}/blob/{rev}/{path}", r.owner, r.name);
    let git_url = format!("{api}/git/blobs/{sha}");
    let url = format!("{api}/contents/{path}?ref={rev}");
    let doc = json!({
        "type": "file",
        "encoding": "base64",
        "size": bytes.len(),
        "name": path.rsplit('/').next().unwrap_or(&path),
        "path": path,
        "content": content,
        "sha": sha,
        "url": url,
        "git_url": git_url,
        "html_url": html,
        "download_url": format!("{base}/{}/{}/raw/{rev}/{path}", r.owner, r.name),
        "_links": {"self": url, "git": git_url, "html": html},
    });
    Ok(json_response(StatusCode::OK, &doc))
}
