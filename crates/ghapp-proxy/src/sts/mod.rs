//! The token exchange service (`[sts]`, its own listener): a workload's OIDC token for an
//! installation token, under a trust policy kept in the repository it is for, as octo-sts
//! does, so `octo-sts/action` and any client of octo-sts work by changing the domain.
//!
//! `GET /sts/exchange?scope=OWNER[/REPO]&identity=NAME` with `Authorization: Bearer JWT`:
//!
//! 1. the token's header and issuer are read unverified ([`oidc::peek`]): RS256 or ES256, an
//!    `https://` issuer (one of `[sts] issuers` when that is set);
//! 2. the policy `.github/chainguard/NAME.sts.yaml` is read from the scope's repository (an
//!    organization scope: from its `.github` repository, with `repositories`), with a
//!    `contents: read` token, cached a minute (a missing one too) with its blob id;
//! 3. the policy must trust that issuer before any of the issuer's keys is fetched: a token
//!    cannot make the service fetch from an address no policy names;
//! 4. the signature and times are verified with the issuer's keys ([`oidc::Verifier`]), then
//!    subject, audience (default: this service's `domain`) and `claim_pattern`;
//! 5. a new token is minted for the scope's repositories with the policy's permissions (GitHub
//!    refuses more than the installation grants); never cached or shared, since the caller may
//!    revoke it.
//!
//! The answer is `{"token", "expires_at"}`, or `{"message"}` naming the check that failed
//! (never the token or the JWT). Each exchange is an audit event and a metric; a source's
//! failures past `failures_per_minute` are answered 429 without a check.

mod oidc;
pub(crate) mod trust;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ghapp_core::permissions::{Level, Permissions};
use ghapp_core::request::TokenRequest;
use ghapp_gitproto::repo::RepoName;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::audit::{Audit, Decision, Event, Exchange, Service, telemetry};
use crate::config::StsConfig;
use crate::limits::Failures;
use crate::respond::Body;
use crate::tokens::Tokens;
use trust::{Refused, TrustPolicy};

/// How long a policy (or its absence) is kept.
const POLICY_TTL: Duration = Duration::from_secs(60);
/// Policies kept at once.
const MAX_POLICIES: usize = 4096;

/// A policy as read: compiled, with where it came from.
struct Loaded {
    policy: TrustPolicy,
    /// `OWNER/REPO/.github/chainguard/NAME.sts.yaml@BLOB`.
    source: String,
}

/// (owner, repository, identity), lowercased.
type PolicyKey = (String, String, String);
/// A policy read (or the reason there is none) and when.
type PolicyEntry = (Instant, Result<Arc<Loaded>, Refused>);

pub(crate) struct Sts {
    cfg: StsConfig,
    tokens: Arc<Tokens>,
    audit: Arc<Audit>,
    verifier: oidc::Verifier,
    policies: Mutex<HashMap<PolicyKey, PolicyEntry>>,
    failures: Failures,
}

