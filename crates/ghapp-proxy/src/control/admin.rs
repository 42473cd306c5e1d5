//! The admin API , on its own listener (`admin_listen`, never the sandbox
//! listener), a bearer token (`admin_token`), JSON:
//!
//! | method and path | does |
//! |---|---|
//! | `POST /v1/sandboxes` | adds a sandbox (`name`, `repos`, `push` and the other `[[sandbox]]` keys but `secret`); answers its secret (once), `HTTPS_PROXY`, the CA and the environment |
//! | `GET /v1/sandboxes`, `GET /v1/sandboxes/{name}` | the sandboxes (the file's and the store's) and their rules |
//! | `PATCH /v1/sandboxes/{name}` | changes a stored sandbox's keys (e.g. `repos`) |
//! | `DELETE /v1/sandboxes/{name}` | disconnects it: its tokens revoked at GitHub and dropped, its tunnels closed, new ones refused |
//! | `GET /v1/approvals[?status=S]`, `GET /v1/approvals/{id}` | pull requests held for a human (learning, assisted) |
//! | `POST /v1/approvals/{id}/approve`, `POST /v1/approvals/{id}/deny` | decides one: the proxy creates the pull request, or the agent is told the reason |
//! | `GET /v1/proposals[?sandbox=NAME]`, `GET /v1/proposals/{id}[/bundle]` | what observe-mode sandboxes would have done (one with its diff; a push's commits as a git bundle) |
//!
//! Described in `docs/reference/admin-api.yaml` (OpenAPI).

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::ControlPlane;
use crate::respond::Body;
use crate::store::StoreError;

/// The largest admin request body.
const BODY_LIMIT: usize = 64 * 1024;
/// The `[[sandbox]]` keys the admin API takes (all but `name` and `secret`).
const KEYS: &[&str] = &[
    "repos",
    "push",
    "allow_delete",
    "allow_merge",
    "rest",
    "force",
    "protected_paths",
    "max_file_bytes",
    "max_push_bytes",
    "secret_scan",
    "inspect",
    "mode",
    "significant",
];
/// The variables that name the proxy's CA for each runtime.
pub(crate) const CA_VARIABLES: &[&str] = &[
    "GIT_SSL_CAINFO",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
];

fn answer(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = crate::respond::json_body(status, "application/json", v);
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    answer(status, &json!({ "message": message.into() }))
}

