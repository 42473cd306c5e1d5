//! The trust mode, applied: the measurements its verdict needs (GitHub's compare of a pull
//! request, whether a ref is the head of a held or open pull request), and what a verdict
//! does: a pull request held for a person (learning, assisted), a write recorded as a
//! proposal (observe). The verdict itself is [`crate::policy::mode::verdict`], pure.

use ghapp_gitproto::repo::RepoName;
use hyper::StatusCode;
use serde_json::json;

use super::{Answer, DataPlane, Req};
use crate::audit::{Decision, Outcome};
use crate::config::Mode;
use crate::inspect::Growth;
use crate::inspect::observe::Described;
use crate::notify::{Note, safe};
use crate::policy::mode::{self, Kind, Measure, PullHead, Verdict};
use crate::respond::{Form, Refusal};
use crate::sandbox::Sandbox;
use crate::store::{Approval, Proposal};

/// What a pull request asks for.
#[derive(Debug, Clone)]
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

impl DataPlane {
    /// The mode's verdict on `kind` for `sb`.
    pub(super) fn verdict(&self, sb: &Sandbox, kind: &Kind) -> Verdict {
        mode::of_sandbox(sb, kind)
    }

    /// What the mode needs to know of a pull request `head -> base` being created: its size
    /// (assisted mode only: GitHub's compare).
    pub(super) async fn create_kind(
        &self,
        sb: &Sandbox,
        repo: &RepoName,
        ask: &Ask,
    ) -> Result<Kind, Refusal> {
        let measured = if sb.cfg.mode == Mode::Assisted {
            self.github
                .compare(sb, repo, &ask.base, &ask.head)
                .await?
                .measure()
        } else {
            Measure::default()
        };
        Ok(Kind::CreatePull { measured })
    }

    /// What the mode needs to know of pull request `number` (head `head`) moving to `base`:
    /// the change it would then show (assisted mode only).
    pub(super) async fn rebase_kind(
        &self,
        sb: &Sandbox,
        repo: &RepoName,
        number: u64,
        head: &str,
        base: &str,
    ) -> Result<Kind, Refusal> {
        let measured = if sb.cfg.mode == Mode::Assisted {
            self.github.compare(sb, repo, base, head).await?.measure()
        } else {
            Measure::default()
        };
        Ok(Kind::Rebase { number, measured })
    }

