//! Learning and assisted modes (design section 15): every pull request a learning sandbox
//! asks for (an assisted one's when it is significant: `needs_approval`), by REST
//! (`POST …/pulls`) or GraphQL (`createPullRequest`), is held in the state store and answered
//! `202 Accepted` with `{message, approval_id, approval_url}` (GraphQL: the message as an
//! error, which gh prints). Asking again for the same head and base gets the same approval
//! (pending, or its decision): nothing is held twice. A human approves (the proxy then creates
//! the pull request at GitHub with the sandbox's token and records its URL) or denies (the
//! reason is recorded and told to the agent) through the admin API or `ghapp approvals`.

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::audit::{Decision, Event, Pending, Service};
use crate::respond::{Form, Refusal};
use crate::sandbox::Sandbox;
use crate::store::Approval;
use crate::{Body, Proxy};

/// What a pull request asks for.
#[derive(Debug)]
pub(crate) struct Ask {
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
}

/// The fields of `POST …/pulls` a held request keeps. Declared fields given twice are refused
/// (`{"base":"main","base":"release"}` cannot be weighed on one and sent with the other).
#[derive(serde::Deserialize)]
struct RestAsk {
    head: String,
    base: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    draft: Option<bool>,
}

/// GitHub's limits on what a held request may carry (title and body characters).
const MAX_TITLE: usize = 256;
const MAX_BODY: usize = 65_536;

impl Ask {
    /// From a REST `POST …/pulls` body (`head` already checked).
    pub(crate) fn rest(body: &[u8]) -> Result<Ask, String> {
        let v: RestAsk = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ask {
            head: v.head.rsplit(':').next().unwrap_or_default().to_owned(),
            base: v.base,
            title: v.title.unwrap_or_default(),
            body: v.body.unwrap_or_default(),
            draft: v.draft.unwrap_or(false),
        }
        .checked()
    }

    /// Refused when it is more than GitHub would take.
    pub(crate) fn checked(self) -> Result<Ask, String> {
        if self.head.is_empty() || self.base.is_empty() {
            return Err("a pull request needs head and base".into());
        }
        if self.title.chars().count() > MAX_TITLE || self.body.chars().count() > MAX_BODY {
            return Err(format!(
                "the title is over {MAX_TITLE} or the body over {MAX_BODY} characters"
            ));
        }
        Ok(self)
    }
}

impl Proxy {
    /// Why a pull request of this sandbox must wait for a human, if it must: every one in
    /// learning mode; in assisted mode a significant one (more files or changed lines than
    /// `significant` allows, or a path it names, by GitHub's compare of base...head).
    pub(crate) async fn needs_approval(
        &self,
        sb: &Sandbox,
        repo: &ghapp_gitproto::repo::RepoName,
        ask: &Ask,
    ) -> Result<Option<String>, Refusal> {
        match sb.cfg.mode {
            crate::config::Mode::Learning => Ok(Some("is in learning mode".into())),
            crate::config::Mode::Assisted => Ok(self
                .significance(sb, repo, &ask.base, &ask.head)
                .await?
                .map(|why| format!("is in assisted mode and the change is significant ({why})"))),
            _ => Ok(None),
        }
    }

