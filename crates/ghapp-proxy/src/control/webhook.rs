//! GitHub's webhooks , on their own listener (`webhook_listen`: GitHub
//! must reach it, the admin API must not be reachable there): `POST /webhooks/github`.
//!
//! A delivery is verified first: `X-Hub-Signature-256: sha256=HEX`, the HMAC-SHA256 of the raw
//! body with the webhook secret, compared in constant time (401 otherwise, so GitHub's Recent
//! Deliveries shows the mismatch). Then it acts once per `X-GitHub-Delivery` (a redelivery is
//! answered, not acted on again), is appended to `events_log` as a JSON line, and, through the
//! state store, acts on every replica:
//!
//! - `installation` `deleted` or `suspend`: every cached token for that account is dropped, and
//!   requests for it are refused with "the app was removed from OWNER" until `created` or
//!   `unsuspend` comes;
//! - `installation_repositories` `removed`: the tokens of the sandboxes that cover a removed
//!   repository are dropped (the next request mints, narrowed to what is left);
//! - `delete` of a branch, `pull_request` `opened`/`reopened`: a held pull request (learning
//!   mode) for that head is closed with that reason;
//! - `ping` is answered.

use std::io::Write;

use std::net::SocketAddr;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::ControlPlane;
use crate::respond::Body;

/// The largest delivery read. GitHub caps payloads at 25 MB, but the events the proxy acts on
/// are small; a larger one is answered 413 (GitHub's Recent Deliveries shows it).
const BODY_LIMIT: usize = 5 << 20;

fn answer(status: StatusCode, v: &Value) -> Response<Body> {
    crate::respond::json_body(status, "application/json", v)
}

/// What a delivery does, as every replica applies it.
pub(crate) fn summary(event: &str, payload: &Value) -> Value {
    let account = payload["installation"]["account"]["login"]
        .as_str()
        .unwrap_or_default();
    let removed: Vec<&str> = payload["repositories_removed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["full_name"].as_str())
        .collect();
    json!({
        "event": event,
        "action": payload["action"].as_str().unwrap_or_default(),
        "installation": payload["installation"]["id"],
        "account": account,
        "repositories_removed": removed,
        "repository": payload["repository"]["full_name"],
        "ref": payload["ref"],
        "ref_type": payload["ref_type"],
        "pull_head": payload["pull_request"]["head"]["ref"],
        "pull_url": payload["pull_request"]["html_url"],
    })
}

/// An installation as GitHub has it.
enum Installed {
    Active,
    Suspended,
    Gone,
}

/// Reads a delivery's body, each piece taken from `budget` as it arrives: at most
/// [`BODY_LIMIT`] bytes within 10 s.
async fn read_delivery(
    mut body: Incoming,
    budget: &std::sync::Arc<crate::limits::Budget>,
) -> Result<Vec<u8>, Response<Body>> {
    let mut held = crate::limits::Reservation::new(budget.clone());
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => {
                let Ok(d) = f.into_data() else { continue };
                if out.len() + d.len() > BODY_LIMIT {
                    return Err(answer(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &json!({"message": "the delivery is over 5 MiB; the proxy acts only on small events"}),
                    ));
                }
                if !held.grow(d.len()) {
                    return Err(answer(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({"message": "the proxy holds too many deliveries; GitHub may redeliver"}),
                    ));
                }
                out.extend_from_slice(&d);
            }
            Ok(None) => return Ok(out),
            Ok(Some(Err(_))) | Err(_) => {
                return Err(answer(
                    StatusCode::REQUEST_TIMEOUT,
                    &json!({"message": "the delivery did not arrive whole within 10 s"}),
                ));
            }
        }
    }
}

/// What bounds the unverified deliveries: their own budget, a few in flight per source.
#[derive(Debug)]
pub(crate) struct Hooks {
    budget: std::sync::Arc<crate::limits::Budget>,
    sources: crate::limits::PerSource,
}

/// Bytes of deliveries held at once, in all.
const HOOKS_BUDGET: usize = 16 << 20;
/// Deliveries in flight from one source address.
const HOOKS_PER_SOURCE: usize = 4;

impl Default for Hooks {
    fn default() -> Hooks {
        Hooks {
            budget: std::sync::Arc::new(crate::limits::Budget::new(HOOKS_BUDGET)),
            sources: crate::limits::PerSource::new(HOOKS_PER_SOURCE),
        }
    }
}

