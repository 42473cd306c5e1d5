//! The app's own endpoints (JWT): the app, its installations and their tokens, the manifest
//! flow's conversion, the webhook's configuration and deliveries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::{Answer, Ctx, err, not_found, repo_doc};
use crate::hub::{App, Hub, IssuedToken, Mint, level_covers};
use crate::{Body, json as docs, json_response};

pub(super) async fn get_app(c: Ctx) -> Answer {
    let app = c.jwt()?;
    Ok(json_response(StatusCode::OK, &app_doc(&c.hub, &app)))
}

pub(super) async fn list_installations(c: Ctx) -> Answer {
    let app = c.jwt()?;
    let list: Vec<Value> = c
        .hub
        .installations_of(app.id)
        .iter()
        .map(|i| installation_doc(&c.hub, i))
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(list)))
}

pub(super) async fn get_installation(c: Ctx) -> Answer {
    let app = c.jwt()?;
    match c
        .param(0)
        .parse()
        .ok()
        .and_then(|id| c.hub.installation(id))
    {
        Some(i) if i.app_id == app.id => {
            Ok(json_response(StatusCode::OK, &installation_doc(&c.hub, &i)))
        }
        _ => Ok(not_found()),
    }
}

/// `DELETE /app/installations/{id}`: the app uninstalled from the account; its tokens stop
/// working at once (GitHub revokes them), later lookups answer 404.
pub(super) async fn delete_installation(c: Ctx) -> Answer {
    let app = c.jwt()?;
    let Some(id) = c.param(0).parse::<u64>().ok() else {
        return Ok(not_found());
    };
    let mut list = c
        .hub
        .installations
        .write()
        .unwrap_or_else(|e| e.into_inner());
    let before = list.len();
    list.retain(|i| !(i.id == id && i.app_id == app.id));
    if list.len() == before {
        return Ok(not_found());
    }
    drop(list);
    for t in c
        .hub
        .tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values_mut()
    {
        if t.installation_id == id {
            t.revoked = true;
        }
    }
    Ok(crate::empty(StatusCode::NO_CONTENT))
}

pub(super) async fn create_access_token(c: Ctx) -> Answer {
    let app = c.jwt()?;
    let id: u64 = c.param(0).parse().unwrap_or(0);
    Ok(mint(&c.hub, &app, id, c.req).await)
}

pub(super) async fn repo_installation(c: Ctx) -> Answer {
    let app = c.jwt()?;
    match c.hub.installation_for_repo(app.id, c.param(0), c.param(1)) {
        Some(i) => Ok(json_response(StatusCode::OK, &installation_doc(&c.hub, &i))),
        None => Ok(not_found()),
    }
}

/// `GET /users/{user}/installation` and `GET /orgs/{org}/installation`.
pub(super) async fn owner_installation(c: Ctx) -> Answer {
    let app = c.jwt()?;
    let owner = c.param(0);
    match c
        .hub
        .installations_of(app.id)
        .iter()
        .find(|i| i.account.eq_ignore_ascii_case(owner))
    {
        Some(i) => Ok(json_response(StatusCode::OK, &installation_doc(&c.hub, i))),
        None => Ok(not_found()),
    }
}

pub(super) async fn convert_manifest(c: Ctx) -> Answer {
    Ok(crate::manifest::convert(&c.hub, c.param(0)))
}

pub(super) async fn hook_config(c: Ctx) -> Answer {
    let app = c.jwt()?;
    let mut config = json!({
        "url": app.hook_url.clone().unwrap_or_default(),
        "content_type": "json",
        "insecure_ssl": "0"
    });
    // GitHub masks a secret that is set and sends none otherwise.
    if app.hook_url.is_some() {
        config["secret"] = json!("********");
    }
    Ok(json_response(StatusCode::OK, &config))
}

pub(super) async fn list_deliveries(c: Ctx) -> Answer {
    let app = c.jwt()?;
    let status = c.query().get("status").cloned();
    if status
        .as_deref()
        .is_some_and(|s| s != "success" && s != "failure")
    {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "status must be success or failure",
        ));
    }
    let list: Vec<Value> = c
        .hub
        .deliveries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .rev()
        .filter(|_| app.id == crate::APP_ID)
        .filter(|d| match status.as_deref() {
            Some("success") => d.status_code < 400,
            Some("failure") => d.status_code >= 400,
            _ => true,
        })
        .map(|d| serde_json::to_value(d).unwrap_or_default())
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(list)))
}

pub(super) async fn redeliver(c: Ctx) -> Answer {
    if c.jwt()?.id != crate::APP_ID {
        return Err(not_found());
    }
    let id: u64 = c.param(0).parse().map_err(|_| not_found())?;
    let mut ds = c.hub.deliveries.lock().unwrap_or_else(|e| e.into_inner());
    let orig = ds
        .iter()
        .find(|d| d.id == id)
        .cloned()
        .ok_or_else(not_found)?;
    let next = ds.iter().map(|d| d.id).max().unwrap_or(0) + 1;
    ds.push(crate::hub::Delivery {
        id: next,
        redelivery: true,
        status: "OK".into(),
        status_code: 200,
        delivered_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        ..orig
    });
    Ok(json_response(StatusCode::ACCEPTED, &json!({})))
}

pub(crate) fn app_doc(hub: &Hub, app: &App) -> Value {
    json!({
        "id": app.id,
        "slug": app.slug,
        "node_id": format!("A_kwDO{}", app.id),
        "client_id": app.client_id,
        "owner": docs::simple_user(&hub.base_url, &app.owner, 9000, "Organization"),
        "name": app.name,
        "description": "The GitHub App emulated by fakehub",
        "external_url": "https://example.invalid/ghapp",
        "html_url": format!("{}/apps/{}", hub.base_url, app.slug),
        "created_at": docs::CREATED,
        "updated_at": docs::CREATED,
        "permissions": app.permissions,
        "events": [],
        "installations_count": hub.installations_of(app.id).len()
    })
}