    /// The pull request (held, or open at GitHub) whose head `refname` is, in the modes where
    /// it matters (learning, assisted).
    pub(super) async fn pull_head(
        &self,
        sb: &Sandbox,
        repo: &RepoName,
        refname: &str,
    ) -> Result<Option<(PullHead, String)>, Refusal> {
        if !matches!(sb.cfg.mode, Mode::Learning | Mode::Assisted) {
            return Ok(None);
        }
        let Some(branch) = refname.strip_prefix("refs/heads/") else {
            return Ok(None);
        };
        if let Some(store) = self.store.get() {
            let held = store
                .pending_for_head(&repo.to_string(), branch)
                .await
                .map_err(|e| Refusal::text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
            if let Some(a) = held {
                let reviewed = PullHead::Held {
                    id: a.id,
                    reviewed: a.head_sha,
                };
                return Ok(Some((reviewed, a.base)));
            }
        }
        let open = self.github.open_pulls(sb, repo, branch).await?;
        Ok(open.into_iter().next().map(|p| {
            let head = PullHead::Open {
                number: p.number,
                grown: Measure::default(),
            };
            (head, p.base)
        }))
    }

    /// The trust mode on pushes to these refs, before their pack is read: refused now (the
    /// head of a held pull request; of an open one in learning mode), or the open pull
    /// requests whose growth the inspection must measure (assisted).
    pub(super) async fn push_heads(
        &self,
        sb: &Sandbox,
        repo: &RepoName,
        refnames: &[String],
    ) -> Result<Result<Vec<Growth>, (String, String)>, Refusal> {
        let mut growth = Vec::new();
        for refname in refnames {
            let Some((head, base)) = self.pull_head(sb, repo, refname).await? else {
                continue;
            };
            let number = match &head {
                PullHead::Open { number, .. } => Some(*number),
                PullHead::Held { .. } => None,
            };
            match self.verdict(sb, &Kind::Refs { pull: Some(head) }) {
                Verdict::Refuse(why) => return Ok(Err((refname.clone(), why))),
                _ => {
                    if let Some(number) = number {
                        growth.push(Growth {
                            refname: refname.clone(),
                            number,
                            base,
                        });
                    }
                }
            }
        }
        Ok(Ok(growth))
    }

    /// Holds each of `asks` (with why it waits) for a person, or answers its earlier decision;
    /// the answer in `form` (REST: 202 with the approval; GraphQL: the messages as errors).
    pub(super) async fn hold(
        &self,
        r: &Req,
        repo: &RepoName,
        asks: Vec<(Ask, String)>,
        form: Form,
    ) -> Answer {
        let refuse = |status, message: String| {
            r.refuse(Refusal {
                form,
                ..Refusal::text(status, message)
            })
        };
        let Some(store) = self.store.get() else {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "learning and assisted modes need the proxy's state store (state = …)".into(),
            );
        };
        let sb = r.sb();
        let mut messages = Vec::new();
        let mut last = None;
        for (ask, why) in asks {
            // A held request names what the person is shown: its head and base must exist.
            let head_sha = match self.github.branch(sb, repo, &ask.head).await {
                Ok(Some(sha)) => sha,
                Ok(None) => {
                    return refuse(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!(
                            "the head branch {} does not exist in {repo}: push it first, then open the pull request",
                            ask.head
                        ),
                    );
                }
                Err(e) => return r.refuse(Refusal { form, ..e }),
            };
            let base_sha = match self.github.branch(sb, repo, &ask.base).await {
                Ok(Some(sha)) => sha,
                Ok(None) => {
                    return refuse(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("the base branch {} does not exist in {repo}", ask.base),
                    );
                }
                Err(e) => return r.refuse(Refusal { form, ..e }),
            };
            let asked = Approval::asked(
                sb.name(),
                &repo.to_string(),
                &ask.head,
                &ask.base,
                &ask.title,
                &ask.body,
                ask.draft,
                (&head_sha, &base_sha),
            );
            let a = match store.hold(&asked).await {
                Ok((a, new)) => {
                    if new {
                        self.notify_held(&a);
                    }
                    a
                }
                Err(crate::store::StoreError::Full(n)) => {
                    return refuse(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!(
                            "sandbox {} has {n} pull requests waiting for approval: wait for a decision",
                            sb.name()
                        ),
                    );
                }
                Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            };
            let what = format!("pull request {} -> {} in {}", a.head, a.base, a.repo);
            let said = match a.status.as_str() {
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
                        "{what} was {} by {} (approval {}): {}; to ask again, push new commits or change the title or body",
                        a.status, a.decided_by, a.id, a.reason
                    ),
                ),
            };
            self.audit.metrics.approval(if a.status == "pending" {
                "held"
            } else {
                "answered"
            });
            messages.push(said.1.clone());
            last = Some((a, said));
        }
        let Some((a, (status, message))) = last else {
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, "nothing to hold".into());
        };
        let several = messages.len() > 1;
        let message = if several {
            format!(
                "{}; nothing in the request was sent: send the others again on their own",
                messages.join("; ")
            )
        } else {
            message
        };
        let outcome = Outcome {
            decision: if status == StatusCode::ACCEPTED {
                Decision::Held
            } else {
                Decision::Deny
            },
            reason: message.clone(),
            status: if form == Form::Graphql {
                200
            } else {
                status.as_u16()
            },
            repo: Some(repo.to_string()),
            ..r.outcome()
        };
        let resp = match form {
            Form::Graphql => Refusal::graphql(StatusCode::OK, message).response(),
            _ => {
                // A decided request is the proxy's refusal, said as every other one is.
                let message = if status == StatusCode::ACCEPTED {
                    message
                } else {
                    format!("ghapp proxy: {message}")
                };
                crate::respond::json_body(
                    status,
                    "application/json",
                    &json!({ "message": message, "approval_id": a.id, "approval_url": self.approval_url(a.id), "status": a.status }),
                )
            }
        };
        (resp, outcome)
    }

    /// Records what a sandbox in observe mode asked for as proposals (each of `what`: its
    /// kind and description), and refuses the request naming them (JSON for REST, GraphQL's
    /// `errors` for GraphQL).
    pub(super) async fn propose(
        &self,
        r: &Req,
        repo: &RepoName,
        what: Vec<(&'static str, Described, String)>,
        form: Form,
    ) -> Answer {
        let sb = r.sb();
        let mut ids = Vec::new();
        let mut said = Vec::new();
        for (kind, d, words) in what {
            let not = if kind == "pull_request" {
                "created"
            } else {
                "done"
            };
            match self.record_proposal(sb, repo, kind, d).await {
                Ok(id) => {
                    said.push(format!(
                        "{words} was recorded as proposal {id} (ghapp proposals show {id}), not {not}"
                    ));
                    ids.push(id);
                }
                Err(e) => {
                    return r.refuse(Refusal {
                        form,
                        ..Refusal::text(StatusCode::SERVICE_UNAVAILABLE, e)
                    });
                }
            }
        }
        // GraphQL clients read errors from a 200 (as GitHub answers them).
        let status = if form == Form::Graphql {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        let message = format!(
            "sandbox {} is in observe mode: {}",
            sb.name(),
            said.join("; ")
        );
        let refusal = Refusal {
            form,
            ..Refusal::text(status, message)
        };
        let (resp, mut outcome) = r.refuse(refusal);
        outcome.decision = Decision::Proposed;
        outcome.proposal = ids.first().copied();
        outcome.repo = Some(repo.to_string());
        (resp, outcome)
    }

    /// Records a proposal in the state store; its id.
    pub(super) async fn record_proposal(
        &self,
        sb: &Sandbox,
        repo: &RepoName,
        kind: &'static str,
        d: Described,
    ) -> Result<i64, String> {
        let Some(store) = self.store.get() else {
            return Err("observe mode needs the proxy's state store (state = …)".into());
        };
        let p = store
            .propose(
                &Proposal {
                    id: 0,
                    sandbox: sb.name().to_owned(),
                    repo: repo.to_string(),
                    kind: kind.to_owned(),
                    detail: d.detail,
                    diff: d.diff,
                    bundle_bytes: None,
                    created_at: 0,
                },
                d.bundle.as_deref(),
            )
            .await
            .map_err(|e| e.to_string())?;
        self.audit.metrics.proposal(kind);
        self.notify.send(Note {
            event: "proposed",
            sandbox: sb.name().to_owned(),
            repo: Some(repo.to_string()),
            id: Some(p.id),
            text: format!(
                "ghapp: sandbox {} in observe mode proposed a {} in {repo}: see it with `ghapp proposals show {}`",
                safe(sb.name(), 64),
                kind.replace('_', " "),
                p.id
            ),
            link: None,
        });
        Ok(p.id)
    }

    /// Tells `[notify]`'s receivers that `sb` is refused for its budget (`refusal`).
    pub(super) fn notify_budget(&self, sb: &Sandbox, repo: &RepoName, refusal: &Refusal) {
        self.notify.send(Note {
            event: "budget",
            sandbox: sb.name().to_owned(),
            repo: Some(repo.to_string()),
            id: None,
            text: format!(
                "ghapp: sandbox {} is refused for now: {}",
                safe(sb.name(), 64),
                safe(&refusal.message, 300)
            ),
            link: None,
        });
    }

    /// Tells `[notify]`'s receivers that approval `a` waits for a person.
    fn notify_held(&self, a: &Approval) {
        let link = self
            .notify
            .page(self.cfg.admin_listen)
            .map(|p| format!("{p}/approvals#approval-{}", a.id));
        self.notify.send(Note {
            event: "held",
            sandbox: a.sandbox.clone(),
            repo: Some(a.repo.clone()),
            id: Some(a.id),
            text: format!(
                "ghapp: sandbox {} asks to open a pull request in {} ({} -> {}): \"{}\". Approval {} waits for a person.",
                safe(&a.sandbox, 64),
                a.repo,
                safe(&a.head, 100),
                safe(&a.base, 100),
                safe(&a.title, 120),
                a.id
            ),
            link,
        });
    }
}

/// A pull request as a proposal's detail.
pub(crate) fn pull_detail(ask: &Ask) -> Described {
    Described::only(json!({
        "title": ask.title,
        "body": ask.body,
        "head": ask.head,
        "base": ask.base,
        "draft": ask.draft,
    }))
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
