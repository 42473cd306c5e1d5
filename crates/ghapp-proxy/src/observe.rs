//! Observe mode (design section 15): the sandbox reads with a read-only token; what it would
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

use std::sync::Arc;

use ghapp_core::cache::CachedToken;
use ghapp_gitproto::receive_pack;
use ghapp_gitproto::repo::RepoName;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::approvals::Ask;
use crate::audit::{Decision, Pending};
use crate::body::Section;
use crate::inspect::observe::Described;
use crate::respond::{Form, Refusal};
use crate::sandbox::Sandbox;
use crate::store::Proposal;
use crate::transport::Origin;
use crate::{Body, Proxy, inspect, policy, respond, upstream};

/// The largest upload-pack advertisement read (a repository's refs).
const MAX_ADVERTISEMENT: usize = 64 << 20;

impl Proxy {
    /// The receive-pack advertisement for a sandbox in observe mode, made from GitHub's
    /// upload-pack advertisement (`url` is the receive-pack one's).
    pub(crate) async fn observe_refs(
        &self,
        mut url: reqwest::Url,
        token: &CachedToken,
        mut p: Pending,
    ) -> Response<Body> {
        url.set_query(Some("service=git-upload-pack"));
        let auth = ghapp_gitproto::basic::encode("x-access-token", token.token.expose());
        let asked = self
            .upstream
            .get(url)
            .header(hyper::header::AUTHORIZATION, auth)
            .header(hyper::header::USER_AGENT, "git/ghapp-proxy")
            .send();
        let answer = match tokio::time::timeout(upstream::ANSWER_WAIT, asked).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return p.refuse(Refusal::text(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "GitHub is unreachable: {}",
                        ghapp_core::client::root_cause(&e)
                    ),
                ));
            }
            Err(_) => {
                return p.refuse(Refusal::text(
                    StatusCode::GATEWAY_TIMEOUT,
                    "GitHub did not answer the refs in time",
                ));
            }
        };
        let status = answer.status();
        p.event.upstream_status = Some(status.as_u16());
        let read = upstream::read_bounded(answer, MAX_ADVERTISEMENT, upstream::ANSWER_WAIT).await;
        let made = match read {
            Ok(b) if status == StatusCode::OK => receive_pack::advertisement_from_upload(&b),
            Ok(b) => {
                // GitHub's own refusal (the repository gone, the token refused), as it said it.
                p.event.status = status.as_u16();
                p.event.reason = "GitHub refused the refs".into();
                return respond::text(status, &String::from_utf8_lossy(&b));
            }
            Err(e) => Err(e),
        };
        match made {
            Ok(adv) => {
                p.event.decision = Decision::Allow;
                p.event.status = 200;
                p.event.reason =
                    "observe mode: receive-pack advertisement made from upload-pack's".into();
                p.bytes_out = adv.len() as u64;
                let mut r = Response::new(respond::full(adv));
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-git-receive-pack-advertisement"),
                );
                r.headers_mut().insert(
                    hyper::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                );
                r
            }
            Err(why) => p.refuse(Refusal::text(
                StatusCode::BAD_GATEWAY,
                format!("cannot read GitHub's refs: {why}"),
            )),
        }
    }

    /// A push from a sandbox in observe mode: recorded as a proposal, never sent on; every ref
    /// answered `ng` the git way.
    pub(crate) async fn observe_push(
        &self,
        section: Section,
        body: Incoming,
        o: &Origin,
        plan: &policy::Plan,
        p: &mut Pending,
    ) -> Response<Body> {
        let sb = &o.sandbox;
        let push = match self.git_push(sb, &section.commands, plan).await {
            Ok(push) => push,
            Err(r) => return p.refuse(r),
        };
        let described = inspect::observe::describe(
            self.git.clone(),
            push,
            section.bytes,
            section.commands.consumed,
            body,
            p.bytes_in.clone(),
        )
        .await;
        let recorded = match described {
            Ok(d) => self.propose(sb, &plan.repo, "push", d).await,
            Err(e) => Err(e),
        };
        let refuse_all = |why: &str, message: String| {
            policy::PushRefusal::every_ref(&section.commands, why, message)
        };
        let proposal = match recorded {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!("observe mode: cannot record the push: {e}");
                return crate::push::push_refused(
                    p,
                    refuse_all(
                        "observe mode: not pushed, not recorded",
                        format!(
                            "ghapp proxy: sandbox {} is in observe mode; the push could not be recorded: {e}",
                            sb.name()
                        ),
                    ),
                );
            }
        };
        p.event.proposal = Some(proposal);
        let r = crate::push::push_refused(
            p,
            refuse_all(
                &format!("observe mode: recorded as proposal {proposal}, not pushed"),
                format!(
                    "ghapp proxy: sandbox {} is in observe mode: the push was recorded as proposal {proposal} (ghapp proposals show {proposal}), not pushed",
                    sb.name()
                ),
            ),
        );
        p.event.decision = Decision::Proposed;
        r
    }

    /// A pull request a sandbox in observe mode asked for: recorded, refused with a message
    /// naming the proposal (JSON for REST, GraphQL's `errors` for GraphQL).
    pub(crate) async fn propose_pull(
        &self,
        sb: &Sandbox,
        repo: &RepoName,
        ask: Ask,
        form: Form,
        p: &mut Pending,
    ) -> Response<Body> {
        let detail = json!({
            "title": ask.title,
            "body": ask.body,
            "head": ask.head,
            "base": ask.base,
            "draft": ask.draft,
        });
        let refusal = |status, message: String| Refusal {
            form,
            ..Refusal::text(status, message)
        };
        match self
            .propose(sb, repo, "pull_request", Described::only(detail))
            .await
        {
            Ok(id) => {
                // GraphQL clients read errors from a 200 (as GitHub answers them).
                let status = if form == Form::Graphql {
                    StatusCode::OK
                } else {
                    StatusCode::FORBIDDEN
                };
                let r = p.refuse(refusal(
                    status,
                    format!(
                        "sandbox {} is in observe mode: the pull request {} -> {} in {repo} was recorded as proposal {id} (ghapp proposals show {id}), not created",
                        sb.name(),
                        ask.head,
                        ask.base
                    ),
                ));
                p.event.decision = Decision::Proposed;
                p.event.proposal = Some(id);
                r
            }
            Err(e) => p.refuse(refusal(StatusCode::SERVICE_UNAVAILABLE, e)),
        }
    }

    /// Records a proposal in the state store; its id.
    async fn propose(
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
        Ok(p.id)
    }
}

/// Whether a request is observe mode's to answer: a sandbox in observe mode asking for the
/// receive-pack advertisement.
pub(crate) fn answers_refs(sb: &Arc<Sandbox>, service: crate::audit::Service, get: bool) -> bool {
    get && sb.cfg.mode == crate::config::Mode::Observe
        && service == crate::audit::Service::GitReceivePack
}
