//! `ghapp sandbox add|list|show|set|disconnect`, `ghapp approvals list|show|approve|deny` and
//! `ghapp proposals list|show`:
//! clients of the proxy's admin API (`GHAPP_ADMIN_URL`, `GHAPP_ADMIN_TOKEN`).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::Usage;
use crate::cli::{
    ApprovalsArgs, ApprovalsCommand, ProposalsArgs, ProposalsCommand, SandboxArgs, SandboxCommand,
    SandboxPolicy,
};
use crate::out::outln;

pub(crate) fn run(args: &SandboxArgs) -> Result<ExitCode> {
    let (api, rt) = connect(args.admin.admin_url.as_deref())?;
    rt.block_on(api.command(&args.command))
}

pub(crate) fn approvals(args: &ApprovalsArgs) -> Result<ExitCode> {
    let (api, rt) = connect(args.admin.admin_url.as_deref())?;
    rt.block_on(api.approvals(&args.command))
}

pub(crate) fn proposals(args: &ProposalsArgs) -> Result<ExitCode> {
    let (api, rt) = connect(args.admin.admin_url.as_deref())?;
    rt.block_on(api.proposals(&args.command))
}

fn connect(url: Option<&str>) -> Result<(Api, tokio::runtime::Runtime)> {
    let Some(url) = url else {
        return Err(Usage(
            "ghapp sandbox needs the proxy's admin API: set GHAPP_ADMIN_URL (or --admin-url), e.g. http://127.0.0.1:9091".into(),
        )
        .into());
    };
    let token = ghapp_core::secret::ProxySecret::new(
        std::env::var("GHAPP_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Usage("ghapp sandbox needs GHAPP_ADMIN_TOKEN (the proxy's admin_token)".into())
            })?,
    );
    let api = Api {
        base: url.trim_end_matches('/').to_owned(),
        token,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok((api, rt))
}

struct Api {
    base: String,
    token: ghapp_core::secret::ProxySecret,
}

fn policy(p: &SandboxPolicy) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    if !p.repos.is_empty() {
        m.insert("repos".into(), json!(p.repos));
    }
    if !p.push.is_empty() {
        m.insert("push".into(), json!(p.push));
    }
    if !p.force.is_empty() {
        m.insert("force".into(), json!(p.force));
    }
    if let Some(d) = p.allow_delete {
        m.insert("allow_delete".into(), json!(d));
    }
    if let Some(d) = p.allow_merge {
        m.insert("allow_merge".into(), json!(d));
    }
    if let Some(mode) = &p.mode {
        m.insert("mode".into(), json!(mode));
    }
    m
}

