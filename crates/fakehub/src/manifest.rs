//! The GitHub App manifest flow and the install page, as a browser drives them.
//!
//! - `POST /settings/apps/new?state=S` (or `/organizations/{org}/settings/apps/new`) with the
//!   form field `manifest` (JSON). GitHub shows a confirmation page first; fakehub stands for the
//!   user who clicks "Create GitHub App": it validates the manifest, registers the app with a new
//!   RSA key and redirects (302) to `redirect_url?code=C&state=S`.
//! - `POST /api/v3/app-manifests/{code}/conversions` (no authentication): 201 with the app, its
//!   `pem`, `client_secret` and `webhook_secret`. A code converts once, within one hour of
//!   fakehub's clock; otherwise 404.
//! - `GET /apps/{slug}/installations/new` shows a form; `POST` with `account`, and `repositories`
//!   (comma-separated names; absent or empty: all) installs the app with its permissions.

use std::collections::BTreeMap;
use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use jsonwebtoken::DecodingKey;
use rand::RngExt;
use serde_json::{Value, json};

use crate::hub::{App, AppEntry, Hub, Installation, MANIFEST_CODE_TTL, PendingConversion};
use crate::{Body, json_response};

/// GitHub's limit on app names.
const MAX_NAME: usize = 34;

fn html(status: StatusCode, title: &str, body: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html><html><head><title>{t}</title></head><body><h1>{t}</h1>{body}</body></html>\n",
        t = escape(title)
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .body(crate::full(page.into_bytes()))
        .expect("valid response")
}

