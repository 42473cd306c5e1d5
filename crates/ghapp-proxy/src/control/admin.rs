//! The admin API, on its own listener (`admin_listen`, never the sandbox listener), a bearer
//! token (`admin_token`), JSON in the types of [`crate::admin_api`] (the table of routes is
//! there), described in `docs/reference/admin-api.yaml` (OpenAPI). The approvals page shares
//! the listener (`super::page`).

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ControlPlane;
use crate::admin_api::{
    Created, Decision, Disconnected, ErrorBody, NewSandbox, Policy, Sandbox, Source,
};
use crate::respond::Body;
use crate::store::StoreError;

/// The largest admin request body.
const BODY_LIMIT: usize = 64 * 1024;
/// The variables that name the proxy's CA for each runtime.
pub(crate) const CA_VARIABLES: &[&str] = &[
    "GIT_SSL_CAINFO",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
];

/// Why an admin request is refused: the status it answers, and what to do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "the admin API needs Authorization: Bearer <admin_token> (GHAPP_ADMIN_TOKEN for ghapp sandbox)"
    )]
    Unauthorized,
    #[error(
        "the admin token is wrong: give the proxy's admin_token (GHAPP_ADMIN_TOKEN for ghapp sandbox)"
    )]
    WrongToken,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Well-formed, but GitHub says it cannot work (a repository the app is not installed on).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    TooMany(String),
    #[error("{0}")]
    Unavailable(String),
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Unauthorized | AdminError::WrongToken => StatusCode::UNAUTHORIZED,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AdminError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn response(&self) -> Response<Body> {
        let mut r = answer(
            self.status(),
            &ErrorBody {
                message: self.to_string(),
            },
        );
        if matches!(self, AdminError::Unauthorized | AdminError::WrongToken) {
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }

    /// From an approval's decision (`approve`, `deny`).
    pub(crate) fn from_decision((status, why): (StatusCode, String)) -> AdminError {
        match status {
            StatusCode::NOT_FOUND => AdminError::NotFound(why),
            StatusCode::CONFLICT => AdminError::Conflict(why),
            StatusCode::BAD_REQUEST => AdminError::BadRequest(why),
            _ => AdminError::Unavailable(why),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        match e {
            StoreError::Missing(n) => AdminError::NotFound(format!("no sandbox {n}")),
            StoreError::Exists(n) => AdminError::Conflict(format!("sandbox {n} exists")),
            StoreError::Full(_) => AdminError::TooMany(e.to_string()),
            StoreError::Db(m) => {
                tracing::error!("admin API: {m}");
                AdminError::Unavailable(m)
            }
        }
    }
}

fn answer(status: StatusCode, v: &impl Serialize) -> Response<Body> {
    let v = serde_json::to_value(v).unwrap_or_default();
    let mut r = crate::respond::json_body(status, "application/json", &v);
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r.headers_mut().insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        hyper::header::HeaderValue::from_static("nosniff"),
    );
    r
}

fn ok(v: &impl Serialize) -> Result<Response<Body>, AdminError> {
    Ok(answer(StatusCode::OK, v))
}

const ROUTES: &str = "the admin API: GET|POST /v1/sandboxes, GET|PATCH|DELETE /v1/sandboxes/{name}, GET /v1/approvals[/{id}[/checks]], POST /v1/approvals/{id}/approve|deny, GET /v1/proposals[/{id}[/bundle]]";

impl ControlPlane {
    /// One request on the admin listener: the approvals page, or the API.
    pub(crate) async fn admin(
        &self,
        req: Request<Incoming>,
        peer: std::net::SocketAddr,
    ) -> Response<Body> {
        if super::page::is_page(req.uri().path()) {
            return self.page(req, peer).await;
        }
        self.api(req).await.unwrap_or_else(|e| e.response())
    }