impl Api {
    async fn approvals(&self, c: &ApprovalsCommand) -> Result<ExitCode> {
        use reqwest::Method;
        let (v, json) = match c {
            ApprovalsCommand::List { all, json } => {
                let path = if *all {
                    "/v1/approvals"
                } else {
                    "/v1/approvals?status=pending"
                };
                (self.call(Method::GET, path, None).await?, *json)
            }
            ApprovalsCommand::Show { id, json } => (
                self.call(Method::GET, &format!("/v1/approvals/{id}"), None)
                    .await?,
                *json,
            ),
            ApprovalsCommand::Approve { id, json } => (
                self.call(
                    Method::POST,
                    &format!("/v1/approvals/{id}/approve"),
                    Some(json!({ "by": who() })),
                )
                .await?,
                *json,
            ),
            ApprovalsCommand::Deny { id, reason, json } => (
                self.call(
                    Method::POST,
                    &format!("/v1/approvals/{id}/deny"),
                    Some(json!({ "by": who(), "reason": reason })),
                )
                .await?,
                *json,
            ),
        };
        if json {
            outln!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        let show = |a: &Value| {
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            let decided = match s("status").as_str() {
                "approved" => format!("approved by {}: {}", s("decided_by"), s("pr_url")),
                "pending" => "pending".to_owned(),
                other => format!("{other} by {}: {}", s("decided_by"), s("reason")),
            };
            outln!(
                "{}\t{}\t{}\t{} -> {}\t{}\t{}",
                a["id"],
                s("sandbox"),
                s("repo"),
                s("head"),
                s("base"),
                s("title"),
                decided
            );
        };
        match &v {
            Value::Array(all) => all.iter().for_each(show),
            one => {
                show(one);
                if matches!(c, ApprovalsCommand::Show { .. }) {
                    outln!("{}", one["body"].as_str().unwrap_or_default());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn proposals(&self, c: &ProposalsCommand) -> Result<ExitCode> {
        use reqwest::Method;
        let (v, json) = match c {
            ProposalsCommand::List { sandbox, json } => {
                let path = match sandbox {
                    Some(s) => format!(
                        "/v1/proposals?{}",
                        form_urlencoded::Serializer::new(String::new())
                            .append_pair("sandbox", s)
                            .finish()
                    ),
                    None => "/v1/proposals".to_owned(),
                };
                (self.call(Method::GET, &path, None).await?, *json)
            }
            ProposalsCommand::Show { id, json } => (
                self.call(Method::GET, &format!("/v1/proposals/{id}"), None)
                    .await?,
                *json,
            ),
            ProposalsCommand::Bundle { id, output } => {
                let bytes = self.bytes(&format!("/v1/proposals/{id}/bundle")).await?;
                let path = output
                    .clone()
                    .unwrap_or_else(|| format!("proposal-{id}.bundle").into());
                std::fs::write(&path, &bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                let p = self
                    .call(Method::GET, &format!("/v1/proposals/{id}"), None)
                    .await?;
                outln!(
                    "wrote {} ({} bytes); to take it:",
                    path.display(),
                    bytes.len()
                );
                for r in p["detail"]["refs"].as_array().into_iter().flatten() {
                    let name = r["ref"].as_str().unwrap_or_default();
                    outln!("  git fetch {} {name}:{name}", path.display());
                }
                return Ok(ExitCode::SUCCESS);
            }
        };
        if json {
            outln!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        match &v {
            Value::Array(all) => all.iter().for_each(|p| outln!("{}", proposal_line(p))),
            one => outln!("{}", proposal_text(one)),
        }
        Ok(ExitCode::SUCCESS)
    }

    /// A binary answer (a bundle), or the API's message.
    async fn bytes(&self, path: &str) -> Result<Vec<u8>> {
        let url = format!("{}{path}", self.base);
        let resp = client()?
            .get(&url)
            .bearer_auth(self.token.expose())
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = resp.status();
        let body = resp.bytes().await?.to_vec();
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let msg = v["message"].as_str().unwrap_or("no message");
            bail!("the admin API answered {status} to GET {path}: {msg}");
        }
        Ok(body)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let client = client()?;
        let url = format!("{}{path}", self.base);
        let mut rb = client
            .request(method.clone(), &url)
            .bearer_auth(self.token.expose());
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            bail!("the admin API answered {status} to {method} {path}: {msg}");
        }
        Ok(v)
    }

    async fn command(&self, c: &SandboxCommand) -> Result<ExitCode> {
        use reqwest::Method;
        let (v, json) = match c {
            SandboxCommand::Add {
                name,
                policy: p,
                ca_file,
                json,
            } => {
                if p.repos.is_empty() {
                    return Err(Usage(format!(
                        "ghapp sandbox add {name}: give its repositories (--repo OWNER/REPO)"
                    ))
                    .into());
                }
                let mut body = policy(p);
                body.insert("name".into(), json!(name));
                let v = self
                    .call(Method::POST, "/v1/sandboxes", Some(Value::Object(body)))
                    .await?;
                if *json {
                    (v, true)
                } else {
                    let ca = ca_file
                        .clone()
                        .unwrap_or_else(|| std::path::PathBuf::from(format!("{name}-ca.pem")));
                    let pem = v["ca_pem"].as_str().unwrap_or_default();
                    std::fs::write(&ca, pem)
                        .with_context(|| format!("cannot write the CA to {}", ca.display()))?;
                    let ca = std::path::absolute(&ca).unwrap_or(ca);
                    outln!("# sandbox {name}: its environment (the secret is shown this once)");
                    if let Some(env) = v["env"].as_object() {
                        for (k, val) in env {
                            outln!("export {k}={}", shell(val.as_str().unwrap_or_default()));
                        }
                    }
                    for k in v["ca_env"].as_array().into_iter().flatten() {
                        outln!(
                            "export {}={}",
                            k.as_str().unwrap_or_default(),
                            shell(&ca.display().to_string())
                        );
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            }
            SandboxCommand::List { json } => {
                (self.call(Method::GET, "/v1/sandboxes", None).await?, *json)
            }
            SandboxCommand::Show { name, json } => (
                self.call(Method::GET, &format!("/v1/sandboxes/{name}"), None)
                    .await?,
                *json,
            ),
            SandboxCommand::Set {
                name,
                policy: p,
                json,
            } => {
                let body = policy(p);
                if body.is_empty() {
                    return Err(Usage(format!(
                        "ghapp sandbox set {name}: nothing to change (--repo, --push, --force, --allow-delete)"
                    ))
                    .into());
                }
                (
                    self.call(
                        Method::PATCH,
                        &format!("/v1/sandboxes/{name}"),
                        Some(Value::Object(body)),
                    )
                    .await?,
                    *json,
                )
            }
            SandboxCommand::Disconnect { name, json } => (
                self.call(Method::DELETE, &format!("/v1/sandboxes/{name}"), None)
                    .await?,
                *json,
            ),
        };
        if json {
            outln!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            match &v {
                Value::Array(all) => all.iter().for_each(line),
                one => line(one),
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// One sandbox in a line: name, where it comes from, repositories, pushes, state.
fn line(v: &Value) {
    if v.get("tokens_revoked").is_some() {
        outln!(
            "{}: disconnected ({} token(s) revoked)",
            v["name"].as_str().unwrap_or_default(),
            v["tokens_revoked"]
        );
        return;
    }
    let list = |x: &Value| {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    outln!(
        "{}\t{}\trepos={}\tpush={}\t{}",
        v["sandbox"].as_str().unwrap_or_default(),
        v["source"].as_str().unwrap_or_default(),
        list(&v["repositories"]),
        list(&v["push"]["refs"]),
        if v["disconnected"] == json!(true) {
            "disconnected"
        } else {
            "active"
        }
    );
}

/// `s` quoted for a POSIX shell.
fn shell(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The admin API's client: no proxy, a 30 s deadline.
fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .no_proxy()
        .build()?)
}

/// One proposal in a line: id, sandbox, repository, what it would have done.
fn proposal_line(p: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let d = &p["detail"];
    let what = match p["kind"].as_str() {
        Some("push") => {
            let refs: Vec<String> = d["refs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| s(&r["ref"]))
                .collect();
            format!(
                "push {}: {} commits, {} paths",
                refs.join(" "),
                d["commits_total"],
                d["paths_total"]
            )
        }
        _ => format!(
            "pull request {} -> {}: {}",
            s(&d["head"]),
            s(&d["base"]),
            s(&d["title"])
        ),
    };
    format!(
        "{}\t{}\t{}\t{what}",
        p["id"],
        s(&p["sandbox"]),
        s(&p["repo"])
    )
}

/// One proposal whole: its line, then a push's refs, commits, paths and diff, or a pull
/// request's body.
fn proposal_text(p: &Value) -> String {
    use std::fmt::Write;
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let d = &p["detail"];
    let mut out = proposal_line(p);
    out.push('\n');
    if p["kind"] == "push" {
        for r in d["refs"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "ref {} {} -> {}",
                s(&r["ref"]),
                s(&r["old"]),
                s(&r["new"])
            );
        }
        for c in d["commits"].as_array().into_iter().flatten() {
            let first = s(&c["message"])
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            let _ = writeln!(out, "commit {} {} {first}", s(&c["id"]), s(&c["author"]));
        }
        for f in d["paths"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "{}\t{}", s(&f["status"]), s(&f["path"]));
        }
        if let Some(n) = p["bundle_bytes"].as_i64() {
            let _ = writeln!(
                out,
                "bundle: {n} bytes (ghapp proposals bundle {} saves it)",
                p["id"]
            );
        }
        out.push('\n');
        out.push_str(&s(&p["diff"]));
        if d["diff_truncated"] == true {
            out.push_str("\n(the diff is cut here: the proxy keeps the first 256 KiB)\n");
        }
    } else {
        out.push_str(&s(&d["body"]));
    }
    out
}

/// Who decides, for the record: `$USER`, else "ghapp approvals".
fn who() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "ghapp approvals".into())
}