    /// GitHub's compare of `base...head` in `repo`, read with the sandbox's token.
    pub(crate) async fn compare(
        &self,
        sb: &Sandbox,
        repo: &ghapp_gitproto::repo::RepoName,
        base: &str,
        head: &str,
    ) -> Result<Value, Refusal> {
        // Branch names keep their slashes (GitHub reads `base...head` whole); anything else
        // that is not plain is encoded.
        const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'/')
            .remove(b'-')
            .remove(b'_')
            .remove(b'.');
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string();
        let path = format!(
            "/repos/{}/{}/compare/{}...{}",
            repo.owner(),
            repo.repo(),
            enc(base),
            enc(head)
        );
        let (status, v) = self
            .api_call(sb, repo.owner(), hyper::Method::GET, &path, None, 16 << 20)
            .await?;
        if !status.is_success() {
            return Err(Refusal::json(
                StatusCode::BAD_GATEWAY,
                format!("cannot compare {base}...{head} in {repo}: GitHub answered {status}"),
            ));
        }
        Ok(v)
    }

    /// What makes `base...head` significant for `sb`, if anything.
    async fn significance(
        &self,
        sb: &Sandbox,
        repo: &ghapp_gitproto::repo::RepoName,
        base: &str,
        head: &str,
    ) -> Result<Option<String>, Refusal> {
        let v = self.compare(sb, repo, base, head).await?;
        let files = v["files"].as_array().map(Vec::as_slice).unwrap_or_default();
        let lines: u64 = files
            .iter()
            .map(|f| f["additions"].as_u64().unwrap_or(0) + f["deletions"].as_u64().unwrap_or(0))
            .sum();
        let limits = &sb.cfg.significant;
        // GitHub lists at most 300 files: that many means at least that many.
        if files.len() as u64 > limits.files {
            return Ok(Some(format!(
                "{} files, over {}",
                files.len(),
                limits.files
            )));
        }
        if lines > limits.lines {
            return Ok(Some(format!(
                "{lines} changed lines, over {}",
                limits.lines
            )));
        }
        Ok(files
            .iter()
            .filter_map(|f| f["filename"].as_str())
            .find(|p| sb.significant.is_match(p))
            .map(|p| format!("{p} is a significant path")))
    }

    /// Holds `ask` for sandbox `sb` on `repo` (or answers the earlier decision), in `form`;
    /// `why` says why it waits ("is in learning mode").
    pub(crate) async fn hold(
        &self,
        sb: &Sandbox,
        repo: &ghapp_gitproto::repo::RepoName,
        ask: Ask,
        why: &str,
        form: Form,
        p: &mut Pending,
    ) -> Response<Body> {
        let Some(store) = self.store.get() else {
            return p.refuse(Refusal {
                form,
                ..Refusal::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "learning mode needs the proxy's state store (state = …)",
                )
            });
        };
        let held = store
            .hold(&Approval::asked(
                sb.name(),
                &repo.to_string(),
                &ask.head,
                &ask.base,
                &ask.title,
                &ask.body,
                ask.draft,
            ))
            .await;
        let a = match held {
            Ok(a) => a,
            Err(crate::store::StoreError::Full(n)) => {
                return p.refuse(Refusal {
                    form,
                    ..Refusal::text(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "sandbox {} has {n} pull requests waiting for approval: wait for a decision",
                            sb.name()
                        ),
                    )
                });
            }
            Err(e) => {
                return p.refuse(Refusal {
                    form,
                    ..Refusal::text(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                });
            }
        };
        let what = format!("pull request {} -> {} in {}", a.head, a.base, a.repo);
        let (status, message) = match a.status.as_str() {
            "pending" => (
                StatusCode::ACCEPTED,
                format!(
                    "sandbox {} {why}: {what} is held for approval {} (ghapp approvals approve {})",
                    sb.name(),
                    a.id,
                    a.id
                ),
            ),
            "approved" => (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{what} was approved (approval {}): {}", a.id, a.pr_url),
            ),
            _ => (
                StatusCode::FORBIDDEN,
                format!(
                    "{what} was {} by {} (approval {}): {}",
                    a.status, a.decided_by, a.id, a.reason
                ),
            ),
        };
        p.event.decision = if status == StatusCode::ACCEPTED {
            Decision::Held
        } else {
            Decision::Deny
        };
        p.event.reason = message.clone();
        p.event.status = status.as_u16();
        self.audit.metrics.approval(if a.status == "pending" {
            "held"
        } else {
            "answered"
        });
        let url = self
            .cfg
            .admin_listen
            .map(|l| format!("http://{l}/v1/approvals/{}", a.id))
            .unwrap_or_default();
        match form {
            Form::Graphql => Refusal::graphql(StatusCode::OK, message).response(),
            _ => crate::respond::json_body(
                status,
                "application/json",
                &json!({ "message": message, "approval_id": a.id, "approval_url": url, "status": a.status }),
            ),
        }
    }

    /// Whether pull request `n` of `repo` is one of the sandbox's own (its head a branch the
    /// sandbox may push, in `repo`), as GitHub answers with the sandbox's token.
    pub(crate) async fn own_pull(
        &self,
        sb: &Sandbox,
        repo: &ghapp_gitproto::repo::RepoName,
        n: u64,
    ) -> Result<(), Refusal> {
        let path = format!("/repos/{}/{}/pulls/{n}", repo.owner(), repo.repo());
        let (status, v) = self
            .api_call(sb, repo.owner(), hyper::Method::GET, &path, None, 4 << 20)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Err(Refusal::json(
                StatusCode::NOT_FOUND,
                format!("{repo} has no pull request {n}"),
            ));
        }
        if !status.is_success() {
            return Err(Refusal::json(
                StatusCode::BAD_GATEWAY,
                format!(
                    "cannot read pull request {n} of {repo} to check it: GitHub answered {status}"
                ),
            ));
        }
        let head = v["head"]["ref"].as_str().unwrap_or_default();
        let head_repo = v["head"]["repo"]["full_name"]
            .as_str()
            .and_then(ghapp_gitproto::repo::RepoName::parse);
        crate::graphql::pull_is_own(sb, repo, head, head_repo.as_ref())
            .map_err(|why| Refusal::json(StatusCode::FORBIDDEN, why))
    }

    /// Approves approval `id` on behalf of `by`: the pull request is created at GitHub with the
    /// sandbox's token. A head GitHub no longer has, or a pull request someone else opened
    /// meanwhile, closes the approval with that reason.
    pub(crate) async fn approve(
        &self,
        id: i64,
        by: &str,
    ) -> Result<Approval, (StatusCode, String)> {
        let store = self.approvals_store()?;
        let a = store
            .approval(id)
            .await
            .map_err(db)?
            .ok_or((StatusCode::NOT_FOUND, format!("no approval {id}")))?;
        if a.status != "pending" {
            return Err((
                StatusCode::CONFLICT,
                format!("approval {id} is {}", a.status),
            ));
        }
        let live = self.live();
        let sb = live.sandbox(&a.sandbox).ok_or((
            StatusCode::CONFLICT,
            format!("sandbox {} is gone: deny approval {id} instead", a.sandbox),
        ))?;
        let repo = ghapp_gitproto::repo::RepoName::parse(&a.repo).ok_or((
            StatusCode::CONFLICT,
            format!("approval {id}: bad repository"),
        ))?;
        let path = format!("/repos/{}/{}/pulls", repo.owner(), repo.repo());
        let ask = json!({"title": a.title, "head": a.head, "base": a.base, "body": a.body, "draft": a.draft});
        let (status, body) = self
            .api_call(
                sb,
                repo.owner(),
                hyper::Method::POST,
                &path,
                Some(&ask),
                1 << 20,
            )
            .await
            .map_err(|r| (r.status, r.message))?;
        let (state, reason, pr) = if status == StatusCode::CREATED {
            (
                "approved",
                String::new(),
                body["html_url"].as_str().unwrap_or_default().to_owned(),
            )
        } else {
            let why = github_words(&body);
            let reason = if why.contains("already exists") {
                format!(
                    "a pull request for {} was opened meanwhile by someone else ({why})",
                    a.head
                )
            } else {
                format!(
                    "GitHub refused to create it ({status}: {why}); the head branch may be gone"
                )
            };
            ("closed", reason, String::new())
        };
        store
            .decide(id, state, by, &reason, &pr)
            .await
            .map_err(db)?;
        self.record_decision(&a, state, by, &reason);
        let a = store.approval(id).await.map_err(db)?.unwrap_or(a);
        if state == "closed" {
            return Err((
                StatusCode::CONFLICT,
                format!("approval {id} closed: {reason}"),
            ));
        }
        Ok(a)
    }

    /// Denies approval `id` with `reason`.
    pub(crate) async fn deny(
        &self,
        id: i64,
        by: &str,
        reason: &str,
    ) -> Result<Approval, (StatusCode, String)> {
        let store = self.approvals_store()?;
        if reason.trim().is_empty() {
            return Err((
                StatusCode::BAD_REQUEST,
                "a denial needs a reason (the agent is told it)".into(),
            ));
        }
        let a = store
            .approval(id)
            .await
            .map_err(db)?
            .ok_or((StatusCode::NOT_FOUND, format!("no approval {id}")))?;
        if !store
            .decide(id, "denied", by, reason, "")
            .await
            .map_err(db)?
        {
            return Err((
                StatusCode::CONFLICT,
                format!("approval {id} is {}", a.status),
            ));
        }
        self.record_decision(&a, "denied", by, reason);
        Ok(store.approval(id).await.map_err(db)?.unwrap_or(a))
    }

    fn approvals_store(&self) -> Result<&crate::store::Store, (StatusCode, String)> {
        self.store
            .get()
            .ok_or((StatusCode::SERVICE_UNAVAILABLE, "no state store".to_owned()))
    }

    /// Every decision is an audit event and a metric.
    fn record_decision(&self, a: &Approval, state: &str, by: &str, reason: &str) {
        let mut ev = Event::new(
            &a.sandbox,
            None,
            "POST",
            "admin",
            &format!("/v1/approvals/{}", a.id),
        );
        ev.service = Service::Rest;
        ev.repo = Some(a.repo.clone());
        ev.decision = if state == "approved" {
            Decision::Allow
        } else {
            Decision::Deny
        };
        ev.reason = format!(
            "approval {} {state} by {by}{}",
            a.id,
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            }
        );
        ev.status = 200;
        self.audit.record(&ev);
        self.audit.metrics.approval(match state {
            "approved" => "approved",
            "denied" => "denied",
            _ => "closed",
        });
    }
}

