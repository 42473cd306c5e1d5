//! The data plane: what happens to a sandbox's request, in one direction.
//!
//! ```text
//! transport ─▶ route ─▶ decide ─▶ body / facts ─▶ decide ─▶ upstream ─▶ audit
//!              router    policy    push, checked,   policy::write,  upstream   Event::of
//!                                  graphql, writes  policy::mode
//! ```
//!
//! [`DataPlane::handle`] names the request ([`crate::router`]), decides it on its head
//! ([`crate::policy::decide`]), reads what the policy must see (a push's command section and
//! pack, a REST or GraphQL body) and gathers the facts of any write ([`crate::inspect`], the
//! proxy's own GitHub reads in [`crate::github`]), decides the write with the rules and the
//! trust mode ([`crate::policy::write`], [`crate::policy::mode`]), and forwards it with the
//! sandbox's token ([`crate::upstream`]). Each stage returns what it decided; the audit event
//! is assembled once from that ([`crate::audit::Event::of`]) and recorded when the answer has
//! been streamed.
//!
//! The sandbox table is a [`Snapshot`] the control plane swaps; the data plane only reads it.

mod checked;
pub(crate) mod front;
mod graphql;
mod modes;
mod observe;
mod push;
mod review;
mod writes;

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::audit::telemetry;
use crate::audit::{Audit, Decision, Event, Meter, Outcome, Pending, Service};
use crate::ca::Ca;
use crate::config::ProxyConfig;
use crate::github::GitHub;
use crate::limits::Gate;
use crate::live::Snapshot;
use crate::policy::{Action, BodyPlan};
use crate::respond::{Body, Refusal};
use crate::router::{Hosts, with_port};
use crate::sandbox::{Origin, Sandbox};
use crate::store::Store;
use crate::tokens::Tokens;
use crate::upstream::{Sent, Upstream, forward_headers};
use crate::{body, inspect, lfs, upstream};

/// An answer, and what the audit says of it.
pub(crate) type Answer = (Response<Body>, Outcome);

/// The data plane: everything a request needs, nothing it changes but caches.
pub(crate) struct DataPlane {
    pub cfg: Arc<ProxyConfig>,
    pub live: Arc<Snapshot>,
    pub hosts: Hosts,
    pub ca: Ca,
    pub gate: Arc<Gate>,
    pub audit: Arc<Audit>,
    pub tokens: Arc<Tokens>,
    pub github: Arc<dyn GitHub>,
    pub upstream: reqwest::Client,
    /// Push inspection's git: mirrors and quarantines under `spool_dir`.
    pub git: Arc<inspect::Git>,
    /// LFS storage hosts each sandbox may reach, from GitHub's batch answers.
    pub lfs: lfs::Grants,
    /// The state store (held and proposed writes), once the proxy has started.
    pub store: OnceLock<Store>,
    /// What sandboxes may spend of GitHub's limits.
    pub budgets: crate::budget::Budgets,
    /// Where the proxy says that something waits for a person.
    pub notify: crate::notify::Notifier,
    /// Per sandbox, the signal that closes its tunnels when it is cut off.
    cuts: Mutex<std::collections::HashMap<String, tokio_util::sync::CancellationToken>>,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// One request being decided: who asks, and what the policy named it.
pub(crate) struct Req {
    pub origin: Origin,
    pub service: Service,
    /// `owner/repo` as configured, once known.
    pub repo: Option<String>,
}

impl Req {
    pub(crate) fn sb(&self) -> &Arc<Sandbox> {
        &self.origin.sandbox
    }

    /// What the audit says so far: the service and repository, refused.
    pub(crate) fn outcome(&self) -> Outcome {
        Outcome {
            service: self.service,
            repo: self.repo.clone(),
            ..Outcome::default()
        }
    }