/// The service as configured: its HTTP client for issuers (HTTPS only, no redirects, the
/// system's roots or `oidc_ca_file`) and its TLS when it terminates TLS itself.
pub(crate) fn prepare(
    cfg: &StsConfig,
    tokens: Arc<Tokens>,
    audit: Arc<Audit>,
) -> Result<(Sts, Option<tokio_rustls::TlsAcceptor>), String> {
    let ca = match &cfg.oidc_ca_file {
        Some(p) => Some(
            ghapp_core::fsutil::read_bounded(p, 4 << 20)
                .map_err(|e| format!("cannot read oidc_ca_file {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let tls = ghapp_core::client::tls_config_with(ca.as_deref()).map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let acceptor = match &cfg.tls {
        None => None,
        Some((cert, key)) => Some(server_tls(cert, key)?),
    };
    Ok((Sts::new(cfg.clone(), tokens, audit, http), acceptor))
}

/// A TLS acceptor from a PEM certificate chain and key.
fn server_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls_cert_file {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_cert_file {}: no certificate in it (PEM, the server's first)",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "tls_key_file {}: {e} (a PEM private key: PKCS#8, PKCS#1 or SEC1)",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut c = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_cert_file and tls_key_file do not go together: {e}"))?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(c)))
}

/// What a request asked for, as parsed.
struct Ask {
    owner: String,
    /// `None`: the organization's scope.
    repo: Option<String>,
    identity: String,
}

impl Sts {
    pub(crate) fn new(
        cfg: StsConfig,
        tokens: Arc<Tokens>,
        audit: Arc<Audit>,
        http: reqwest::Client,
    ) -> Sts {
        Sts {
            failures: Failures::new(cfg.failures_per_minute),
            cfg,
            tokens,
            audit,
            verifier: oidc::Verifier::new(http),
            policies: Mutex::default(),
        }
    }

    /// One request to the service's listener.
    pub(crate) async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let path = req.uri().path().to_owned();
        if path != "/sts/exchange" {
            return answer(
                StatusCode::NOT_FOUND,
                &json!({"message": "not found: the exchange is GET /sts/exchange?scope=OWNER/REPO&identity=NAME"}),
            );
        }
        if req.method() != hyper::Method::GET && req.method() != hyper::Method::POST {
            return answer(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"message": "use GET"}),
            );
        }
        let mut event = Event::new(
            "-",
            Some(peer.to_string()),
            req.method().as_str(),
            &self.cfg.domain,
            &path,
        );
        event.service = Service::Exchange;
        // A server span per exchange (child of the client's `traceparent`, if it sent one),
        // with children for the trust policy's read, the OIDC token's check and the mint.
        let cx = self
            .audit
            .telemetry
            .request(req.method().as_str(), req.headers());
        let mut x = Exchange::default();
        if let Some(left) = self.failures.blocked_for(peer.ip()) {
            self.audit.metrics.exchange("rate_limited");
            let mut r = answer(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"message": format!("too many refused exchanges from this address: retry in {left}s")}),
            );
            if let Ok(v) = left.to_string().parse() {
                r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
            }
            event.reason = "rate_limited".into();
            event.status = 429;
            self.audit.record_in(&event, cx.as_ref());
            return r;
        }
        let result = telemetry::within(cx.clone(), self.exchange(&req, &mut x)).await;
        event.latency_ms = started.elapsed().as_millis() as u64;
        let (status, body) = match result {
            Ok((token, expires_at)) => {
                event.decision = Decision::Allow;
                self.audit.metrics.exchange("issued");
                let body = json!({"token": token.expose(), "expires_at": expires_at});
                event.token = Some(token.fingerprint());
                (StatusCode::OK, body)
            }
            Err(r) => {
                let status = status_of(r.check);
                if status.is_client_error() {
                    self.failures.failed(peer.ip());
                }
                self.audit.metrics.exchange(r.check);
                event.reason = format!("{}: {}", r.check, r.message);
                (status, json!({"message": r.message}))
            }
        };
        event.status = status.as_u16();
        event.repo = x.scope.clone();
        event.exchange = Some(x);
        self.audit.record_in(&event, cx.as_ref());
        answer(status, &body)
    }

    async fn exchange(
        &self,
        req: &Request<Incoming>,
        x: &mut Exchange,
    ) -> Result<(ghapp_core::secret::InstallationToken, String), Refused> {
        let ask = parse_query(req.uri().query())?;
        x.scope = Some(match &ask.repo {
            Some(r) => format!("{}/{r}", ask.owner),
            None => ask.owner.clone(),
        });
        x.identity = ask.identity.clone();
        let jwt = bearer(req)?;
        let u = oidc::peek(jwt)?;
        x.issuer = u.iss.clone();
        if !self.cfg.issuers.is_empty() && !self.cfg.issuers.contains(&u.iss) {
            return Err(Refused::new(
                "issuer",
                format!("issuer {:?} is not one this service trusts", u.iss),
            ));
        }
        let tel = &self.audit.telemetry;
        let loaded = telemetry::child(tel, "ghapp.policy", self.policy(&ask)).await?;
        x.policy = loaded.source.clone();
        loaded.policy.check_issuer(&u.iss)?;
        let claims = telemetry::child(tel, "ghapp.oidc", self.verifier.verify(jwt, &u)).await?;
        x.subject = claims["sub"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(255)
            .collect();
        loaded.policy.check(&claims, &self.cfg.domain)?;
        let repositories = match &ask.repo {
            Some(r) => vec![r.clone()],
            None => loaded.policy.repositories.clone().unwrap_or_default(),
        };
        let broker = self.tokens.broker_for(&ask.owner).ok_or_else(|| {
            Refused::new(
                "scope",
                format!("no app of this service serves {}", ask.owner),
            )
        })?;
        let want = TokenRequest {
            owner: Some(ask.owner.clone()),
            repositories,
            permissions: loaded.policy.permissions.clone(),
            fit: false,
        };
        x.permissions = want.permissions.to_string();
        let minted = telemetry::child(tel, "ghapp.token", async {
            telemetry::note("ghapp.token.source", "minted");
            broker.mint_uncached(&want).await
        });
        let t = minted.await.map_err(|e| match e {
            ghapp_core::Error::NotInstalled { .. } => Refused::new(
                "scope",
                format!("the app is not installed on {}", want.describe()),
            ),
            ghapp_core::Error::OutsideGrant { message, .. } => Refused::new(
                "permissions",
                format!("GitHub refused {} with {}: {message} (the policy asks for more than the installation grants)", want.describe(), want.permissions),
            ),
            e => Refused::new("github", format!("cannot mint: {e}")),
        })?;
        self.audit.metrics.mints.inc();
        let expires_at = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_secs(t.expires_at),
        )
        .to_string();
        Ok((t.token, expires_at))
    }

    /// The trust policy for `ask`, cached for [`POLICY_TTL`] (its absence too).
    async fn policy(&self, ask: &Ask) -> Result<Arc<Loaded>, Refused> {
        let repo = ask
            .repo
            .clone()
            .unwrap_or_else(|| self.cfg.org_policy_repo.clone());
        let key = (
            ask.owner.to_ascii_lowercase(),
            repo.to_ascii_lowercase(),
            ask.identity.clone(),
        );
        {
            let m = self.policies.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, p)) = m.get(&key)
                && at.elapsed() < POLICY_TTL
            {
                return p.clone();
            }
        }
        let found = self.read_policy(&ask.owner, &repo, &ask.identity).await;
        // A failure to reach GitHub is not remembered; an answer (a policy, or none) is.
        if found
            .as_ref()
            .map_or_else(|r| r.check == "policy", |_| true)
        {
            let mut m = self.policies.lock().unwrap_or_else(|e| e.into_inner());
            if m.len() >= MAX_POLICIES {
                m.retain(|_, (at, _)| at.elapsed() < POLICY_TTL);
                if m.len() >= MAX_POLICIES {
                    m.clear();
                }
            }
            m.insert(key, (Instant::now(), found.clone()));
        }
        found
    }

    async fn read_policy(
        &self,
        owner: &str,
        repo: &str,
        identity: &str,
    ) -> Result<Arc<Loaded>, Refused> {
        let file = format!(".github/chainguard/{identity}.sts.yaml");
        let missing = || {
            Refused::new(
                "policy",
                format!("no trust policy {file} in {owner}/{repo}"),
            )
        };
        let broker = self.tokens.broker_for(owner).ok_or_else(|| {
            Refused::new("scope", format!("no app of this service serves {owner}"))
        })?;
        let mut read = Permissions::default();
        read.insert("contents", Level::Read);
        let req = TokenRequest {
            owner: Some(owner.to_owned()),
            repositories: vec![repo.to_owned()],
            permissions: read,
            fit: false,
        };
        let token = match broker.token(&req).await {
            Ok(t) => t,
            Err(ghapp_core::Error::NotInstalled { .. }) => {
                return Err(Refused::new(
                    "scope",
                    format!(
                        "the app is not installed on {owner}/{repo}, where the trust policy would be"
                    ),
                ));
            }
            Err(ghapp_core::Error::OutsideGrant { .. }) => return Err(missing()),
            Err(e) => {
                return Err(Refused::new(
                    "github",
                    format!("cannot read the trust policy: {e}"),
                ));
            }
        };
        let path = format!(
            "/repos/{owner}/{repo}/contents/{}",
            file.split('/')
                .map(|s| percent_encoding::utf8_percent_encode(
                    s,
                    percent_encoding::NON_ALPHANUMERIC
                )
                .to_string())
                .collect::<Vec<_>>()
                .join("/")
        );
        let r = broker
            .client()
            .request(
                hyper::Method::GET,
                &path,
                ghapp_core::client::Auth::Token(&token.token),
                None,
            )
            .await
            .map_err(|e| Refused::new("github", format!("cannot read the trust policy: {e}")))?;
        match r.status.as_u16() {
            200 => {}
            404 => return Err(missing()),
            s => {
                return Err(Refused::new(
                    "github",
                    format!(
                        "GitHub answered {s} to reading the trust policy: {}",
                        r.message()
                    ),
                ));
            }
        }
        let doc: Value = serde_json::from_slice(&r.body).map_err(|_| {
            Refused::new("github", "GitHub's answer for the trust policy is not JSON")
        })?;
        let text = crate::github::content_text(&doc).ok_or_else(|| {
            Refused::new(
                "policy",
                format!("{file} in {owner}/{repo} is not a text file"),
            )
        })?;
        let org = ask_is_org(repo, &self.cfg.org_policy_repo);
        let policy = TrustPolicy::parse(&text, org)
            .map_err(|m| Refused::new("policy", format!("{file} in {owner}/{repo}: {m}")))?;
        let sha = doc["sha"].as_str().unwrap_or("?");
        Ok(Arc::new(Loaded {
            policy,
            source: format!("{owner}/{repo}/{file}@{}", sha.get(..12).unwrap_or(sha)),
        }))
    }
}