impl ControlPlane {
    /// One admin API request (served by `Proxy::serve_side` on `admin_listen`).
    pub(crate) async fn admin(&self, req: Request<Incoming>) -> Response<Body> {
        if super::page::is_page(req.uri().path()) {
            return self.page(req).await;
        }
        let authorized = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .zip(self.data.cfg.admin_token.as_ref())
            .is_some_and(|(given, token)| token.matches(given.trim()));
        if !authorized {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "the admin API needs Authorization: Bearer <admin_token> (GHAPP_ADMIN_TOKEN for ghapp sandbox)",
            );
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
        let Some(store) = self.store() else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the state store is not open",
            );
        };
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().trim_end_matches('/');
        let name = path.strip_prefix("/v1/sandboxes/").map(str::to_owned);
        let body = match read(body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        if let Some(rest) = path.strip_prefix("/v1/proposals") {
            return self
                .admin_proposals(&parts.method, rest, parts.uri.query())
                .await;
        }
        if let Some(rest) = path.strip_prefix("/v1/approvals") {
            return self
                .admin_approvals(&parts.method, rest, parts.uri.query(), body)
                .await;
        }
        match (&parts.method, path, name) {
            (&Method::GET, "/v1/sandboxes", None) => {
                let mut all = Vec::new();
                for sb in &self.data.live.get().sandboxes {
                    all.push(self.describe_sandbox(sb.name()).await);
                }
                if let Ok(stored) = store.all().await {
                    for s in stored.iter().filter(|s| s.disconnected_at.is_some()) {
                        all.push(self.describe_sandbox(&s.name).await);
                    }
                }
                answer(StatusCode::OK, &Value::Array(all))
            }
            (&Method::POST, "/v1/sandboxes", None) => self.add_sandbox(body).await,
            (&Method::GET, _, Some(n)) => {
                let v = self.describe_sandbox(&n).await;
                if v.is_null() {
                    error(StatusCode::NOT_FOUND, format!("no sandbox {n}"))
                } else {
                    answer(StatusCode::OK, &v)
                }
            }
            (&Method::PATCH, _, Some(n)) => self.set_sandbox(&n, body).await,
            (&Method::DELETE, _, Some(n)) => match store.disconnect(&n).await {
                Ok(()) => {
                    let revoked = self.sync_store().await;
                    answer(
                        StatusCode::OK,
                        &json!({ "name": n, "disconnected": true, "tokens_revoked": revoked }),
                    )
                }
                Err(e) => self.store_error(&n, e),
            },
            _ => error(
                StatusCode::NOT_FOUND,
                "the admin API: GET|POST /v1/sandboxes, GET|PATCH|DELETE /v1/sandboxes/{name}, GET /v1/approvals[/{id}], POST /v1/approvals/{id}/approve|deny, GET /v1/proposals[/{id}]",
            ),
        }
    }

    /// `GET /v1/proposals[?sandbox=NAME]` (newest first, without diffs) and
    /// `GET /v1/proposals/{id}` (with its diff), `GET /v1/proposals/{id}/bundle` (a push's
    /// commits as a git bundle); `rest` is the path after `/v1/proposals`.
    async fn admin_proposals(
        &self,
        method: &Method,
        rest: &str,
        query: Option<&str>,
    ) -> Response<Body> {
        let Some(store) = self.store() else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the state store is not open",
            );
        };
        let id = rest.trim_start_matches('/');
        match (method, id) {
            (&Method::GET, "") => {
                let sandbox = form_urlencoded::parse(query.unwrap_or("").as_bytes())
                    .find(|(k, _)| k == "sandbox")
                    .map(|(_, v)| v.into_owned());
                match store.proposals(sandbox.as_deref()).await {
                    Ok(all) => answer(StatusCode::OK, &json!(all)),
                    Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                }
            }
            (&Method::GET, id) if id.ends_with("/bundle") => {
                let n = id.trim_end_matches("/bundle");
                let Ok(n) = n.parse::<i64>() else {
                    return error(StatusCode::NOT_FOUND, format!("no proposal {n}"));
                };
                match store.proposal_bundle(n).await {
                    Ok(Some(b)) => {
                        let mut r = Response::new(crate::respond::full(b));
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("application/octet-stream"),
                        );
                        r
                    }
                    Ok(None) => error(
                        StatusCode::NOT_FOUND,
                        format!(
                            "proposal {n} has no bundle (not a push, over 4 MiB, or one of its sandbox's older proposals)"
                        ),
                    ),
                    Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                }
            }
            (&Method::GET, id) => match id.parse::<i64>() {
                Ok(n) => match store.proposal(n).await {
                    Ok(Some(p)) => answer(StatusCode::OK, &json!(p)),
                    Ok(None) => error(StatusCode::NOT_FOUND, format!("no proposal {n}")),
                    Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                },
                Err(_) => error(StatusCode::NOT_FOUND, format!("no proposal {id}")),
            },
            _ => error(
                StatusCode::NOT_FOUND,
                "proposals: GET /v1/proposals[?sandbox=NAME], GET /v1/proposals/{id}[/bundle]",
            ),
        }
    }

    /// `GET /v1/approvals[?status=S]`, `GET /v1/approvals/{id}`,
    /// `POST /v1/approvals/{id}/approve` (`{"by"}`), `POST /v1/approvals/{id}/deny`
    /// (`{"reason", "by"}`); `rest` is the path after `/v1/approvals`.
    async fn admin_approvals(
        &self,
        method: &Method,
        rest: &str,
        query: Option<&str>,
        body: Value,
    ) -> Response<Body> {
        let Some(store) = self.store() else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the state store is not open",
            );
        };
        let by = body["by"].as_str().unwrap_or("admin API").to_owned();
        let mut parts = rest.trim_start_matches('/').splitn(2, '/');
        let id = parts.next().filter(|s| !s.is_empty());
        let action = parts.next();
        let outcome = match (method, id, action) {
            (&Method::GET, None, None) => {
                let status = query
                    .into_iter()
                    .flat_map(|q| q.split('&'))
                    .find_map(|kv| kv.strip_prefix("status="));
                return match store.approvals(status).await {
                    Ok(all) => answer(StatusCode::OK, &json!(all)),
                    Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                };
            }
            (_, Some(id), action) => {
                let Ok(id) = id.parse::<i64>() else {
                    return error(StatusCode::NOT_FOUND, format!("no approval {id}"));
                };
                match (method, action) {
                    (&Method::GET, None) => match store.approval(id).await {
                        Ok(Some(a)) => Ok(a),
                        Ok(None) => Err((StatusCode::NOT_FOUND, format!("no approval {id}"))),
                        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
                    },
                    (&Method::POST, Some("approve")) => self.approve(id, &by).await,
                    (&Method::POST, Some("deny")) => {
                        let reason = body["reason"].as_str().unwrap_or_default();
                        self.deny(id, &by, reason).await
                    }
                    _ => Err((
                        StatusCode::NOT_FOUND,
                        "approvals: GET /v1/approvals[/{id}], POST /v1/approvals/{id}/approve|deny"
                            .into(),
                    )),
                }
            }
            _ => Err((
                StatusCode::NOT_FOUND,
                "approvals: GET /v1/approvals[/{id}]".into(),
            )),
        };
        match outcome {
            Ok(a) => answer(StatusCode::OK, &json!(a)),
            Err((status, why)) => error(status, why),
        }
    }

    fn store_error(&self, name: &str, e: StoreError) -> Response<Body> {
        let file = self.data.cfg.sandboxes.iter().any(|s| s.name == name);
        match e {
            StoreError::Missing(_) if file => error(
                StatusCode::CONFLICT,
                format!("sandbox {name} is configured in the proxy's file: change it there"),
            ),
            StoreError::Missing(_) => error(StatusCode::NOT_FOUND, format!("no sandbox {name}")),
            StoreError::Exists(_) => error(StatusCode::CONFLICT, format!("sandbox {name} exists")),
            StoreError::Full(_) => error(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
            StoreError::Db(m) => {
                tracing::error!("admin API: {m}");
                error(StatusCode::SERVICE_UNAVAILABLE, m)
            }
        }
    }

    async fn add_sandbox(&self, body: Value) -> Response<Body> {
        let Some(store) = self.store() else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the state store is not open",
            );
        };
        let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_owned) else {
            return error(StatusCode::BAD_REQUEST, "a sandbox needs a \"name\"");
        };
        if self.data.cfg.sandboxes.iter().any(|s| s.name == name) {
            return error(
                StatusCode::CONFLICT,
                format!("sandbox {name} is configured in the proxy's file"),
            );
        }
        let mut spec = match keys(&body, true) {
            Ok(s) => s,
            Err(why) => return error(StatusCode::BAD_REQUEST, why),
        };
        let secret = new_secret();
        let digest: String = crate::config::Credential::digest(&secret)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        spec.insert("secret".into(), json!({ "sha256": digest }));
        let spec = Value::Object(spec);
        if let Err(e) = self.data.cfg.stored_sandbox(&name, &spec) {
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
        if let Err(e) = store.add(&name, &spec).await {
            return self.store_error(&name, e);
        }
        self.sync_store().await;
        let at = self
            .data
            .cfg
            .advertise
            .clone()
            .unwrap_or_else(|| self.data.cfg.listen.to_string());
        let proxy = format!("http://{name}:{secret}@{at}");
        let mut out = self.describe_sandbox(&name).await;
        out["secret"] = json!(secret);
        out["https_proxy"] = json!(proxy);
        out["ca_pem"] = json!(self.data.ca.cert_pem.as_str());
        out["env"] = json!({ "HTTPS_PROXY": proxy, "GIT_HTTP_PROXY_AUTHMETHOD": "basic" });
        out["ca_env"] = json!(CA_VARIABLES);
        answer(StatusCode::CREATED, &out)
    }

    async fn set_sandbox(&self, name: &str, body: Value) -> Response<Body> {
        let Some(store) = self.store() else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the state store is not open",
            );
        };
        let current = match store.get(name).await {
            Ok(Some(s)) if s.disconnected_at.is_none() => s,
            Ok(_) => return self.store_error(name, StoreError::Missing(name.into())),
            Err(e) => return self.store_error(name, e),
        };
        let changes = match keys(&body, false) {
            Ok(s) => s,
            Err(why) => return error(StatusCode::BAD_REQUEST, why),
        };
        let mut spec = current.spec;
        if let Some(m) = spec.as_object_mut() {
            m.extend(changes);
        }
        if let Err(e) = self.data.cfg.stored_sandbox(name, &spec) {
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
        if let Err(e) = store.set(name, &spec).await {
            return self.store_error(name, e);
        }
        self.sync_store().await;
        answer(StatusCode::OK, &self.describe_sandbox(name).await)
    }

    /// A sandbox as the admin API shows it: its rules (as `GET /policy` words them), where it
    /// comes from, whether it is disconnected; `null` when there is none.
    async fn describe_sandbox(&self, name: &str) -> Value {
        let file = self.data.cfg.sandboxes.iter().any(|s| s.name == name);
        if let Some(sb) = self.data.live.get().sandbox(name) {
            let mut v = crate::policy::describe(
                sb,
                self.data.live.get().egress == crate::config::Egress::Deny,
            );
            v["source"] = json!(if file { "file" } else { "store" });
            v["disconnected"] = json!(false);
            return v;
        }
        let Some(store) = self.store() else {
            return Value::Null;
        };
        match store.get(name).await {
            Ok(Some(s)) => json!({
                "sandbox": s.name,
                "repositories": s.spec.get("repos").cloned().unwrap_or(Value::Null),
                "source": "store",
                "disconnected": s.disconnected_at.is_some(),
            }),
            _ => Value::Null,
        }
    }
}