    /// The proxy answers with `r`.
    pub(crate) fn refuse(&self, r: Refusal) -> Answer {
        let o = Outcome::refused(self.service, self.repo.clone(), &r);
        (r.response(), o)
    }
}

/// What a checked body came to: the bytes to send, the repository whose owner's token carries
/// them (when it is not the route's), and the audit's reason.
pub(crate) struct Checked {
    pub body: Bytes,
    pub repo: Option<ghapp_gitproto::repo::RepoName>,
    pub reason: String,
    /// A GraphQL mutation: content creation, for the budgets.
    pub mutation: bool,
    /// Heads of pull requests it opens as drafts whose reviewers are then requested.
    pub review: Vec<String>,
}

/// The shape of a refusal that clients of `service` read.
fn form_of(service: Service) -> crate::respond::Form {
    use crate::respond::Form;
    match service {
        Service::Rest => Form::Json,
        Service::Graphql => Form::Graphql,
        Service::Lfs => Form::Lfs,
        _ => Form::Text,
    }
}

impl DataPlane {
    /// The budgets for a request about to be sent ([`crate::budget`]): an API request waits
    /// while its installation is at the reserve; a content-creating one (a push, a REST write,
    /// a GraphQL mutation) spends its sandbox's share, slowed past half of it.
    async fn spend(
        &self,
        r: &Req,
        method: &hyper::Method,
        mutation: bool,
        owner: &str,
    ) -> Result<(), Refusal> {
        let form = form_of(r.service);
        match r.service {
            Service::Rest => self.budgets.primary(owner, "core", form)?,
            Service::Graphql => self.budgets.primary(owner, "graphql", form)?,
            _ => {}
        }
        let sb = r.sb();
        let live = self.live.get();
        let weight_of = move |name: &str| live.sandbox(name).map_or(1, |s| s.cfg.weight);
        if r.service == Service::Graphql {
            // GitHub's secondary limit counts a query 1 point, a mutation 5.
            let cost = if mutation { 5 } else { 1 };
            let delay = self
                .budgets
                .points(
                    self.store.get(),
                    sb.name(),
                    sb.cfg.weight,
                    &weight_of,
                    cost,
                    form,
                )
                .await?;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
        let creates = match r.service {
            Service::GitReceivePack => *method == hyper::Method::POST,
            Service::Rest => !matches!(*method, hyper::Method::GET | hyper::Method::HEAD),
            Service::Graphql => mutation,
            _ => false,
        };
        if !creates {
            return Ok(());
        }
        let delay = self
            .budgets
            .content(self.store.get(), sb.name(), sb.cfg.weight, &weight_of, form)
            .await?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }
}

impl DataPlane {
    #[expect(
        clippy::too_many_arguments,
        reason = "the parts the proxy is built from, once"
    )]
    pub(crate) fn new(
        cfg: Arc<ProxyConfig>,
        live: Arc<Snapshot>,
        hosts: Hosts,
        ca: Ca,
        audit: Arc<Audit>,
        tokens: Arc<Tokens>,
        github: Arc<dyn GitHub>,
        upstream: reqwest::Client,
        git: Arc<inspect::Git>,
    ) -> DataPlane {
        let budget = cfg.budget;
        let notify =
            crate::notify::Notifier::new(cfg.notify.clone(), upstream.clone(), audit.clone());
        DataPlane {
            notify,
            gate: Arc::new(Gate::new(cfg.limits.clone())),
            cfg,
            live,
            hosts,
            ca,
            audit,
            tokens,
            github,
            upstream,
            git,
            lfs: lfs::Grants::default(),
            store: OnceLock::new(),
            budgets: crate::budget::Budgets::new(budget),
            cuts: Mutex::default(),
        }
    }