fn ask_is_org(repo: &str, org_repo: &str) -> bool {
    repo.eq_ignore_ascii_case(org_repo)
}

/// The HTTP status for a failed check.
fn status_of(check: &str) -> StatusCode {
    match check {
        "request" => StatusCode::BAD_REQUEST,
        "token" | "algorithm" | "signature" | "expired" | "key" | "issuer" => {
            StatusCode::UNAUTHORIZED
        }
        "policy" => StatusCode::NOT_FOUND,
        "github" => StatusCode::BAD_GATEWAY,
        _ => StatusCode::FORBIDDEN,
    }
}

/// A JSON answer no cache keeps (it may hold a token).
fn answer(status: StatusCode, body: &Value) -> Response<Body> {
    let mut r = crate::respond::json_body(status, "application/json", body);
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

/// `scope` (or octo-sts/action's `scopes`, one only) and `identity`.
fn parse_query(q: Option<&str>) -> Result<Ask, Refused> {
    let bad = |m: String| Refused::new("request", m);
    let mut scope = None;
    let mut scopes = None;
    let mut identity = None;
    for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        let slot = match k.as_ref() {
            "scope" => &mut scope,
            "scopes" => &mut scopes,
            "identity" => &mut identity,
            _ => continue,
        };
        if slot.is_some() {
            return Err(bad(format!("{k} is given twice")));
        }
        *slot = Some(v.into_owned());
    }
    let scope = match scopes.filter(|s| !s.is_empty()) {
        Some(s) if s.contains(',') => {
            return Err(bad("more than one scope is not supported".into()));
        }
        Some(s) => {
            if scope.as_ref().is_some_and(|x| x != &s) {
                return Err(bad("scope and scopes differ".into()));
            }
            s
        }
        None => {
            scope.ok_or_else(|| bad("scope is missing: ?scope=OWNER/REPO&identity=NAME".into()))?
        }
    };
    let identity = identity
        .ok_or_else(|| bad("identity is missing: ?scope=OWNER/REPO&identity=NAME".into()))?;
    if identity.is_empty()
        || identity.len() > 100
        || identity.starts_with('.')
        || !identity
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(bad(format!(
            "identity {:?} is not a policy name (letters, digits, - _ .)",
            identity.chars().take(100).collect::<String>()
        )));
    }
    let (owner, repo) = match scope.split_once('/') {
        Some((o, r)) => {
            let name = RepoName::parse(&format!("{o}/{r}"))
                .ok_or_else(|| bad(format!("scope {scope:?} is not OWNER or OWNER/REPO")))?;
            (name.owner().to_owned(), Some(name.repo().to_owned()))
        }
        None => {
            RepoName::parse(&format!("{scope}/x"))
                .ok_or_else(|| bad(format!("scope {scope:?} is not OWNER or OWNER/REPO")))?;
            (scope.clone(), None)
        }
    };
    Ok(Ask {
        owner,
        repo,
        identity,
    })
}