fn db(e: crate::store::StoreError) -> (StatusCode, String) {
    (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// GitHub's message and its errors' messages, in one line.
fn github_words(v: &Value) -> String {
    let mut msg = v["message"].as_str().unwrap_or("no message").to_owned();
    for e in v["errors"].as_array().into_iter().flatten() {
        if let Some(m) = e["message"].as_str() {
            msg.push_str(": ");
            msg.push_str(m);
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_request_is_read_as_github_would_and_bounded() {
        let a = Ask::rest(br#"{"head":"octo-org:agent/x","base":"main","title":"T","draft":true}"#)
            .unwrap();
        assert_eq!(
            (a.head.as_str(), a.base.as_str(), a.title.as_str(), a.draft),
            ("agent/x", "main", "T", true)
        );
        let twice = Ask::rest(br#"{"head":"agent/x","base":"main","base":"release"}"#).unwrap_err();
        assert!(twice.contains("duplicate field `base`"), "{twice}");
        assert!(Ask::rest(br#"{"head":"agent/x"}"#).is_err());
        let long = format!(
            r#"{{"head":"agent/x","base":"main","title":"{}"}}"#,
            "t".repeat(300)
        );
        assert!(
            Ask::rest(long.as_bytes())
                .unwrap_err()
                .contains("title is over 256")
        );
    }
}