    /// One request inside an intercepted tunnel: decided and answered; its audit event is
    /// recorded when the answer has been streamed (or abandoned).
    pub(crate) async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        o: &Origin,
    ) -> Response<Body> {
        let head = o.head(req.method().as_str(), req.uri().path());
        let meter = Meter::new();
        let cx = self
            .audit
            .telemetry
            .request(req.method().as_str(), req.headers());
        // Boxed: hyper keeps room for a request's future in every connection, idle or not, so
        // the pipeline's (large) state must not be inline in it.
        let run = Box::pin(self.run(req, o, &meter));
        let (resp, outcome) = telemetry::within(cx.clone(), run).await;
        Pending::new(Event::of(&head, outcome), meter, self.audit.clone())
            .traced(cx)
            .attach(resp)
    }

    async fn run(&self, req: Request<Incoming>, o: &Origin, meter: &Meter) -> Answer {
        let (parts, body) = req.into_parts();
        let early = Req {
            origin: o.clone(),
            service: Service::Other,
            repo: None,
        };
        // Host must equal the CONNECT host.
        let host_hdr = parts
            .headers
            .get(hyper::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(with_port);
        if host_hdr.as_deref() != Some(o.host.as_str()) {
            return early.refuse(Refusal::text(
                StatusCode::MISDIRECTED_REQUEST,
                "Host differs from the CONNECT host",
            ));
        }
        // The policy is the one configured now (a reload applies to open tunnels too); a
        // sandbox removed, or given a new secret, since the tunnel opened is refused.
        let current = match self.live.get().sandbox(o.sandbox.name()) {
            // Unchanged since the tunnel opened (the common case): no comparison at all.
            Some(sb)
                if Arc::ptr_eq(sb, &o.sandbox) || sb.cfg.secret.same(&o.sandbox.cfg.secret) =>
            {
                sb.clone()
            }
            Some(_) => {
                return early.refuse(Refusal::text(
                    StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                    format!(
                        "sandbox {}'s secret changed: connect again with the new one",
                        o.sandbox.name()
                    ),
                ));
            }
            None => {
                return early.refuse(Refusal::text(
                    StatusCode::FORBIDDEN,
                    format!("sandbox {} is no longer configured", o.sandbox.name()),
                ));
            }
        };
        let o = Origin {
            sandbox: current,
            source: o.source,
            host: o.host.clone(),
        };
        // An LFS object URL a batch answer handed this sandbox (on a storage host, or on a
        // GitHub host): exactly it passes, with no token added. Nothing else on a storage host.
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        if let Some(granted) = self.lfs.url(o.sandbox.name(), &o.host, target) {
            return self.granted_storage(parts, body, &o, granted, meter).await;
        }
        if !self.hosts.intercepts(&o.host) {
            meter.read(body::drain_refused(body).await);
            let r = Req {
                origin: o,
                service: Service::Lfs,
                repo: None,
            };
            return r.refuse(Refusal::lfs(
                StatusCode::FORBIDDEN,
                format!(
                    "{} is LFS storage: only the URLs GitHub's batch answers handed this sandbox pass, as given, while they live",
                    r.origin.host
                ),
            ));
        }
        let route = crate::router::route(&self.hosts, &o.host, parts.uri.path());
        let verdict = crate::policy::decide(
            &o.sandbox,
            &self.hosts,
            &route,
            &parts.method,
            parts.uri.query(),
            &parts.headers,
        );
        let r = Req {
            origin: o,
            service: verdict.service,
            repo: verdict.repo,
        };
        let mut plan = match verdict.action {
            Action::Answer(refusal) => {
                meter.read(body::drain_refused(body).await);
                return r.refuse(refusal);
            }
            Action::Forward(plan) => plan,
        };
        let mut outcome = r.outcome();
        let mut verdict = None;
        let mut mutation = false;
        let mut review = Vec::new();
        let body = match &plan.body {
            BodyPlan::None => None,
            BodyPlan::Stream => Some(body::streamed(body, meter.bytes_in.clone())),
            BodyPlan::Push => match telemetry::child(
                &self.audit.telemetry,
                "ghapp.inspect",
                self.push(body, &r, &plan, meter),
            )
            .await
            {
                Ok(pushed) => {
                    outcome.ref_updates = pushed.ref_updates;
                    verdict = pushed.verdict;
                    Some(pushed.body)
                }
                Err(answer) => return answer,
            },
            BodyPlan::Whole
            | BodyPlan::PullHead
            | BodyPlan::OwnPull(_)
            | BodyPlan::MergePull(_)
            | BodyPlan::GitWrite(_)
            | BodyPlan::Graphql
            | BodyPlan::LfsBatch => {
                match self.checked(body, &parts.headers, &plan, &r, meter).await {
                    Ok(c) => {
                        if let Some(repo) = c.repo {
                            outcome.repo = Some(repo.to_string());
                            plan.repo = repo;
                        }
                        outcome.reason = c.reason;
                        mutation = c.mutation;
                        review = c.review;
                        Some(reqwest::Body::from(c.body))
                    }
                    Err(answer) => return answer,
                }
            }
        };
        let sb = r.sb();
        // The budgets first (a slowed request waits holding no slot), then a slot at once.
        if let Err(refusal) = self
            .spend(&r, &parts.method, mutation, plan.repo.owner())
            .await
        {
            if refusal.status == StatusCode::TOO_MANY_REQUESTS {
                self.notify_budget(sb, &plan.repo, &refusal);
            }
            return r.refuse(refusal);
        }
        match self
            .budgets
            .slots(plan.repo.owner(), sb.name(), form_of(r.service))
            .await
        {
            Ok(slots) => meter
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(slots),
            Err(refusal) => return r.refuse(refusal),
        }
        let token = match telemetry::child(
            &self.audit.telemetry,
            "ghapp.token",
            self.tokens.token(sb, plan.repo.owner()),
        )
        .await
        {
            Ok(t) => t,
            Err(refusal) => {
                return (
                    refusal.response(),
                    Outcome::refused(outcome.service, outcome.repo, &refusal),
                );
            }
        };
        if observe::answers_refs(sb, r.service, parts.method == hyper::Method::GET) {
            return self.observe_refs(plan.url, &token, &r).await;
        }
        let up = Upstream {
            method: parts.method,
            url: plan.url,
            headers: forward_headers(&parts.headers),
            body,
            verdict,
            scheme: plan.scheme,
            owner: plan.repo.owner().to_owned(),
        };
        let sent_at = std::time::Instant::now();
        let sent = telemetry::child(&self.audit.telemetry, "ghapp.upstream", async {
            let sent = upstream::send(&self.upstream, &self.tokens, sb, up, token).await;
            if let Sent::Answered { resp, .. } = &sent {
                telemetry::note(
                    "http.response.status_code",
                    i64::from(resp.status().as_u16()),
                );
            }
            sent
        })
        .await;
        self.audit
            .metrics
            .upstream_latency(r.service, sent_at.elapsed().as_secs_f64());
        match sent {
            Sent::Answered { resp, token, push } => {
                self.budgets.observe(plan.repo.owner(), resp.headers());
                outcome.decision = Decision::Allow;
                outcome.token = Some(token);
                outcome.push = push;
                outcome.upstream_status = Some(resp.status().as_u16());
                outcome.status = resp.status().as_u16();
                if !review.is_empty() && resp.status().is_success() {
                    let said = self.request_reviews(sb, &plan.repo, &review).await;
                    outcome.reason = [outcome.reason, said]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join("; ");
                }
                if plan.body == BodyPlan::LfsBatch && resp.status() == StatusCode::OK {
                    return self.lfs_answer(resp, &r, outcome).await;
                }
                (upstream::relay(resp), outcome)
            }
            Sent::PushRefused {
                push,
                refusal,
                token,
            } => {
                outcome.token = Some(token);
                outcome.push = Some(push);
                push::refused(refusal, outcome)
            }
            Sent::Failed(refusal) => {
                let o = Outcome {
                    ref_updates: outcome.ref_updates,
                    push: outcome.push,
                    ..Outcome::refused(outcome.service, outcome.repo, &refusal)
                };
                (refusal.response(), o)
            }
        }
    }

    /// A request to an LFS storage URL a batch answer handed the sandbox: the method its
    /// action takes, forwarded to exactly that URL with no token added, its body streamed (an
    /// upload read by the secret scan as it passes, when the sandbox's rules scan).
    async fn granted_storage(
        &self,
        parts: http::request::Parts,
        body: Incoming,
        o: &Origin,
        granted: lfs::Granted,
        meter: &Meter,
    ) -> Answer {
        let r = Req {
            origin: o.clone(),
            service: Service::Lfs,
            repo: None,
        };
        let want = granted.kind.method();
        if parts.method.as_str() != want {
            meter.read(body::drain_refused(body).await);
            return r.refuse(Refusal::lfs(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "this LFS URL was handed out for {want} (object {}), not {}",
                    granted.oid, parts.method
                ),
            ));
        }
        let query = parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let url = match crate::policy::upstream_url(&o.host, parts.uri.path(), &query) {
            Ok(u) => u,
            Err(why) => {
                meter.read(body::drain_refused(body).await);
                return r.refuse(Refusal::lfs(StatusCode::BAD_REQUEST, why));
            }
        };
        let found = Arc::new(OnceLock::new());
        let body = if granted.kind == ghapp_gitproto::lfs::ActionKind::Upload
            && o.sandbox.cfg.rules.secret_scan
        {
            body::scanned(body, meter.bytes_in.clone(), found.clone())
        } else {
            body::streamed(body, meter.bytes_in.clone())
        };
        let origin = url.origin().ascii_serialization();
        let sent = upstream::storage(&self.upstream, parts.method, url, &parts.headers, body).await;
        if let Some(f) = found.get() {
            // The scan ended the upload before its last bytes: storage never had all of it.
            // 403 (a 422 git-lfs reads as a content-type complaint, and pushes on); git-lfs
            // asks the batch again, and is answered the same at once.
            let why = format!(
                "possible {} in the LFS object {} (line {}); rule secret_scan: remove it from the file, rewrite the commit, and push again",
                f.kind, granted.oid, f.line
            );
            self.lfs.refuse(o.sandbox.name(), &granted.oid, &why);
            return r.refuse(Refusal::lfs(StatusCode::FORBIDDEN, why));
        }
        match sent {
            Ok(resp) => {
                let outcome = Outcome {
                    decision: Decision::Allow,
                    reason: format!(
                        "LFS {} of {} (a URL from a batch answer)",
                        want, granted.oid
                    ),
                    status: resp.status().as_u16(),
                    upstream_status: Some(resp.status().as_u16()),
                    ..r.outcome()
                };
                (upstream::relay(resp), outcome)
            }
            Err(refusal) => {
                let (resp, mut o) = r.refuse(refusal);
                o.reason = format!("LFS storage {origin} unreachable: {}", o.reason);
                (resp, o)
            }
        }
    }

    /// An LFS batch answer: read whole (bounded), the storage hosts it names granted to the
    /// sandbox ([`crate::lfs::Grants`]), then passed on unchanged.
    async fn lfs_answer(&self, resp: reqwest::Response, r: &Req, outcome: Outcome) -> Answer {
        /// The largest LFS batch answer read (GitHub answers at most 100 objects per batch).
        const MAX_LFS_ANSWER: usize = 4 << 20;
        let out = upstream::head_of(&resp);
        let body = match body::read_bounded(resp, MAX_LFS_ANSWER, crate::github::ANSWER_WAIT).await
        {
            Ok(b) => b,
            Err(why) => {
                return r.refuse(Refusal::lfs(
                    StatusCode::BAD_GATEWAY,
                    format!("the LFS batch answer: {why}"),
                ));
            }
        };
        // Objects this sandbox's uploads were refused for: errors in the answer, not URLs.
        let body = match self.lfs.refused_in(r.sb().name(), &body) {
            Some(b) => b,
            None => body,
        };
        let rec = self.lfs.record(r.sb().name(), &body, |h| {
            self.hosts.intercepts(h) || self.hosts.is_storage(h)
        });
        let mut reason = if rec.granted.is_empty() {
            outcome.reason.clone()
        } else {
            format!("LFS storage granted: {}", rec.granted.join(", "))
        };
        if !rec.refused.is_empty() {
            let hosts = rec.refused.join(", ");
            tracing::warn!(
                "an LFS batch answer names storage the proxy does not serve ({hosts}): add the host to lfs_storage_hosts if it is GitHub's"
            );
            reason =
                format!("{reason}; not granted (not in lfs_storage_hosts, or not https): {hosts}");
        }
        let resp = out.body(crate::respond::full(body)).unwrap_or_else(|_| {
            crate::respond::text(
                StatusCode::BAD_GATEWAY,
                "ghapp proxy: bad upstream answer\n",
            )
        });
        (resp, Outcome { reason, ..outcome })
    }

    /// The signal that closes `name`'s tunnels when it is cut off.
    pub(crate) fn cut_signal(&self, name: &str) -> tokio_util::sync::CancellationToken {
        self.cuts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// A sandbox that is gone: its open tunnels closed, its cached tokens revoked at GitHub
    /// and dropped, its LFS grants forgotten. Returns the tokens revoked.
    pub(crate) async fn cut_off(&self, sb: &Sandbox) -> usize {
        if let Some(cut) = self
            .cuts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(sb.name())
        {
            cut.cancel();
        }
        self.lfs.forget(sb.name());
        let mut owners: Vec<&str> = sb.cfg.repos.iter().map(|r| r.owner()).collect();
        owners.sort_unstable_by_key(|o| o.to_ascii_lowercase());
        owners.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        let mut revoked = 0;
        let live = self.live.get();
        for owner in owners {
            // Sandboxes of one scope share its token (the proxy injects it; none holds it):
            // while another live sandbox has this scope, its token stays for it.
            let scope = sb.token_request(owner);
            if live
                .sandboxes
                .iter()
                .any(|o| o.name() != sb.name() && o.token_request(owner) == scope)
            {
                continue;
            }
            if self.tokens.discard(sb, owner, true).await {
                revoked += 1;
            }
        }
        tracing::info!(
            "sandbox {} disconnected: tunnels closed, {revoked} token(s) revoked",
            sb.name()
        );
        revoked
    }

    /// The approval URL a held request names (the admin listener's, when there is one).
    pub(crate) fn approval_url(&self, id: i64) -> String {
        self.cfg
            .admin_listen
            .map(|l| format!("http://{l}/v1/approvals/{id}"))
            .unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A data plane for the stages' tests: one sandbox `agent-a` on `Octo-Org/Widgets` in
    /// `mode` (pushing `agent/*`, significant past 5 files or 100 lines), GitHub answered by
    /// `github`, no app (nothing is minted), no state store.
    pub(crate) fn plane(
        mode: &str,
        github: Arc<dyn GitHub>,
        dir: &std::path::Path,
    ) -> (DataPlane, Arc<Sandbox>) {
        let text = format!(
            r#"
listen = "127.0.0.1:0"
ca_dir = {ca:?}
state = "sqlite:{state}"
[app]
api_url = "https://h/api/v3"
app_id = 1
private_key_file = "/k"

[[sandbox]]
name = "agent-a"
secret = "0123456789abcdef"
repos = ["Octo-Org/Widgets"]
push = ["agent/*"]
mode = "{mode}"
significant = {{ files = 5, lines = 100 }}
"#,
            ca = dir.join("ca").display().to_string(),
            state = dir.join("state.db").display(),
        );
        let env = std::collections::BTreeMap::<String, String>::new();
        let cfg = ProxyConfig::parse_with_env(&text, "test", &env).unwrap();
        let hosts = Hosts::new(cfg.github()).with_storage(&cfg.lfs_storage_hosts);
        let ca = Ca::load_or_create(&cfg.ca_dir, &hosts.intercepted()).unwrap();
        let audit = Arc::new(Audit::open(None, None).unwrap());
        let live = Arc::new(Snapshot::new(crate::live::Live::of(&cfg)));
        let sb = live.get().sandboxes[0].clone();
        let git = inspect::Git::new(
            &dir.join("spool"),
            &reqwest::Url::parse("https://h/").unwrap(),
            None,
            &[],
        );
        let plane = DataPlane::new(
            Arc::new(cfg),
            live,
            hosts,
            ca,
            audit.clone(),
            Arc::new(Tokens::new(Vec::new(), audit)),
            github,
            reqwest::Client::new(),
            Arc::new(git),
        );
        (plane, sb)
    }
}