    async fn api(&self, req: Request<Incoming>) -> Result<Response<Body>, AdminError> {
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match (given, self.data.cfg.admin_token.as_ref()) {
            (Some(given), Some(token)) if token.matches(given.trim()) => {}
            (Some(_), _) => return Err(AdminError::WrongToken),
            (None, _) => return Err(AdminError::Unauthorized),
        }
        let store = self
            .store()
            .ok_or_else(|| AdminError::Unavailable("the state store is not open".into()))?;
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().trim_end_matches('/');
        let query = parts.uri.query();
        let body = read(body).await?;
        let method = &parts.method;
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::GET, ["v1", "sandboxes"]) => {
                let mut all = Vec::new();
                for sb in &self.data.live.get().sandboxes {
                    all.extend(self.describe_sandbox(sb.name()).await);
                }
                for s in store
                    .all()
                    .await?
                    .iter()
                    .filter(|s| s.disconnected_at.is_some())
                {
                    all.extend(self.describe_sandbox(&s.name).await);
                }
                ok(&all)
            }
            (&Method::POST, ["v1", "sandboxes"]) => {
                let created = self.add_sandbox(parse(&body)?).await?;
                Ok(answer(StatusCode::CREATED, &created))
            }
            (&Method::GET, ["v1", "sandboxes", n]) => match self.describe_sandbox(n).await {
                Some(s) => ok(&s),
                None => Err(AdminError::NotFound(format!("no sandbox {n}"))),
            },
            (&Method::PATCH, ["v1", "sandboxes", n]) => {
                self.file_sandbox(n)?;
                let s = self.set_sandbox(n, parse(&body)?).await?;
                ok(&s)
            }
            (&Method::DELETE, ["v1", "sandboxes", n]) => {
                self.file_sandbox(n)?;
                store.disconnect(n).await?;
                let revoked = self.sync_store().await;
                ok(&Disconnected {
                    name: (*n).to_owned(),
                    disconnected: true,
                    tokens_revoked: revoked,
                })
            }
            (&Method::GET, ["v1", "approvals"]) => {
                let status = form_urlencoded::parse(query.unwrap_or("").as_bytes())
                    .find(|(k, _)| k == "status")
                    .map(|(_, v)| v.into_owned());
                ok(&store.approvals(status.as_deref()).await?)
            }
            (&Method::GET, ["v1", "approvals", id]) => {
                let id = number(id, "approval")?;
                match store.approval(id).await? {
                    Some(a) => ok(&a),
                    None => Err(AdminError::NotFound(format!("no approval {id}"))),
                }
            }
            (&Method::GET, ["v1", "approvals", id, "checks"]) => {
                let id = number(id, "approval")?;
                let Some(a) = store.approval(id).await? else {
                    return Err(AdminError::NotFound(format!("no approval {id}")));
                };
                ok(&self.checks(&a).await)
            }
            (&Method::POST, ["v1", "approvals", id, action @ ("approve" | "deny")]) => {
                let id = number(id, "approval")?;
                let d: Decision = if body.is_empty() {
                    Decision::default()
                } else {
                    parse(&body)?
                };
                let by = d.by.unwrap_or_else(|| "admin API".into());
                let decided = if *action == "approve" {
                    self.approve(id, &by).await
                } else {
                    self.deny(id, &by, d.reason.as_deref().unwrap_or_default())
                        .await
                };
                ok(&decided.map_err(AdminError::from_decision)?)
            }
            (&Method::GET, ["v1", "proposals"]) => {
                let sandbox = form_urlencoded::parse(query.unwrap_or("").as_bytes())
                    .find(|(k, _)| k == "sandbox")
                    .map(|(_, v)| v.into_owned());
                ok(&store.proposals(sandbox.as_deref()).await?)
            }
            (&Method::GET, ["v1", "proposals", id]) => {
                let n = number(id, "proposal")?;
                match store.proposal(n).await? {
                    Some(p) => ok(&p),
                    None => Err(AdminError::NotFound(format!("no proposal {n}"))),
                }
            }
            (&Method::GET, ["v1", "proposals", id, "bundle"]) => {
                let n = number(id, "proposal")?;
                match store.proposal_bundle(n).await? {
                    Some(b) => {
                        let mut r = Response::new(crate::respond::full(b));
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("application/octet-stream"),
                        );
                        Ok(r)
                    }
                    None => Err(AdminError::NotFound(format!(
                        "proposal {n} has no bundle (not a push, over 4 MiB, or one of its sandbox's older proposals)"
                    ))),
                }
            }
            _ => Err(AdminError::NotFound(ROUTES.into())),
        }
    }

    /// Refused unless the app is installed on every repository of `cfg` (a misspelt one would
    /// fail only at the sandbox's first clone). A GitHub that cannot be asked is not a reason
    /// to refuse: only what GitHub answered.
    async fn installed(&self, cfg: crate::config::SandboxConfig) -> Result<(), AdminError> {
        let sb = crate::sandbox::Sandbox::new(cfg);
        let refused: Vec<String> = self
            .data
            .tokens
            .installations(&sb)
            .await
            .iter()
            .filter(|(_, found)| {
                matches!(
                    found,
                    Err(ghapp_core::Error::NotInstalled { .. } | ghapp_core::Error::Config(_))
                )
            })
            .map(|(repo, found)| match found {
                Err(e) => crate::preflight::not_installed(repo, e),
                Ok(_) => String::new(),
            })
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(AdminError::Unprocessable(refused.join("; ")))
        }
    }

    /// Refused for a sandbox of the proxy's file: it is changed there.
    fn file_sandbox(&self, name: &str) -> Result<(), AdminError> {
        if self.data.cfg.sandboxes.iter().any(|s| s.name == name) {
            return Err(AdminError::Conflict(format!(
                "sandbox {name} is configured in the proxy's file: change it there"
            )));
        }
        Ok(())
    }

    async fn add_sandbox(&self, new: NewSandbox) -> Result<Created, AdminError> {
        let store = self
            .store()
            .ok_or_else(|| AdminError::Unavailable("the state store is not open".into()))?;
        let name = new.name;
        self.file_sandbox(&name)?;
        let secret = new_secret();
        let spec = stored_spec(&new.policy, &secret)?;
        let cfg = self
            .data
            .cfg
            .stored_sandbox(&name, &spec)
            .map_err(|e| AdminError::BadRequest(e.to_string()))?;
        self.installed(cfg).await?;
        store.add(&name, &spec).await?;
        self.sync_store().await;
        let at = self
            .data
            .cfg
            .advertise
            .clone()
            .unwrap_or_else(|| self.data.cfg.listen.to_string());
        let proxy = format!("http://{name}:{secret}@{at}");
        let sandbox = self
            .describe_sandbox(&name)
            .await
            .ok_or_else(|| AdminError::Unavailable(format!("sandbox {name} was not stored")))?;
        let secret = ghapp_core::secret::ProxySecret::new(secret);
        let https_proxy = ghapp_core::secret::ProxySecret::new(proxy);
        Ok(Created {
            sandbox,
            env: [
                ("HTTPS_PROXY".to_owned(), https_proxy.clone()),
                (
                    "GIT_HTTP_PROXY_AUTHMETHOD".to_owned(),
                    ghapp_core::secret::ProxySecret::new("basic"),
                ),
            ]
            .into(),
            secret,
            https_proxy,
            ca_pem: self.data.ca.cert_pem.clone(),
            ca_env: CA_VARIABLES.iter().map(|v| (*v).to_owned()).collect(),
        })
    }

    async fn set_sandbox(&self, name: &str, changes: Policy) -> Result<Sandbox, AdminError> {
        let store = self
            .store()
            .ok_or_else(|| AdminError::Unavailable("the state store is not open".into()))?;
        let current = match store.get(name).await? {
            Some(s) if s.disconnected_at.is_none() => s,
            _ => return Err(AdminError::NotFound(format!("no sandbox {name}"))),
        };
        let mut spec = current.spec;
        let secret = spec
            .as_object_mut()
            .and_then(|m| m.remove("secret"))
            .unwrap_or_default();
        let policy: Policy = serde_json::from_value(spec)
            .map_err(|e| AdminError::Unavailable(format!("sandbox {name} as stored: {e}")))?;
        let mut spec = serde_json::to_value(policy.merged(changes)).unwrap_or_default();
        spec["secret"] = secret;
        let cfg = self
            .data
            .cfg
            .stored_sandbox(name, &spec)
            .map_err(|e| AdminError::BadRequest(e.to_string()))?;
        self.installed(cfg).await?;
        store.set(name, &spec).await?;
        self.sync_store().await;
        self.describe_sandbox(name)
            .await
            .ok_or_else(|| AdminError::NotFound(format!("no sandbox {name}")))
    }

    /// A sandbox as the admin API shows it: its rules (as `GET /policy` words them), where it
    /// comes from, whether it is disconnected; `None` when there is none.
    async fn describe_sandbox(&self, name: &str) -> Option<Sandbox> {
        let file = self.data.cfg.sandboxes.iter().any(|s| s.name == name);
        let source = if file { Source::File } else { Source::Store };
        let egress_denied = self.data.live.get().egress == crate::config::Egress::Deny;
        let used = self.data.budgets.used(self.store(), name).await;
        if let Some(sb) = self.data.live.get().sandbox(name) {
            return Some(Sandbox {
                rules: crate::policy::describe(sb, egress_denied, &self.data.cfg.budget, used),
                source,
                disconnected: false,
            });
        }
        let stored = self.store()?.get(name).await.ok()??;
        let cfg = self.data.cfg.stored_sandbox(name, &stored.spec).ok()?;
        Some(Sandbox {
            rules: crate::policy::describe(
                &crate::sandbox::Sandbox::new(cfg),
                egress_denied,
                &self.data.cfg.budget,
                used,
            ),
            source,
            disconnected: stored.disconnected_at.is_some(),
        })
    }
}

