//! A person's decision on a held pull request (learning and assisted modes), through the admin
//! API, the approvals page or `ghapp approvals`: approved, the proxy opens the pull request at
//! GitHub with the sandbox's token, exactly as it was reviewed (while its head is still at the
//! commit the person was shown); denied, the agent is told why. Every decision is an audit
//! event and a metric.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::ControlPlane;
use crate::audit::{Decision, Event, Head, Outcome, Service};
use crate::store::{Approval, Store, StoreError};

impl ControlPlane {
    /// The checks GitHub has on `a`'s head commit (the one the person is shown), or why they
    /// cannot be read.
    pub(crate) async fn checks(&self, a: &Approval) -> crate::admin_api::Checks {
        let Some(repo) = ghapp_gitproto::repo::RepoName::parse(&a.repo) else {
            return crate::admin_api::Checks::default();
        };
        let head = if a.head_sha.is_empty() {
            &a.head
        } else {
            &a.head_sha
        };
        match self.data.github.checks(&repo, head).await {
            Ok(checks) => crate::admin_api::Checks {
                checks,
                unavailable: None,
            },
            Err(why) => crate::admin_api::Checks {
                checks: Vec::new(),
                unavailable: Some(why),
            },
        }
    }

    /// Approves approval `id` on behalf of `by`: the pull request is created at GitHub with the
    /// sandbox's token, from the head the person was shown. A head that moved since, or that
    /// GitHub no longer has, or a pull request someone else opened meanwhile, closes the
    /// approval with that reason.
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
        let live = self.data.live.get();
        let sb = live.sandbox(&a.sandbox).ok_or((
            StatusCode::CONFLICT,
            format!("sandbox {} is gone: deny approval {id} instead", a.sandbox),
        ))?;
        let repo = ghapp_gitproto::repo::RepoName::parse(&a.repo).ok_or((
            StatusCode::CONFLICT,
            format!("approval {id}: bad repository"),
        ))?;
        let gh = &self.data.github;
        let now = gh
            .branch(sb, &repo, &a.head)
            .await
            .map_err(|r| (r.status, r.message))?;
        let moved = match (&now, a.head_sha.is_empty()) {
            (None, _) => Some(format!("its head branch {} is gone", a.head)),
            (Some(sha), false) if *sha != a.head_sha => Some(format!(
                "its head {} moved from {} (what was reviewed) to {}: the sandbox may ask again",
                a.head,
                short(&a.head_sha),
                short(sha)
            )),
            _ => None,
        };
        let (state, reason, pr) = if let Some(why) = moved {
            ("closed", why, String::new())
        } else {
            let ask = json!({"title": a.title, "head": a.head, "base": a.base, "body": a.body, "draft": a.draft});
            let (status, body) = gh
                .create_pull(sb, &repo, &ask)
                .await
                .map_err(|r| (r.status, r.message))?;
            if status == StatusCode::CREATED {
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
            }
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

    fn approvals_store(&self) -> Result<&Store, (StatusCode, String)> {
        self.store()
            .ok_or((StatusCode::SERVICE_UNAVAILABLE, "no state store".to_owned()))
    }

    /// Every decision is an audit event and a metric.
    fn record_decision(&self, a: &Approval, state: &str, by: &str, reason: &str) {
        let head = Head {
            sandbox: a.sandbox.clone(),
            source: None,
            method: "POST".into(),
            host: "admin".into(),
            path: format!("/v1/approvals/{}", a.id),
        };
        let outcome = Outcome {
            service: Service::Rest,
            repo: Some(a.repo.clone()),
            decision: if state == "approved" {
                Decision::Allow
            } else {
                Decision::Deny
            },
            reason: format!(
                "approval {} {state} by {by}{}",
                a.id,
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            ),
            status: 200,
            ..Outcome::default()
        };
        self.data.audit.record(&Event::of(&head, outcome));
        self.data.audit.metrics.approval(match state {
            "approved" => "approved",
            "denied" => "denied",
            _ => "closed",
        });
    }
}

fn db(e: StoreError) -> (StatusCode, String) {
    (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

fn short(oid: &str) -> &str {
    oid.get(..7).unwrap_or(oid)
}

/// GitHub's message and its errors' messages, in one line, any credential redacted.
fn github_words(v: &Value) -> String {
    let mut msg = v["message"].as_str().unwrap_or("no message").to_owned();
    for e in v["errors"].as_array().into_iter().flatten() {
        if let Some(m) = e["message"].as_str() {
            msg.push_str(": ");
            msg.push_str(m);
        }
    }
    ghapp_gitproto::secrets::redact(&msg).into_owned()
}