impl ControlPlane {
    /// One delivery (served by `Proxy::serve_side` on `webhook_listen`).
    pub(crate) async fn webhook(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if req.method() != Method::POST || req.uri().path() != "/webhooks/github" {
            return answer(
                StatusCode::NOT_FOUND,
                &json!({"message": "GitHub's webhooks go to POST /webhooks/github"}),
            );
        }
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (signature, event, delivery) = (
            header("x-hub-signature-256"),
            header("x-github-event"),
            header("x-github-delivery"),
        );
        // Unverified bytes from the internet: a few deliveries in flight per source, a budget
        // of their own (never the sandboxes'), taken as the bytes arrive (a declared length
        // reserves nothing), each under 5 MiB and 10 s.
        let Some(_slot) = self.hooks.sources.take(peer.ip()) else {
            self.data.audit.metrics.webhook("too_many_in_flight");
            return answer(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"message": "too many deliveries in flight from this address"}),
            );
        };
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|d| d > BODY_LIMIT) {
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"message": "the delivery is over 5 MiB; the proxy acts only on small events"}),
            );
        }
        let body = match read_delivery(req.into_body(), &self.hooks.budget).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Some(secret) = self.data.cfg.webhook_secret.as_ref() else {
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"message": "no webhook_secret is configured"}),
            );
        };
        if !crate::signature::verify(secret.expose().as_bytes(), &body, &signature) {
            self.data.audit.metrics.webhook("bad_signature");
            tracing::warn!(
                "webhook delivery {delivery:.64}: X-Hub-Signature-256 does not match (is webhook_secret the app's?)"
            );
            return answer(
                StatusCode::UNAUTHORIZED,
                &json!({"message": "X-Hub-Signature-256 does not match the webhook secret"}),
            );
        }
        let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
            return answer(
                StatusCode::BAD_REQUEST,
                &json!({"message": "the delivery is not JSON (set the webhook's content type to application/json)"}),
            );
        };
        if delivery.is_empty() || delivery.len() > 100 {
            return answer(
                StatusCode::BAD_REQUEST,
                &json!({"message": "X-GitHub-Delivery is missing"}),
            );
        }
        let summary = summary(&event, &payload);
        let first = match self.store() {
            Some(store) => match store.first_delivery(&delivery, &event, &summary).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!("webhook: {e}");
                    return answer(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({"message": "the state store is unavailable; GitHub may redeliver"}),
                    );
                }
            },
            None => self.applied(&delivery),
        };
        if !first {
            self.data.audit.metrics.webhook("redelivery");
            return answer(
                StatusCode::OK,
                &json!({"message": "already processed", "delivery": delivery}),
            );
        }
        self.data.audit.metrics.webhook("accepted");
        self.log_event(&delivery, &summary);
        if self.store().is_some() {
            // Marked applied here; the other replicas apply it when they see the store move.
            self.applied(&delivery);
        }
        let did = self.apply_event(&summary).await;
        answer(
            StatusCode::OK,
            &json!({"message": did, "delivery": delivery}),
        )
    }

    fn log_event(&self, delivery: &str, summary: &Value) {
        let Some(path) = &self.data.cfg.events_log else {
            return;
        };
        let mut line = summary.clone();
        line["delivery"] = json!(delivery);
        line["received_at"] = json!(ghapp_core::jwt::unix_now());
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = r {
            tracing::warn!("cannot append to events_log {}: {e}", path.display());
        }
    }

    /// Acts on a verified delivery's summary; says what it did.
    pub(crate) async fn apply_event(&self, s: &Value) -> String {
        let account = s["account"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match (
            s["event"].as_str().unwrap_or_default(),
            s["action"].as_str().unwrap_or_default(),
        ) {
            ("ping", _) => "pong".into(),
            // GitHub signs a delivery's body only: a captured delivery replays under a new
            // X-GitHub-Delivery. So an installation's state is acted on only as GitHub confirms
            // it now, asked with the app's JWT; a replay of an old event changes nothing.
            ("installation", action @ ("deleted" | "suspend")) if !account.is_empty() => {
                match self.installation_state(&account, &s["installation"]).await {
                    Ok(Installed::Gone | Installed::Suspended) => {
                        self.data.tokens.set_removed(&account, true);
                        let n = self.drop_tokens(|r| r.is_owned_by(&account)).await;
                        format!("the app was removed from {account}: {n} cached token(s) dropped")
                    }
                    Ok(Installed::Active) => {
                        self.data.audit.metrics.webhook("not_confirmed");
                        format!(
                            "installation {action} for {account} not acted on: GitHub still has it active (a stale or replayed delivery)"
                        )
                    }
                    Err(why) => format!("installation {action} for {account} not acted on: {why}"),
                }
            }
            ("installation", action @ ("created" | "unsuspend" | "new_permissions_accepted")) => {
                match self.installation_state(&account, &s["installation"]).await {
                    Ok(Installed::Active) => {
                        self.data.tokens.set_removed(&account, false);
                        let n = self.drop_tokens(|r| r.is_owned_by(&account)).await;
                        format!("the app serves {account}: {n} cached token(s) dropped")
                    }
                    Ok(_) => {
                        self.data.audit.metrics.webhook("not_confirmed");
                        format!(
                            "installation {action} for {account} not acted on: GitHub does not have it active (a stale or replayed delivery)"
                        )
                    }
                    Err(why) => format!("installation {action} for {account} not acted on: {why}"),
                }
            }
            ("installation_repositories", "removed") => {
                let removed: Vec<ghapp_gitproto::repo::RepoName> = s["repositories_removed"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| ghapp_gitproto::repo::RepoName::parse(r.as_str()?))
                    .collect();
                let n = self.drop_tokens(|r| removed.contains(r)).await;
                format!(
                    "{} repositories removed: {n} cached token(s) dropped",
                    removed.len()
                )
            }
            // A held pull request whose head GitHub deleted, or that someone opened meanwhile.
            ("delete", _) if s["ref_type"] == "branch" => {
                let (repo, head) = (
                    s["repository"].as_str().unwrap_or_default(),
                    s["ref"].as_str().unwrap_or_default(),
                );
                self.close_held(repo, head, format!("GitHub deleted its head branch {head}"))
                    .await
            }
            ("pull_request", "opened" | "reopened") => {
                let (repo, head) = (
                    s["repository"].as_str().unwrap_or_default(),
                    s["pull_head"].as_str().unwrap_or_default(),
                );
                let url = s["pull_url"].as_str().unwrap_or_default();
                self.close_held(
                    repo,
                    head,
                    format!(
                        "a pull request for {head} was opened by someone else meanwhile: {url}"
                    ),
                )
                .await
            }
            (e, a) => format!("{e} {a}: nothing to do"),
        }
    }

    /// What GitHub says of installation `id` (of `account`) now, asked with the app's JWT.
    async fn installation_state(&self, account: &str, id: &Value) -> Result<Installed, String> {
        let Some(id) = id.as_u64() else {
            return Err("the delivery names no installation".into());
        };
        let Some(broker) = self.data.tokens.broker_for(account) else {
            return Err(format!("no app of this proxy serves {account}"));
        };
        let asked = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            broker.app_request(Method::GET, &format!("/app/installations/{id}"), None),
        )
        .await;
        let r = match asked {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(format!("cannot ask GitHub to confirm it: {e}")),
            Err(_) => return Err("GitHub did not answer within 10 s to confirm it".into()),
        };
        match r.status.as_u16() {
            404 => Ok(Installed::Gone),
            200 => {
                let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                Ok(if v["suspended_at"].is_null() {
                    Installed::Active
                } else {
                    Installed::Suspended
                })
            }
            s => Err(format!("GitHub answered {s} when asked to confirm it")),
        }
    }

    /// Closes the held pull requests for `head` in `repo`; says how many.
    async fn close_held(&self, repo: &str, head: &str, reason: String) -> String {
        let Some(store) = self.store() else {
            return "no state store: nothing held".into();
        };
        match store.close_pending(repo, head, &reason).await {
            Ok(n) => {
                if n > 0 {
                    self.data.audit.metrics.approval("closed");
                }
                format!("{n} held pull request(s) closed: {reason}")
            }
            Err(e) => format!("cannot close held pull requests: {e}"),
        }
    }

    /// Drops the cached tokens of every sandbox with a repository `hit` matches (for that
    /// repository's owner). Returns how many were dropped.
    async fn drop_tokens(&self, hit: impl Fn(&ghapp_gitproto::repo::RepoName) -> bool) -> usize {
        let mut n = 0;
        for sb in &self.data.live.get().sandboxes {
            for r in sb.cfg.repos.iter().filter(|r| hit(r)) {
                if self.data.tokens.discard(sb, r.owner(), false).await {
                    n += 1;
                }
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_delivery_does() {
        let p = json!({
            "action": "removed",
            "installation": {"id": 7, "account": {"login": "Octo-Org"}},
            "repositories_removed": [{"full_name": "Octo-Org/widgets"}]
        });
        let s = summary("installation_repositories", &p);
        assert_eq!(s["account"], "Octo-Org");
        assert_eq!(s["repositories_removed"], json!(["Octo-Org/widgets"]));
        assert_eq!(s["installation"], 7);
    }
}
