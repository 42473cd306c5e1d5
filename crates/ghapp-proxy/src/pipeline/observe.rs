//! Observe mode: the sandbox reads with a read-only token; what it would
//! change is recorded as a proposal instead.
//!
//! - `info/refs?service=git-receive-pack`: GitHub refuses a read-only token the receive-pack
//!   advertisement, so the proxy makes it from the upload-pack one (the same refs, receive-pack's
//!   capabilities) and git goes on to send its push.
//! - The push is read whole into a quarantine (never sent on), described (refs, commits, paths,
//!   diff; [`crate::inspect::observe`]) and recorded; git is told, ref by ref,
//!   `observe mode: recorded as proposal N, not pushed`.
//! - A pull request's creation (REST or GraphQL) is recorded with its title, body, head and base,
//!   and refused with a message naming the proposal.

use ghapp_core::cache::CachedToken;
use ghapp_gitproto::receive_pack;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};

use super::push::refused;
use super::{Answer, DataPlane, Req};
use crate::audit::{Decision, Meter, Outcome, Service};
use crate::body::Section;
use crate::policy::{Plan, PushRefusal};
use crate::respond::{self, Refusal};
use crate::sandbox::Sandbox;
use crate::{body, inspect};

/// The largest upload-pack advertisement read (a repository's refs).
const MAX_ADVERTISEMENT: usize = 64 << 20;

impl DataPlane {
    /// The receive-pack advertisement for a sandbox in observe mode, made from GitHub's
    /// upload-pack advertisement (`url` is the receive-pack one's).
    pub(super) async fn observe_refs(
        &self,
        mut url: reqwest::Url,
        token: &CachedToken,
        r: &Req,
    ) -> Answer {
        url.set_query(Some("service=git-upload-pack"));
        let auth = ghapp_gitproto::basic::encode("x-access-token", token.token.expose());
        let asked = self
            .upstream
            .get(url)
            .header(hyper::header::AUTHORIZATION, auth)
            .header(hyper::header::USER_AGENT, "git/ghapp-proxy")
            .send();
        let wait = crate::github::ANSWER_WAIT;
        let answer = match tokio::time::timeout(wait, asked).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                return r.refuse(Refusal::text(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "GitHub is unreachable: {}",
                        ghapp_core::client::root_cause(&e)
                    ),
                ));
            }
            Err(_) => {
                return r.refuse(Refusal::text(
                    StatusCode::GATEWAY_TIMEOUT,
                    "GitHub did not answer the refs in time",
                ));
            }
        };
        let status = answer.status();
        let read = body::read_bounded(answer, MAX_ADVERTISEMENT, wait).await;
        let made = match read {
            Ok(b) if status == StatusCode::OK => receive_pack::advertisement_from_upload(&b),
            Ok(b) => {
                // GitHub's own refusal (the repository gone, the token refused), as it said it.
                let o = Outcome {
                    status: status.as_u16(),
                    upstream_status: Some(status.as_u16()),
                    reason: "GitHub refused the refs".into(),
                    ..r.outcome()
                };
                return (respond::text(status, &String::from_utf8_lossy(&b)), o);
            }
            Err(e) => Err(e),
        };
        match made {
            Ok(adv) => {
                let o = Outcome {
                    decision: Decision::Allow,
                    status: 200,
                    upstream_status: Some(status.as_u16()),
                    reason: "observe mode: receive-pack advertisement made from upload-pack's"
                        .into(),
                    token: Some(token.token.fingerprint()),
                    ..r.outcome()
                };
                let mut resp = Response::new(respond::full(adv));
                resp.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-git-receive-pack-advertisement"),
                );
                resp.headers_mut().insert(
                    hyper::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                );
                (resp, o)
            }
            Err(why) => r.refuse(Refusal::text(
                StatusCode::BAD_GATEWAY,
                format!("cannot read GitHub's refs: {why}"),
            )),
        }
    }

    /// A push from a sandbox in observe mode: recorded as a proposal, never sent on; every ref
    /// answered `ng` the git way.
    pub(super) async fn observe_push(
        &self,
        section: Section,
        body: Incoming,
        r: &Req,
        plan: &Plan,
        meter: &Meter,
        outcome: Outcome,
    ) -> Answer {
        let sb = r.sb();
        let push = match self.git_push(r, &section.commands, plan).await {
            Ok(push) => push,
            Err(refusal) => {
                let (resp, o) = r.refuse(refusal);
                return (
                    resp,
                    Outcome {
                        ref_updates: outcome.ref_updates,
                        ..o
                    },
                );
            }
        };
        let described = inspect::observe::describe(
            self.git.clone(),
            push,
            section.bytes,
            section.commands.consumed,
            body,
            meter.bytes_in.clone(),
        )
        .await;
        let recorded = match described {
            Ok(d) => self.record_proposal(sb, &plan.repo, "push", d).await,
            Err(e) => Err(e),
        };
        let refuse_all =
            |why: &str, message: String| PushRefusal::every_ref(&section.commands, why, message);
        let proposal = match recorded {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!("observe mode: cannot record the push: {e}");
                return refused(
                    refuse_all(
                        "observe mode: not pushed, not recorded",
                        format!(
                            "ghapp proxy: sandbox {} is in observe mode; the push could not be recorded: {e}",
                            sb.name()
                        ),
                    ),
                    outcome,
                );
            }
        };
        let (resp, o) = refused(
            refuse_all(
                &format!("observe mode: recorded as proposal {proposal}, not pushed"),
                format!(
                    "ghapp proxy: sandbox {} is in observe mode: the push was recorded as proposal {proposal} (ghapp proposals show {proposal}), not pushed",
                    sb.name()
                ),
            ),
            outcome,
        );
        let o = Outcome {
            decision: Decision::Proposed,
            proposal: Some(proposal),
            ..o
        };
        (resp, o)
    }
}

/// Whether a request is observe mode's to answer: a sandbox in observe mode asking for the
/// receive-pack advertisement.
pub(super) fn answers_refs(sb: &Sandbox, service: Service, get: bool) -> bool {
    get && sb.cfg.mode == crate::config::Mode::Observe && service == Service::GitReceivePack
}
