//! Bodies the policy reads whole (bounded) before they are sent: a pull request's creation,
//! change or merge, an LFS batch, a GraphQL document, a REST write. Each write among them is
//! decided as every write is ([`super::writes`]).

use bytes::Bytes;
use hyper::StatusCode;
use hyper::body::Incoming;

use super::modes::Ask;
use super::{Answer, Checked, DataPlane, Req};
use crate::audit::Meter;
use crate::body;
use crate::policy::mode::{Kind, Verdict};
use crate::policy::mutations::{Planned, pull_is_own};
use crate::policy::{BodyPlan, Plan, lfs_batch, pull_head};
use crate::respond::{Form, Refusal};

impl DataPlane {
    /// Reads a body the policy must see and decides it as its plan says.
    pub(super) async fn checked(
        &self,
        body: Incoming,
        headers: &hyper::HeaderMap,
        plan: &Plan,
        r: &Req,
        meter: &Meter,
    ) -> Result<Checked, Answer> {
        // A merge is the trust mode's to refuse before anything is read.
        if let BodyPlan::MergePull(_) = plan.body
            && let Verdict::Refuse(why) = self.verdict(r.sb(), &Kind::Merge)
        {
            meter.read(body::drain_refused(body).await);
            return Err(r.refuse(Refusal::json(
                StatusCode::FORBIDDEN,
                format!(
                    "sandbox {} may not merge pull requests: {why}",
                    r.sb().name()
                ),
            )));
        }
        let bytes = match body::whole(body, headers, &self.gate.limits, &self.gate.budget).await {
            Ok(b) => b,
            Err(refusal) => {
                if refusal.status == StatusCode::SERVICE_UNAVAILABLE {
                    self.audit.metrics.buffer_budget_exhausted.inc();
                }
                return Err(r.refuse(refusal));
            }
        };
        meter.read(bytes.len() as u64);
        let sb = r.sb();
        let repo = &plan.repo;
        let plain = |bytes: Bytes| Checked {
            body: bytes,
            repo: None,
            reason: String::new(),
            mutation: false,
            review: Vec::new(),
        };
        let planned = match &plan.body {
            BodyPlan::Graphql => return self.graphql(r, bytes).await,
            BodyPlan::LfsBatch => {
                if let Err(refusal) = lfs_batch(sb, repo, &bytes) {
                    return Err(r.refuse(refusal));
                }
                let upload = matches!(
                    ghapp_gitproto::lfs::operation(&bytes),
                    Ok(ghapp_gitproto::lfs::Operation::Upload)
                );
                if !upload {
                    return Ok(plain(bytes));
                }
                ("Git LFS upload".to_owned(), Planned::Other)
            }
            BodyPlan::PullHead => {
                if let Err(refusal) = pull_head(sb, repo, &bytes) {
                    return Err(r.refuse(refusal));
                }
                let ask = match Ask::rest(&bytes) {
                    Ok(a) => a,
                    Err(why) => {
                        return Err(r.refuse(Refusal::json(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            format!("the pull request: {why}"),
                        )));
                    }
                };
                let p = Planned::CreatePull {
                    head: ask.head,
                    base: ask.base,
                    title: ask.title,
                    body: ask.body,
                    draft: ask.draft,
                };
                (format!("POST /repos/{repo}/pulls"), p)
            }
            BodyPlan::OwnPull(n) | BodyPlan::MergePull(n) => {
                let n = *n;
                let pull = match self.github.pull(sb, repo, n).await {
                    Ok(Some(p)) => p,
                    Ok(None) => {
                        return Err(r.refuse(Refusal::json(
                            StatusCode::NOT_FOUND,
                            format!("{repo} has no pull request {n}"),
                        )));
                    }
                    Err(e) => return Err(r.refuse(e)),
                };
                if let Err(why) = pull_is_own(sb, repo, &pull.head, pull.head_repo.as_ref()) {
                    return Err(r.refuse(Refusal::json(StatusCode::FORBIDDEN, why)));
                }
                let p = if plan.body == BodyPlan::MergePull(n) {
                    Planned::Merge
                } else {
                    match new_base(&bytes) {
                        Ok(Some(base)) if base != pull.base => Planned::Rebase {
                            number: n,
                            head: pull.head,
                            base,
                        },
                        Ok(_) => Planned::Other,
                        Err(why) => {
                            return Err(r.refuse(Refusal::json(
                                StatusCode::UNPROCESSABLE_ENTITY,
                                format!("the pull request's change: {why}"),
                            )));
                        }
                    }
                };
                (format!("pull request {n}"), p)
            }
            BodyPlan::GitWrite(w) => match crate::policy::git_write(w, &bytes) {
                Ok(p) => (plan.url.path().to_owned(), p),
                Err(why) => {
                    return Err(r.refuse(Refusal::json(StatusCode::UNPROCESSABLE_ENTITY, why)));
                }
            },
            BodyPlan::Whole => ("the request".to_owned(), Planned::Other),
            BodyPlan::None | BodyPlan::Stream | BodyPlan::Push => return Ok(plain(bytes)),
        };
        let form = if plan.body == BodyPlan::LfsBatch {
            Form::Lfs
        } else {
            Form::Json
        };
        let decided = self.decide_writes(sb, repo, &[planned], form).await;
        let review = self.answer_writes(r, repo, decided, form).await?;
        if review.is_empty() {
            return Ok(plain(bytes));
        }
        // The review flavour: the pull request is opened as a draft, whatever it asked.
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        v["draft"] = serde_json::Value::Bool(true);
        Ok(Checked {
            review,
            ..plain(Bytes::from(v.to_string()))
        })
    }
}

/// The fields of `PATCH …/pulls/{number}` the policy reads. Declared fields are refused when
/// given twice (`{"base":"main","base":"release"}` cannot be weighed on one and sent with the
/// other).
#[derive(serde::Deserialize)]
struct PullChange {
    #[serde(default)]
    base: Option<String>,
}

/// The base a pull request's change moves it to, if it does.
fn new_base(body: &[u8]) -> Result<Option<String>, String> {
    let v: PullChange = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(v.base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_base_is_read_once() {
        assert_eq!(new_base(br#"{"title":"t"}"#), Ok(None));
        assert_eq!(
            new_base(br#"{"base":"release"}"#),
            Ok(Some("release".into()))
        );
        assert!(new_base(br#"{"base":"main","base":"release"}"#).is_err());
    }
}