pub(crate) fn installation_doc(hub: &Hub, i: &crate::hub::Installation) -> Value {
    let api = format!("{}/api/v3", hub.base_url);
    let app = hub.app(i.app_id);
    let (client_id, slug) = app.map(|a| (a.client_id, a.slug)).unwrap_or_default();
    json!({
        "id": i.id,
        "account": docs::simple_user(&hub.base_url, &i.account, i.account_id, i.account_type),
        "repository_selection": if i.repositories.is_some() { "selected" } else { "all" },
        "access_tokens_url": format!("{api}/app/installations/{}/access_tokens", i.id),
        "repositories_url": format!("{api}/installation/repositories"),
        "html_url": format!("{}/organizations/{}/settings/installations/{}", hub.base_url, i.account, i.id),
        "app_id": i.app_id,
        "client_id": client_id,
        "app_slug": slug,
        "target_id": i.account_id,
        "target_type": i.account_type,
        "permissions": i.permissions,
        "events": [],
        "created_at": docs::CREATED,
        "updated_at": docs::CREATED,
        "single_file_name": null,
        "has_multiple_single_files": false,
        "single_file_paths": [],
        "suspended_by": null,
        "suspended_at": null
    })
}

/// `POST /app/installations/{id}/access_tokens`, with GitHub's narrowing rules.
async fn mint(hub: &Arc<Hub>, app: &App, id: u64, req: Request<Incoming>) -> Response<Body> {
    let Some(inst) = hub.installation(id).filter(|i| i.app_id == app.id) else {
        return not_found();
    };
    // GitHub's switch for testing either token format.
    let stateless = match req
        .headers()
        .get("x-github-stateless-s2s-token")
        .and_then(|v| v.to_str().ok())
    {
        Some("enabled") => Some(true),
        Some("disabled") => Some(false),
        _ => None,
    };
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return err(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
    };
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return err(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
        }
    };
    hub.with_counters(|c| c.mint_bodies.push(v.clone()));
    // Fault knob: fail the next N mints.
    if hub
        .knobs
        .fail_mints
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let status = StatusCode::from_u16(hub.knobs.fail_status.load(Ordering::Relaxed) as u16)
            .unwrap_or(StatusCode::BAD_GATEWAY);
        return err(status, "Server Error");
    }
    let reachable = hub.installation_repos(&inst);
    let repositories: Option<Vec<String>> = match v.get("repositories") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let mut names = Vec::new();
            for n in a {
                let Some(n) = n.as_str() else {
                    return err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid request. For 'properties/repositories', items must be strings.",
                    );
                };
                names.push(n.to_owned());
            }
            if names.len() > 500 {
                return err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Too many repositories requested: at most 500.",
                );
            }
            for n in &names {
                if !reachable.iter().any(|r| r.name.eq_ignore_ascii_case(n)) {
                    return err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "There is at least one repository that does not exist or is not accessible to the parent installation.",
                    );
                }
            }
            Some(names.iter().map(|n| n.to_ascii_lowercase()).collect())
        }
        Some(_) => {
            return err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid request. For 'properties/repositories', must be an array.",
            );
        }
    };
    let permissions: BTreeMap<String, String> = match v.get("permissions") {
        // Left out, or empty (GitHub Enterprise Server before 2.19 required `{}`): all of the
        // installation's permissions.
        None | Some(Value::Null) => inst.permissions.clone(),
        Some(Value::Object(m)) if m.is_empty() => inst.permissions.clone(),
        Some(Value::Object(m)) => {
            let mut out = BTreeMap::new();
            for (k, lvl) in m {
                let lvl = lvl.as_str().unwrap_or("");
                let granted = inst.permissions.get(k).map(String::as_str).unwrap_or("");
                if !level_covers(granted, lvl) {
                    return err(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "The permissions requested are not granted to this installation.",
                    );
                }
                out.insert(k.clone(), lvl.to_owned());
            }
            out
        }
        Some(_) => {
            return err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid request. For 'properties/permissions', must be an object.",
            );
        }
    };
    let ttl = hub.knobs.token_ttl.load(Ordering::Relaxed) as i64;
    let expires_at = hub.now() + ttl;
    let token = hub.new_token(app.id, stateless);
    hub.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(
        token.clone(),
        IssuedToken {
            installation_id: id,
            repositories: repositories.clone(),
            user: None,
            permissions: permissions.clone(),
            expires_at,
            revoked: false,
        },
    );
    hub.issued
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(token.clone());
    hub.with_counters(|c| {
        c.mints.push(Mint {
            installation_id: id,
            repositories: repositories.clone(),
            permissions: permissions.clone(),
        })
    });
    let listed: Vec<Value> = reachable
        .iter()
        .filter(|r| match &repositories {
            None => true,
            Some(list) => list.iter().any(|n| n.eq_ignore_ascii_case(&r.name)),
        })
        .map(|r| repo_doc(hub, r, None))
        .collect();
    let expires = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(expires_at.max(0) as u64),
    )
    .to_string();
    json_response(
        StatusCode::CREATED,
        &json!({
            "token": token,
            "expires_at": expires,
            "permissions": permissions,
            "repository_selection": if repositories.is_some() || inst.repositories.is_some() { "selected" } else { "all" },
            "repositories": listed,
        }),
    )
}