/// The request's JSON body (at most [`BODY_LIMIT`]); `Null` when empty.
async fn read(body: Incoming) -> Result<Value, Response<Body>> {
    let collected = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        http_body_util::Limited::new(body, BODY_LIMIT).collect(),
    )
    .await;
    let bytes: Bytes = match collected {
        Ok(Ok(b)) => b.to_bytes(),
        _ => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body must be JSON under {} KiB, sent within 10 s",
                    BODY_LIMIT >> 10
                ),
            ));
        }
    };
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })
}

/// The sandbox keys of a request body, each one the admin API takes; `name` allowed when
/// adding.
fn keys(body: &Value, adding: bool) -> Result<serde_json::Map<String, Value>, String> {
    let Some(m) = body.as_object() else {
        return Err("the body must be a JSON object".into());
    };
    let mut out = serde_json::Map::new();
    for (k, v) in m {
        if k == "name" && adding {
            continue;
        }
        if !KEYS.contains(&k.as_str()) {
            return Err(format!(
                "unknown key {k:?}: a sandbox takes {}{}",
                if adding { "name, " } else { "" },
                KEYS.join(", ")
            ));
        }
        out.insert(k.clone(), v.clone());
    }
    Ok(out)
}

/// A new sandbox secret: 32 random bytes, hex.
fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
