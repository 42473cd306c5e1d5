//! What `ghapp proxy` checks before it serves (and `--check` alone), as doctor does for the
//! helper: GitHub's certificate trusted, the app's JWT accepted, an installation for each
//! sandbox's repositories.

use std::sync::Arc;

use ghapp_core::broker::Broker;

use crate::sandbox::Sandbox;
use crate::tokens::Tokens;

/// How a start-up check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckLevel {
    Ok,
    Warn,
    Fail,
}

/// One start-up check: what was checked and what was found (for a failure, also the fix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub level: CheckLevel,
    pub what: String,
    pub detail: String,
}

impl Check {
    pub(crate) fn ok(what: &str, detail: String) -> Check {
        Check {
            level: CheckLevel::Ok,
            what: what.to_owned(),
            detail,
        }
    }
    pub(crate) fn warn(what: &str, detail: String) -> Check {
        Check {
            level: CheckLevel::Warn,
            ..Check::ok(what, detail)
        }
    }
    pub(crate) fn fail(what: &str, detail: String) -> Check {
        Check {
            level: CheckLevel::Fail,
            ..Check::ok(what, detail)
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level {
            CheckLevel::Ok => "ok  ",
            CheckLevel::Warn => "warn",
            CheckLevel::Fail => "fail",
        };
        write!(f, "{level}  {}: {}", self.what, self.detail)
    }
}

/// Whether a transport failure is a certificate GitHub's peer presented that is not trusted
/// (rustls' words), rather than the network.
fn is_trust_failure(reason: &str) -> bool {
    ["UnknownIssuer", "invalid peer certificate", "certificate"]
        .iter()
        .any(|w| reason.contains(w))
}

/// Why `repo` cannot be served, in the words `--check` and the admin API use.
pub(crate) fn not_installed(
    repo: &ghapp_gitproto::repo::RepoName,
    e: &ghapp_core::Error,
) -> String {
    match e {
        ghapp_core::Error::NotInstalled { install_url, .. } => format!(
            "{repo}: no such repository, or the app is not installed on it (check the name in repos; install: {install_url})"
        ),
        e => format!("{repo}: {e}"),
    }
}

/// Whether a transport failure is a name that does not resolve.
fn is_unknown_name(reason: &str) -> bool {
    [
        "failed to lookup address",
        "Name or service not known",
        "No address associated",
        "dns error",
    ]
    .iter()
    .any(|w| reason.contains(w))
}

/// What `ghapp proxy` checks before it serves, and `ghapp proxy --check` alone: GitHub's
/// certificate is trusted, GitHub accepts the app's JWT (`GET /app`), and the app is
/// installed for each sandbox's repositories. A [`CheckLevel::Fail`] is a definite
/// misconfiguration and names the setting to fix; an unreachable GitHub is only a warning (it
/// may be down, and the proxy retries).
pub(crate) fn preflight(tokens: &Tokens, sandboxes: &[Arc<Sandbox>], page: bool) -> Vec<Check> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return vec![Check::fail("runtime", format!("cannot start: {e}"))],
    };
    rt.block_on(preflight_async(tokens, sandboxes, page))
}

async fn preflight_async(tokens: &Tokens, sandboxes: &[Arc<Sandbox>], page: bool) -> Vec<Check> {
    let mut out = Vec::new();
    // The installations found, with their owner: the page's checks are read from each.
    let mut seen: Vec<(String, u64)> = Vec::new();
    for broker in tokens.brokers() {
        if !check_app(broker, &mut out).await {
            return out;
        }
    }
    for sb in sandboxes {
        let what = format!("sandbox {}", sb.name());
        // Each repository: a misspelt one, or one the app is not installed on, would fail only
        // when a sandbox first asks for it.
        let mut by_owner: Vec<(String, Vec<u64>)> = Vec::new();
        let mut failed = false;
        for (repo, found) in tokens.installations(sb).await {
            match found {
                Ok(id) => {
                    let owner = repo.owner().to_ascii_lowercase();
                    match by_owner.iter_mut().find(|(o, _)| *o == owner) {
                        Some((_, ids)) if !ids.contains(&id) => ids.push(id),
                        Some(_) => {}
                        None => by_owner.push((owner, vec![id])),
                    }
                }
                Err(e) => {
                    failed = true;
                    out.push(Check::fail(&what, not_installed(&repo, &e)));
                }
            }
        }
        for (owner, ids) in by_owner {
            for id in &ids {
                if !seen.iter().any(|(_, s)| s == id) {
                    seen.push((owner.clone(), *id));
                }
            }
            match ids.as_slice() {
                [id] if !failed => out.push(Check::ok(
                    &what,
                    format!("installation {id} serves its {owner} repositories"),
                )),
                [_] => {}
                _ => out.push(Check::fail(
                    &what,
                    format!(
                        "its {owner} repositories are in different installations ({ids:?}): one token serves one installation"
                    ),
                )),
            }
        }
    }
    if page {
        for (owner, id) in seen {
            if let Some(broker) = tokens.broker_for(&owner) {
                check_reads_checks(broker, &owner, id, &mut out).await;
            }
        }
    }
    out
}