/// The one `Authorization: Bearer` credential.
fn bearer(req: &Request<Incoming>) -> Result<&str, Refused> {
    let mut all = req.headers().get_all(hyper::header::AUTHORIZATION).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return Err(Refused::new(
            "token",
            "send exactly one Authorization: Bearer header with the OIDC token",
        ));
    };
    v.to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Refused::new(
                "token",
                "the Authorization header is not Bearer with the OIDC token",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_parsed_strictly() {
        let a = parse_query(Some("scope=o/r&scopes=o/r&identity=ci"))
            .ok()
            .unwrap();
        assert_eq!(
            (a.owner.as_str(), a.repo.as_deref(), a.identity.as_str()),
            ("o", Some("r"), "ci")
        );
        let a = parse_query(Some("scope=o&identity=ci")).ok().unwrap();
        assert_eq!(a.repo, None);
        for (q, says) in [
            ("identity=ci", "scope is missing"),
            ("scope=o/r", "identity is missing"),
            ("scope=o/r&identity=../x", "not a policy name"),
            ("scope=o/r&identity=a/b", "not a policy name"),
            ("scope=o/r/x&identity=ci", "not OWNER"),
            ("scope=o/r&scopes=o/r,o/s&identity=ci", "more than one"),
            ("scope=o/r&scopes=o/s&identity=ci", "differ"),
            ("scope=o/r&scope=o/s&identity=ci", "twice"),
        ] {
            let e = parse_query(Some(q)).err().unwrap();
            assert!(e.message.contains(says), "{q}: {}", e.message);
            assert_eq!(e.check, "request");
        }
    }
}