fn unprocessable(msg: &str) -> Response<Body> {
    html(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Register new GitHub App",
        &format!("<p class=\"error\">{}</p>", escape(msg)),
    )
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn random(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

const HEX: &[u8] = b"0123456789abcdef";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

async fn form(req: Request<Incoming>) -> Result<BTreeMap<String, String>, Response<Body>> {
    let body = Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
        .map_err(|_| unprocessable("The form is too large."))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    Ok(crate::api::query_map(Some(&text)))
}

/// `slug` as GitHub derives it: lowercase, runs of other characters become one `-`.
fn slug_of(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// `POST /settings/apps/new` and `POST /organizations/{org}/settings/apps/new`.
pub(crate) async fn new_app(
    hub: Arc<Hub>,
    req: Request<Incoming>,
    org: Option<String>,
) -> Response<Body> {
    hub.count(if org.is_some() {
        "web POST /organizations/{org}/settings/apps/new"
    } else {
        "web POST /settings/apps/new"
    });
    if req.method() != Method::POST {
        return html(
            StatusCode::OK,
            "Register new GitHub App",
            "<p>Post a <code>manifest</code> form field to register an app from a manifest.</p>",
        );
    }
    let query = crate::api::query_map(req.uri().query());
    let state = query.get("state").cloned();
    let fields = match form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(manifest) = fields.get("manifest") else {
        return unprocessable("The manifest form field is missing.");
    };
    let m: Value = match serde_json::from_str(manifest) {
        Ok(v @ Value::Object(_)) => v,
        _ => return unprocessable("The manifest is not a JSON object."),
    };
    let name = m["name"].as_str().unwrap_or("").trim().to_owned();
    if name.is_empty() {
        return unprocessable("Name can't be blank");
    }
    if name.chars().count() > MAX_NAME {
        return unprocessable("Name is too long (maximum is 34 characters)");
    }
    let slug = slug_of(&name);
    if slug.is_empty() {
        return unprocessable("Name must contain a letter or a digit");
    }
    if !m["url"].as_str().is_some_and(|u| u.starts_with("http")) {
        return unprocessable("Homepage URL can't be blank");
    }
    let Some(redirect) = m["redirect_url"]
        .as_str()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .map(str::to_owned)
    else {
        return unprocessable("Redirect URL must be an http(s) URL");
    };
    // hook_attributes: {url (required), active (default true)}.
    let hook = &m["hook_attributes"];
    let hook_url = if hook.is_null() {
        None
    } else {
        let Some(url) = hook["url"].as_str().filter(|u| u.starts_with("http")) else {
            return unprocessable("Hook URL can't be blank");
        };
        match hook["active"].as_bool().unwrap_or(true) {
            true if !url.starts_with("https://") => {
                return unprocessable("Hook URL must be an https URL when the webhook is active");
            }
            true => Some(url.to_owned()),
            false => None,
        }
    };
    let mut permissions = BTreeMap::new();
    if let Some(p) = m.get("default_permissions").filter(|v| !v.is_null()) {
        let Some(p) = p.as_object() else {
            return unprocessable("default_permissions must be an object");
        };
        for (k, v) in p {
            let lvl = v.as_str().unwrap_or("");
            let name_ok = !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            if !name_ok || !matches!(lvl, "read" | "write" | "admin") {
                return unprocessable(&format!("Default permission {k} is not valid"));
            }
            permissions.insert(k.clone(), lvl.to_owned());
        }
    }
    // Every app that touches repositories can read their metadata.
    if !permissions.is_empty() {
        permissions
            .entry("metadata".into())
            .or_insert_with(|| "read".into());
    }

    let taken = |apps: &[AppEntry]| {
        apps.iter()
            .any(|e| e.app.slug == slug || e.app.name.eq_ignore_ascii_case(&name))
    };
    // Refuse a taken name before paying for an RSA key; checked again under the write lock.
    if taken(&hub.apps.read().unwrap_or_else(|e| e.into_inner())) {
        return unprocessable("Name is already taken");
    }
    let key = match rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256) {
        Ok(k) => k,
        Err(e) => return unprocessable(&format!("key generation failed: {e}")),
    };
    let (Ok(pem), Ok(decoding)) = (
        crate::pkcs1_pem(&key.serialize_der()),
        DecodingKey::from_rsa_pem(key.public_key_pem().as_bytes()),
    ) else {
        return unprocessable("key encoding failed");
    };
    let app_id = {
        let mut apps = hub.apps.write().unwrap_or_else(|e| e.into_inner());
        if taken(&apps) {
            return unprocessable("Name is already taken");
        }
        let id = apps.iter().map(|e| e.app.id).max().unwrap_or(0) + 1;
        apps.push(AppEntry {
            app: App {
                id,
                client_id: format!("Iv23li{}", random(ALNUM, 14)),
                slug,
                name,
                owner: org.clone().unwrap_or_else(|| crate::USER.into()),
                permissions,
                hook_url: hook_url.clone(),
            },
            decoding_key: decoding,
        });
        id
    };
    let code = random(HEX, 20);
    hub.conversions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            code.clone(),
            PendingConversion {
                app_id,
                pem,
                webhook_secret: hook_url.map(|_| random(HEX, 40)),
                client_secret: random(HEX, 40),
                created_at: hub.now(),
                used: false,
            },
        );
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let mut location = format!("{redirect}{sep}code={code}");
    if let Some(s) = state {
        location.push_str("&state=");
        location.extend(form_urlencoded::byte_serialize(s.as_bytes()));
    }
    Response::builder()
        .status(StatusCode::FOUND)
        .header("location", location)
        .body(crate::full(Vec::new()))
        .expect("valid response")
}

/// `POST /app-manifests/{code}/conversions`.
pub(crate) fn convert(hub: &Hub, code: &str) -> Response<Body> {
    let not_found = || json_response(StatusCode::NOT_FOUND, &crate::json::error("Not Found"));
    let mut pending = hub.conversions.lock().unwrap_or_else(|e| e.into_inner());
    let Some(p) = pending.get_mut(code) else {
        return not_found();
    };
    if p.used || hub.now() >= p.created_at + MANIFEST_CODE_TTL {
        return not_found();
    }
    p.used = true;
    let Some(app) = hub.app(p.app_id) else {
        return not_found();
    };
    let mut doc = crate::api::app_doc(hub, &app);
    doc["client_secret"] = json!(p.client_secret);
    doc["webhook_secret"] = json!(p.webhook_secret);
    doc["pem"] = json!(p.pem);
    json_response(StatusCode::CREATED, &doc)
}

/// Accounts a user of fakehub may install an app on: `(login, id, type)`.
const ACCOUNTS: &[(&str, u64, &str)] = &[
    (crate::ORG, 9000, "Organization"),
    (crate::USER, 9001, "User"),
    ("lonely", 9002, "User"),
];

/// `GET|POST /apps/{slug}/installations/new`.
pub(crate) async fn install(hub: Arc<Hub>, req: Request<Incoming>, slug: &str) -> Response<Body> {
    hub.count(&format!(
        "web {} /apps/{{slug}}/installations/new",
        req.method()
    ));
    let app = {
        let apps = hub.apps.read().unwrap_or_else(|e| e.into_inner());
        apps.iter()
            .find(|e| e.app.slug.eq_ignore_ascii_case(slug))
            .map(|e| e.app.clone())
    };
    let Some(app) = app else {
        return html(StatusCode::NOT_FOUND, "Not Found", "<p>No such app.</p>");
    };
    let title = format!("Install {}", app.name);
    if req.method() != Method::POST {
        let options: String = ACCOUNTS
            .iter()
            .map(|(l, _, _)| format!("<option>{}</option>", escape(l)))
            .collect();
        return html(
            StatusCode::OK,
            &title,
            &format!(
                "<form method=\"post\"><select name=\"account\">{options}</select> \
                 <input name=\"repositories\" placeholder=\"all, or name,name\"> \
                 <button>Install</button></form>"
            ),
        );
    }
    let fields = match form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let account = fields.get("account").map(String::as_str).unwrap_or("");
    let Some(&(login, account_id, kind)) = ACCOUNTS
        .iter()
        .find(|(l, _, _)| l.eq_ignore_ascii_case(account))
    else {
        return unprocessable(&format!("No account {account:?} can install apps here"));
    };
    let selected: Vec<String> = fields
        .get("repositories")
        .map(|r| {
            r.split(',')
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty() && n != "all")
                .collect()
        })
        .unwrap_or_default();
    for n in &selected {
        if hub.find_repo(login, n).is_none() {
            return unprocessable(&format!("{login} has no repository {n}"));
        }
    }
    let id = {
        let mut all = hub.installations.write().unwrap_or_else(|e| e.into_inner());
        if all
            .iter()
            .any(|i| i.app_id == app.id && i.account.eq_ignore_ascii_case(login))
        {
            return unprocessable(&format!("{} is already installed on {login}", app.name));
        }
        let id = all.iter().map(|i| i.id).max().unwrap_or(100) + 1;
        all.push(Installation {
            id,
            app_id: app.id,
            account: login.into(),
            account_id,
            account_type: kind,
            repositories: (!selected.is_empty()).then_some(selected),
            permissions: app.permissions.clone(),
        });
        id
    };
    html(
        StatusCode::OK,
        &title,
        &format!(
            "<p>Installed on {}: installation <span id=\"installation\">{id}</span>.</p>",
            escape(login)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug_of("ghapp for Octo Org"), "ghapp-for-octo-org");
        assert_eq!(slug_of("  a__b!! "), "a-b");
        assert_eq!(slug_of("***"), "");
    }
}
