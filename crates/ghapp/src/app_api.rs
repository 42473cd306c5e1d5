//! `ghapp installations`, `ghapp installation ID` and `ghapp hooks …`: the app's own API (app
//! JWT), printed one line per item.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cli::AppFlags;
use crate::cli::HooksCommand;
use crate::context::AppContext;
use crate::out::outln;

pub(crate) fn installations(app: &AppFlags, one: Option<u64>, json: bool) -> Result<ExitCode> {
    let AppContext { broker, rt } = AppContext::load(app, true)?;
    let path = match one {
        Some(id) => format!("/app/installations/{id}"),
        None => "/app/installations".to_owned(),
    };
    let list: Vec<ghapp_core::client::Installation> = rt.block_on(async {
        let r = broker
            .app_request(ghapp_core::client::Method::GET, &path, None)
            .await?;
        if r.status.as_u16() == 404 {
            bail!(
                "installation {} not found for this app (`ghapp installations` lists them)",
                one.unwrap_or(0)
            );
        }
        if !r.status.is_success() {
            return Err(ghapp_core::broker::api_error(&r, &format!("GET {path}")).into());
        }
        Ok(match one {
            Some(_) => vec![r.json(&path)?],
            None => r.json(&path)?,
        })
    })?;
    if json {
        let docs: Vec<serde_json::Value> = list
            .iter()
            .map(|i| {
                serde_json::json!({
                    "id": i.id,
                    "account": i.account.as_ref().map(|a| a.login.as_str()),
                    "repository_selection": i.repository_selection,
                    "permissions": i.permissions,
                })
            })
            .collect();
        match (one, docs.as_slice()) {
            (Some(_), [doc]) => outln!("{doc}"),
            _ => outln!("{}", serde_json::Value::Array(docs)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Tab-separated under a header row; --json for scripts.
    crate::out::list_head(
        list.len(),
        "ID\tACCOUNT\tREPOSITORIES\tPERMISSIONS",
        "no installations",
    );
    for i in list {
        let account = i.account.map(|a| a.login).unwrap_or_default();
        let perms: Vec<String> = i
            .permissions
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        outln!(
            "{}\t{}\t{}\t{}",
            i.id,
            crate::out::field(&account),
            crate::out::field(&i.repository_selection),
            crate::out::field(&perms.join(","))
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn hooks(app: &AppFlags, cmd: &HooksCommand) -> Result<ExitCode> {
    use ghapp_core::client::Method;
    // Offline: no app needed.
    if let HooksCommand::Verify {
        secret_file,
        signature,
    } = cmd
    {
        return verify_hook(secret_file, signature);
    }
    let AppContext { broker, rt } = AppContext::load(app, true)?;
    let (method, path) = match cmd {
        HooksCommand::Verify { .. } => return Ok(ExitCode::SUCCESS),
        HooksCommand::Config => (Method::GET, "/app/hook/config".to_owned()),
        HooksCommand::Deliveries { failed: false } => {
            (Method::GET, "/app/hook/deliveries?per_page=50".to_owned())
        }
        HooksCommand::Deliveries { failed: true } => (
            Method::GET,
            "/app/hook/deliveries?per_page=50&status=failure".to_owned(),
        ),
        HooksCommand::Redeliver { id } => {
            (Method::POST, format!("/app/hook/deliveries/{id}/attempts"))
        }
    };
    let v: serde_json::Value = rt.block_on(async {
        let r = broker.app_request(method.clone(), &path, None).await?;
        if r.status.as_u16() == 404 {
            bail!("GitHub answered 404 to {method} {path}: no such delivery, or the app has no webhook");
        }
        if !r.status.is_success() {
            return Err(ghapp_core::broker::api_error(&r, &format!("{method} {path}")).into());
        }
        Ok(serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null))
    })?;
    match cmd {
        HooksCommand::Config => {
            let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            outln!("url: {}", crate::out::field(&s("url")));
            outln!("content_type: {}", crate::out::field(&s("content_type")));
            outln!("insecure_ssl: {}", crate::out::field(&s("insecure_ssl")));
            // GitHub masks the secret; say whether one is set and never print a value.
            let secret = if v["secret"].as_str().is_some_and(|x| !x.is_empty()) {
                "set (masked)"
            } else {
                "not set"
            };
            outln!("secret: {secret}");
        }
        HooksCommand::Deliveries { .. } => {
            let all = v.as_array().map(Vec::as_slice).unwrap_or_default();
            crate::out::list_head(all.len(), "ID\tDELIVERED\tEVENT\tSTATUS", "no deliveries");
            for d in all {
                let event = match d["action"].as_str() {
                    Some(a) => format!("{}.{a}", d["event"].as_str().unwrap_or("")),
                    None => d["event"].as_str().unwrap_or("").to_owned(),
                };
                outln!(
                    "{}\t{}\t{}\t{} {}{}",
                    d["id"],
                    crate::out::field(d["delivered_at"].as_str().unwrap_or("")),
                    crate::out::field(&event),
                    d["status_code"],
                    crate::out::field(d["status"].as_str().unwrap_or("")),
                    if d["redelivery"].as_bool() == Some(true) {
                        "\tredelivery"
                    } else {
                        ""
                    }
                );
            }
        }
        HooksCommand::Redeliver { id } => outln!("redelivery of {id} requested"),
        HooksCommand::Verify { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `ghapp hooks verify`: the body on stdin (at most 25 MB, GitHub's cap), the secret from a
/// file.
fn verify_hook(secret_file: &std::path::Path, signature: &str) -> Result<ExitCode> {
    use std::io::Read;
    let secret = ghapp_core::fsutil::read_bounded(secret_file, 64 * 1024).map_err(|e| {
        anyhow::anyhow!("cannot read the secret file {}: {e}", secret_file.display())
    })?;
    let mut body = Vec::new();
    std::io::stdin().take(25 << 20).read_to_end(&mut body)?;
    if ghapp_proxy::verify_webhook(
        secret.trim_end_matches(['\n', '\r']).as_bytes(),
        &body,
        signature,
    ) {
        outln!("ok");
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!(
            "the signature does not match: the body was changed, or the secret is not the webhook's"
        )
    }
}