/// The approvals page shows a held pull request's checks with a `checks: read` token: a
/// warning when installation `id` does not grant it (the page then says so, and shows the
/// rest). Nothing when it does, or when GitHub cannot say.
async fn check_reads_checks(broker: &Broker, owner: &str, id: u64, out: &mut Vec<Check>) {
    let path = format!("/app/installations/{id}");
    let Ok(r) = broker.app_request(reqwest::Method::GET, &path, None).await else {
        return;
    };
    if !r.status.is_success() {
        return;
    }
    let Ok(v) = r.json::<serde_json::Value>("the installation") else {
        return;
    };
    if v["permissions"]["checks"].is_null() {
        out.push(Check::warn(
            "approvals page",
            format!(
                "installation {id} ({owner}) does not grant Checks (read): the page cannot show a held pull request's CI; add it to the app's permissions"
            ),
        ));
    }
}

/// GitHub trusted and the app's JWT accepted; `false` when checking further is pointless.
async fn check_app(broker: &Broker, out: &mut Vec<Check>) -> bool {
    let app = broker.app();
    let api = app.api_url();
    let from = |key: &str| app.sources.of(key);
    match broker.app_info().await {
        Ok(info) => out.push(Check::ok(
            "app",
            format!(
                "{api}{} accepts the JWT of app {} ({})",
                from("api_url"),
                info.slug.as_deref().unwrap_or("?"),
                info.name
            ),
        )),
        Err(ghapp_core::Error::Unreachable { url, reason }) if is_trust_failure(&reason) => {
            out.push(Check::fail(
                    "upstream",
                    format!(
                        "{url}{} presents a certificate this proxy does not trust ({reason}): set upstream_ca_file to the PEM of the CA that signed it",
                        from("api_url")
                    ),
                ));
            return false;
        }
        Err(ghapp_core::Error::Unreachable { url, reason }) if is_unknown_name(&reason) => {
            out.push(Check::fail(
                "upstream",
                format!(
                    "{url}{}: the name does not resolve ({reason}); fix the API URL, or add resolve = [\"NAME=IP\"]; the sandboxes were not checked",
                    from("api_url")
                ),
            ));
            return false;
        }
        Err(e @ ghapp_core::Error::Unreachable { .. }) => {
            out.push(Check::warn(
                "upstream",
                format!(
                    "{e}; serving anyway, requests fail until it is reachable (the sandboxes were not checked)"
                ),
            ));
            return false;
        }
        Err(e @ ghapp_core::Error::JwtRejected { .. }) => {
            out.push(Check::fail(
                "app",
                format!(
                    "{e}: fix app_id{} or the private key{}",
                    from("app_id"),
                    from("key")
                ),
            ));
            return false;
        }
        // GitHub's REST base answers GET /app for any app: a 404 or another refusal there is
        // the wrong URL, not a passing fault.
        Err(ghapp_core::Error::Api { status: 404, .. }) => {
            out.push(Check::fail(
                "app",
                format!(
                    "{api}{} answered 404 to GET /app: it is not GitHub's REST base (on a GHES: https://HOST/api/v3)",
                    from("api_url")
                ),
            ));
            return false;
        }
        Err(
            e @ ghapp_core::Error::Api {
                status: 400..=499, ..
            },
        ) => {
            out.push(Check::fail(
                "app",
                format!("{e}: check the API URL {api}{}", from("api_url")),
            ));
            return false;
        }
        Err(e) => {
            out.push(Check::warn(
                "app",
                format!("{e} (at {api}{})", from("api_url")),
            ));
            return false;
        }
    }
    true
}
