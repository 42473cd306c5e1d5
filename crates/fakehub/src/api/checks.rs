//! Check runs, as a CI app reports them and as a reviewer reads them: `POST
//! /repos/{owner}/{repo}/check-runs` (an installation token with `checks: write`) and `GET
//! /repos/{owner}/{repo}/commits/{ref}/check-runs` (`checks: read`; the ref a commit, branch
//! or tag), each run in GitHub's `check-run` document.

use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{Value, json};

use super::{Answer, Ctx, err, not_found, read_json};
use crate::hub::{Hub, IssuedToken, Repo};
use crate::json_response;

/// A check run as fakehub keeps it.
#[derive(Debug, Clone)]
pub(crate) struct CheckRun {
    pub id: u64,
    pub owner: String,
    pub repo: String,
    pub app_id: u64,
    pub head_sha: String,
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub details_url: Option<String>,
    pub external_id: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub text: Option<String>,
    pub started_at: String,
    pub completed_at: Option<String>,
}

const STATUSES: &[&str] = &["queued", "in_progress", "completed"];
const CONCLUSIONS: &[&str] = &[
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
];

/// The repository `t` reaches with `checks` at `level`.
fn checks_repo(
    c: &Ctx,
    t: &IssuedToken,
    level: &str,
) -> Result<Repo, hyper::Response<crate::Body>> {
    super::repo_with(&c.hub, t, c.param(0), c.param(1), "checks", level)
}

/// The commit `rev` names in `r`, if any.
async fn commit_of(hub: &Arc<Hub>, r: &Repo, rev: &str) -> Option<String> {
    if rev.starts_with('-') || rev.is_empty() {
        return None;
    }
    let (hub, r, spec) = (hub.clone(), r.clone(), format!("{rev}^{{commit}}"));
    tokio::task::spawn_blocking(move || {
        crate::pulls::git(&hub, &r, &["rev-parse", "--verify", "--quiet", &spec]).ok()
    })
    .await
    .ok()
    .flatten()
    .filter(|s| !s.is_empty())
}

fn unprocessable(message: &str) -> hyper::Response<crate::Body> {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest/checks/runs",
            "status": "422"
        }),
    )
}

fn now(hub: &Hub) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(hub.now().max(0) as u64),
    )
    .to_string()
}

/// `POST /repos/{owner}/{repo}/check-runs`: `name` and `head_sha` (a commit of the
/// repository) required; `status` queued (the default), in_progress or completed; a
/// `conclusion` completes the run.
pub(super) async fn create(c: Ctx) -> Answer {
    let t = c.token()?;
    if t.installation_id == 0 {
        return Err(err(
            StatusCode::FORBIDDEN,
            "You must authenticate via a GitHub App.",
        ));
    }
    let r = checks_repo(&c, &t, "write")?;
    let hub = c.hub.clone();
    let v = read_json(c.req).await?;
    let text = |k: &str| v[k].as_str().map(str::to_owned);
    let (Some(name), Some(sha)) = (text("name"), text("head_sha")) else {
        return Err(unprocessable(
            "Invalid request.\n\n\"name\" and \"head_sha\" are required.",
        ));
    };
    let Some(head_sha) = commit_of(&hub, &r, &sha).await.filter(|c| *c == sha) else {
        return Err(unprocessable(&format!("No commit found for SHA: {sha}")));
    };
    let conclusion = text("conclusion");
    if conclusion
        .as_deref()
        .is_some_and(|c| !CONCLUSIONS.contains(&c))
    {
        return Err(unprocessable(
            "Invalid request.\n\nconclusion is not a valid value.",
        ));
    }
    let status = match (text("status"), &conclusion) {
        (_, Some(_)) => "completed".to_owned(),
        (Some(s), None) if s == "completed" => {
            return Err(unprocessable(
                "Invalid request.\n\nWhen the status is completed, a conclusion is required.",
            ));
        }
        (Some(s), None) if STATUSES.contains(&s.as_str()) => s,
        (Some(_), None) => {
            return Err(unprocessable(
                "Invalid request.\n\nstatus is not a valid value.",
            ));
        }
        (None, None) => "queued".to_owned(),
    };
    let app_id = hub
        .installation(t.installation_id)
        .map(|i| i.app_id)
        .unwrap_or_default();
    let started = text("started_at").unwrap_or_else(|| now(&hub));
    let run = {
        let mut runs = hub.check_runs.lock().unwrap_or_else(|e| e.into_inner());
        let run = CheckRun {
            id: 7_000_000 + runs.len() as u64 + 1,
            owner: r.owner.clone(),
            repo: r.name.clone(),
            app_id,
            head_sha,
            name,
            completed_at: (status == "completed")
                .then(|| text("completed_at").unwrap_or_else(|| now(&hub))),
            status,
            conclusion,
            details_url: text("details_url"),
            external_id: text("external_id"),
            title: v["output"]["title"].as_str().map(str::to_owned),
            summary: v["output"]["summary"].as_str().map(str::to_owned),
            text: v["output"]["text"].as_str().map(str::to_owned),
            started_at: started,
        };
        runs.push(run.clone());
        run
    };
    Ok(json_response(StatusCode::CREATED, &doc(&hub, &r, &run)))
}