/// The sandbox keys as the store keeps them: the policy, and the secret's SHA-256.
fn stored_spec(policy: &Policy, secret: &str) -> Result<serde_json::Value, AdminError> {
    let mut spec =
        serde_json::to_value(policy).map_err(|e| AdminError::BadRequest(e.to_string()))?;
    let digest: String = crate::config::Credential::digest(secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    spec["secret"] = serde_json::json!({ "sha256": digest });
    Ok(spec)
}

fn number(id: &str, what: &str) -> Result<i64, AdminError> {
    id.parse()
        .map_err(|_| AdminError::NotFound(format!("no {what} {id}")))
}

/// A request body of the type its route takes.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    if body.is_empty() {
        return Err(AdminError::BadRequest(
            "the request needs a JSON body".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| AdminError::BadRequest(format!("the body: {e}")))
}

/// The request's body (at most [`BODY_LIMIT`], within 10 s).
async fn read(body: Incoming) -> Result<Bytes, AdminError> {
    let collected = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        http_body_util::Limited::new(body, BODY_LIMIT).collect(),
    )
    .await;
    match collected {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        _ => Err(AdminError::TooLarge(format!(
            "the body must be JSON under {} KiB, sent within 10 s",
            BODY_LIMIT >> 10
        ))),
    }
}

/// A new sandbox secret: 32 random bytes, hex.
fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