/// `GET /repos/{owner}/{repo}/commits/{ref}/check-runs[?check_name=&status=]`: the runs on
/// the commit `ref` names, newest first.
pub(super) async fn list_for_ref(c: Ctx) -> Answer {
    let t = c.token()?;
    let r = checks_repo(&c, &t, "read")?;
    // A branch with slashes comes %2F-encoded in its one segment.
    let rev = ghapp_gitproto::rest::decode_segment(c.param(2)).map_err(|_| not_found())?;
    let Some(sha) = commit_of(&c.hub, &r, &rev).await else {
        return Err(unprocessable(&format!("No commit found for SHA: {rev}")));
    };
    let q = c.query();
    let runs: Vec<CheckRun> = c
        .hub
        .check_runs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .rev()
        .filter(|k| {
            k.owner == r.owner
                && k.repo == r.name
                && k.head_sha == sha
                && q.get("check_name").is_none_or(|n| *n == k.name)
                && q.get("status").is_none_or(|s| *s == k.status)
        })
        .cloned()
        .collect();
    let docs: Vec<Value> = runs.iter().map(|k| doc(&c.hub, &r, k)).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"total_count": docs.len(), "check_runs": docs}),
    ))
}

/// GitHub's `check-run` document.
fn doc(hub: &Hub, r: &Repo, k: &CheckRun) -> Value {
    let base = &hub.base_url;
    let api = format!("{base}/api/v3/repos/{}/{}", r.owner, r.name);
    let repo_ref = json!({"id": r.id, "url": api, "name": r.name});
    // The open pull requests whose head is the checked commit.
    let pulls: Vec<Value> = hub
        .pulls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|p| {
            p.owner == r.owner && p.repo == r.name && p.state == "open" && p.head_sha == k.head_sha
        })
        .map(|p| {
            json!({
                "id": 9_000_000 + p.number,
                "number": p.number,
                "url": format!("{api}/pulls/{}", p.number),
                "head": {"ref": p.head, "sha": p.head_sha, "repo": repo_ref},
                "base": {"ref": p.base, "sha": p.base_sha, "repo": repo_ref},
            })
        })
        .collect();
    let app = hub
        .app(k.app_id)
        .map_or(Value::Null, |a| super::apps::app_doc(hub, &a));
    json!({
        "id": k.id,
        "head_sha": k.head_sha,
        "node_id": format!("CR_kwDO{}", k.id),
        "external_id": k.external_id,
        "url": format!("{api}/check-runs/{}", k.id),
        "html_url": format!("{base}/{}/{}/runs/{}", r.owner, r.name, k.id),
        "details_url": k.details_url,
        "status": k.status,
        "conclusion": k.conclusion,
        "started_at": k.started_at,
        "completed_at": k.completed_at,
        "output": {
            "title": k.title,
            "summary": k.summary,
            "text": k.text,
            "annotations_count": 0,
            "annotations_url": format!("{api}/check-runs/{}/annotations", k.id),
        },
        "name": k.name,
        "check_suite": {"id": 8_000_000 + k.id},
        "app": app,
        "pull_requests": pulls,
    })
}
