//! `ghapp sandbox add|list|show|set|disconnect`, `ghapp approvals list|show|approve|deny` and
//! `ghapp proposals list|show`:
//! clients of the proxy's admin API (`GHAPP_ADMIN_URL`, `GHAPP_ADMIN_TOKEN`).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use ghapp_proxy::admin_api::{
    Approval, Checks, Created, Decision, Disconnected, ErrorBody, NewSandbox, Policy, Proposal,
    Sandbox,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Usage;
use crate::cli::{
    ApprovalsArgs, ApprovalsCommand, ProposalsArgs, ProposalsCommand, SandboxArgs, SandboxCommand,
    SandboxPolicy,
};
use crate::out::{block, field, outln};

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
        base: admin_base(url)?,
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

/// The admin API's base URL from `--admin-url`/`GHAPP_ADMIN_URL`, checked: plain `http://`
/// with a host (the API speaks HTTP; TLS, where wanted, is terminated in front of it).
fn admin_base(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let bad =
        |why: &str| -> anyhow::Error { Usage(format!("GHAPP_ADMIN_URL {url:?} {why}")).into() };
    if url.starts_with("https://") {
        return Err(bad(
            "is https: the admin API speaks plain HTTP on admin_listen (terminate TLS in front of it, and name that): use http://HOST:PORT",
        ));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(bad("has no http:// scheme: use e.g. http://127.0.0.1:9091"));
    };
    if rest.is_empty() || reqwest::Url::parse(url).is_err() {
        return Err(bad("is not a URL: use e.g. http://127.0.0.1:9091"));
    }
    Ok(url.to_owned())
}

/// What the admin API's answer `status` with `body` means, for a person: its own message, or
/// what the address is when something else answered.
fn admin_failure(base: &str, status: reqwest::StatusCode, body: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        return e.message;
    }
    let text = String::from_utf8_lossy(body);
    if text.contains("only CONNECT is proxied") {
        return format!(
            "{base} is the proxy's sandbox listener (what HTTPS_PROXY names), not its admin API: use the address of admin_listen"
        );
    }
    format!(
        "{base} answered {status} without the admin API's JSON: is it the proxy's admin_listen?"
    )
}

/// Why the admin API at `base` could not be reached, for a person.
fn unreachable(base: &str, e: &reqwest::Error) -> anyhow::Error {
    let cause = ghapp_core::client::root_cause(e);
    let hint = if cause.contains("InvalidContentType") || cause.contains("corrupt message") {
        ": it answered TLS; the admin API speaks plain HTTP (http://)"
    } else if e.is_connect() {
        ": nothing listens there (is admin_listen set, and the proxy running?)"
    } else {
        ""
    };
    anyhow::anyhow!("cannot reach the admin API at {base} ({cause}){hint}")
}

fn policy(p: &SandboxPolicy) -> Policy {
    let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    Policy {
        repos: list(&p.repos),
        push: list(&p.push),
        force: list(&p.force),
        allow_delete: p.allow_delete,
        allow_merge: p.allow_merge,
        mode: p.mode.clone(),
        ..Policy::default()
    }
}

impl Api {
    async fn approvals(&self, c: &ApprovalsCommand) -> Result<ExitCode> {
        use reqwest::Method;
        let decision = |reason: Option<&String>| Decision {
            by: Some(who()),
            reason: reason.cloned(),
        };
        let (list, json): (Vec<Approval>, bool) = match c {
            ApprovalsCommand::List { all, json } => {
                let path = if *all {
                    "/v1/approvals"
                } else {
                    "/v1/approvals?status=pending"
                };
                (self.call(Method::GET, path, None::<&()>).await?, *json)
            }
            ApprovalsCommand::Show { id, json } => (
                vec![
                    self.call(Method::GET, &format!("/v1/approvals/{id}"), None::<&()>)
                        .await?,
                ],
                *json,
            ),
            ApprovalsCommand::Approve { id, json } => (
                vec![
                    self.call(
                        Method::POST,
                        &format!("/v1/approvals/{id}/approve"),
                        Some(&decision(None)),
                    )
                    .await?,
                ],
                *json,
            ),
            ApprovalsCommand::Deny { id, reason, json } => (
                vec![
                    self.call(
                        Method::POST,
                        &format!("/v1/approvals/{id}/deny"),
                        Some(&decision(Some(reason))),
                    )
                    .await?,
                ],
                *json,
            ),
        };
        let one = !matches!(c, ApprovalsCommand::List { .. });
        if json {
            if one {
                outln!("{}", serde_json::to_string_pretty(&list[0])?);
            } else {
                outln!("{}", serde_json::to_string_pretty(&list)?);
            }
            return Ok(ExitCode::SUCCESS);
        }
        if matches!(c, ApprovalsCommand::List { .. }) {
            crate::out::list_head(
                list.len(),
                "ID\tSANDBOX\tREPOSITORY\tHEAD -> BASE\tTITLE\tSTATE",
                "no approvals",
            );
        }
        for a in &list {
            let decided = match a.status.as_str() {
                "approved" => format!("approved by {}: {}", field(&a.decided_by), field(&a.pr_url)),
                "pending" => "pending".to_owned(),
                other => format!(
                    "{} by {}: {}",
                    field(other),
                    field(&a.decided_by),
                    field(&a.reason)
                ),
            };
            outln!(
                "{}\t{}\t{}\t{} -> {}\t{}\t{}",
                a.id,
                field(&a.sandbox),
                field(&a.repo),
                field(&a.head),
                field(&a.base),
                field(&a.title),
                decided
            );
            if matches!(c, ApprovalsCommand::Show { .. }) {
                outln!("{}", block(&a.body));
                let read: Checks = self
                    .call(
                        Method::GET,
                        &format!("/v1/approvals/{}/checks", a.id),
                        None::<&()>,
                    )
                    .await?;
                outln!("{}", checks_line(&read));
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn proposals(&self, c: &ProposalsCommand) -> Result<ExitCode> {
        use reqwest::Method;
        let (list, json): (Vec<Proposal>, bool) = match c {
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
                (self.call(Method::GET, &path, None::<&()>).await?, *json)
            }
            ProposalsCommand::Show { id, json } => (
                vec![
                    self.call(Method::GET, &format!("/v1/proposals/{id}"), None::<&()>)
                        .await?,
                ],
                *json,
            ),
            ProposalsCommand::Bundle { id, output } => {
                let bytes = self.bytes(&format!("/v1/proposals/{id}/bundle")).await?;
                let path = output
                    .clone()
                    .unwrap_or_else(|| format!("proposal-{id}.bundle").into());
                std::fs::write(&path, &bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                let p: Proposal = self
                    .call(Method::GET, &format!("/v1/proposals/{id}"), None::<&()>)
                    .await?;
                outln!(
                    "wrote {} ({} bytes); to take it:",
                    path.display(),
                    bytes.len()
                );
                for r in p.detail["refs"].as_array().into_iter().flatten() {
                    let name = field(r["ref"].as_str().unwrap_or_default());
                    outln!("  git fetch {} {name}:{name}", path.display());
                }
                return Ok(ExitCode::SUCCESS);
            }
        };
        let one = matches!(c, ProposalsCommand::Show { .. });
        if json {
            if one {
                outln!("{}", serde_json::to_string_pretty(&list[0])?);
            } else {
                outln!("{}", serde_json::to_string_pretty(&list)?);
            }
            return Ok(ExitCode::SUCCESS);
        }
        if !one {
            crate::out::list_head(list.len(), "ID\tSANDBOX\tREPOSITORY\tWHAT", "no proposals");
        }
        for p in &list {
            if one {
                outln!("{}", proposal_text(p));
            } else {
                outln!("{}", proposal_line(p));
            }
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
            .map_err(|e| unreachable(&self.base, &e))?;
        let status = resp.status();
        let body = resp.bytes().await?.to_vec();
        if !status.is_success() {
            let msg = admin_failure(&self.base, status, &body);
            bail!("the admin API answered {status} to GET {path}: {msg}");
        }
        Ok(body)
    }

    /// `method path` with `body` as JSON: the answer, read as `T` (a field it lacks is an
    /// error here, not an empty column), or the API's message.
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let client = client()?;
        let url = format!("{}{path}", self.base);
        let mut rb = client
            .request(method.clone(), &url)
            .bearer_auth(self.token.expose());
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.map_err(|e| unreachable(&self.base, &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap_or_default();
        if !status.is_success() {
            let msg = admin_failure(&self.base, status, &bytes);
            bail!("the admin API answered {status} to {method} {path}: {msg}");
        }
        serde_json::from_slice(&bytes).with_context(|| {
            format!("the admin API's answer to {method} {path} is not what this ghapp reads (is the proxy another version?)")
        })
    }

    async fn command(&self, c: &SandboxCommand) -> Result<ExitCode> {
        use reqwest::Method;
        let show = |v: &dyn erased::Show, json: bool| -> Result<ExitCode> {
            if json {
                outln!("{}", v.json()?);
            } else {
                v.lines();
            }
            Ok(ExitCode::SUCCESS)
        };
        match c {
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
                let new = NewSandbox {
                    name: name.clone(),
                    policy: policy(p),
                };
                let v: Created = self.call(Method::POST, "/v1/sandboxes", Some(&new)).await?;
                if *json {
                    outln!("{}", serde_json::to_string_pretty(&v)?);
                    return Ok(ExitCode::SUCCESS);
                }
                let ca = ca_file
                    .clone()
                    .unwrap_or_else(|| std::path::PathBuf::from(format!("{name}-ca.pem")));
                std::fs::write(&ca, &v.ca_pem)
                    .with_context(|| format!("cannot write the CA to {}", ca.display()))?;
                let ca = std::path::absolute(&ca).unwrap_or(ca);
                outln!("# sandbox {name}: its environment (the secret is shown this once)");
                for (k, val) in &v.env {
                    outln!("export {k}={}", shell(val.expose()));
                }
                for k in &v.ca_env {
                    outln!("export {k}={}", shell(&ca.display().to_string()));
                }
                Ok(ExitCode::SUCCESS)
            }
            SandboxCommand::List { json } => {
                let all: Vec<Sandbox> =
                    self.call(Method::GET, "/v1/sandboxes", None::<&()>).await?;
                show(&all, *json)
            }
            SandboxCommand::Show { name, json } => {
                let one: Sandbox = self
                    .call(Method::GET, &format!("/v1/sandboxes/{name}"), None::<&()>)
                    .await?;
                if *json {
                    return show(&one, true);
                }
                // The line `list` prints, then every rule the sandbox works under.
                line(&one);
                for rule in one.rules.text().lines() {
                    outln!("  {}", field(rule));
                }
                Ok(ExitCode::SUCCESS)
            }
            SandboxCommand::Set {
                name,
                policy: p,
                json,
            } => {
                let body = policy(p);
                if body.is_empty() {
                    return Err(Usage(format!(
                        "ghapp sandbox set {name}: nothing to change (--repo, --push, --force, --allow-delete, --allow-merge, --mode)"
                    ))
                    .into());
                }
                let one: Sandbox = self
                    .call(Method::PATCH, &format!("/v1/sandboxes/{name}"), Some(&body))
                    .await?;
                show(&one, *json)
            }
            SandboxCommand::Disconnect { name, json } => {
                let d: Disconnected = self
                    .call(
                        Method::DELETE,
                        &format!("/v1/sandboxes/{name}"),
                        None::<&()>,
                    )
                    .await?;
                show(&d, *json)
            }
        }
    }
}

/// What a sandbox command prints: its JSON, or its lines.
mod erased {
    use super::*;

    pub(super) trait Show {
        fn json(&self) -> Result<String>;
        fn lines(&self);
    }

    impl Show for Sandbox {
        fn json(&self) -> Result<String> {
            Ok(serde_json::to_string_pretty(self)?)
        }
        fn lines(&self) {
            line(self);
        }
    }

    impl Show for Vec<Sandbox> {
        fn json(&self) -> Result<String> {
            Ok(serde_json::to_string_pretty(self)?)
        }
        fn lines(&self) {
            crate::out::list_head(
                self.len(),
                "NAME\tSOURCE\tMODE\tREPOSITORIES\tPUSH\tSTATE",
                "no sandboxes",
            );
            self.iter().for_each(line);
        }
    }

    impl Show for Disconnected {
        fn json(&self) -> Result<String> {
            Ok(serde_json::to_string_pretty(self)?)
        }
        fn lines(&self) {
            outln!(
                "{}: disconnected ({} token(s) revoked)",
                field(&self.name),
                self.tokens_revoked
            );
        }
    }
}

/// One sandbox in a line: name, where it comes from, trust mode, repositories, pushes, state.
fn line(v: &Sandbox) {
    outln!(
        "{}\t{}\t{}\trepos={}\tpush={}\t{}",
        field(&v.rules.sandbox),
        match v.source {
            ghapp_proxy::admin_api::Source::File => "file",
            ghapp_proxy::admin_api::Source::Store => "store",
        },
        field(&v.rules.mode),
        field(&v.rules.repositories.join(",")),
        field(&v.rules.push.refs.join(",")),
        if v.disconnected {
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
fn proposal_line(p: &Proposal) -> String {
    let s = |v: &Value| field(v.as_str().unwrap_or_default()).into_owned();
    let d = &p.detail;
    let what = match p.kind.as_str() {
        "push" => {
            let refs: Vec<String> = d["refs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| s(&r["ref"]))
                .collect();
            let n = |v: &Value, one: &str| {
                let n = v.as_u64().unwrap_or_default();
                format!("{n} {one}{}", if n == 1 { "" } else { "s" })
            };
            format!(
                "push {}: {}, {}",
                refs.join(" "),
                n(&d["commits_total"], "commit"),
                n(&d["paths_total"], "path")
            )
        }
        "pull_request" => format!(
            "pull request {} -> {}: {}",
            s(&d["head"]),
            s(&d["base"]),
            s(&d["title"])
        ),
        _ => {
            let refs: Vec<String> = d["refs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| s(&r["ref"]))
                .collect();
            format!("{} {}", s(&d["write"]), refs.join(" "))
        }
    };
    format!(
        "{}\t{}\t{}\t{what}",
        p.id,
        field(&p.sandbox),
        field(&p.repo)
    )
}

/// One proposal whole: its line, then a push's refs, commits, paths and diff, or a pull
/// request's body.
fn proposal_text(p: &Proposal) -> String {
    use std::fmt::Write;
    let s = |v: &Value| field(v.as_str().unwrap_or_default()).into_owned();
    let d = &p.detail;
    let mut out = proposal_line(p);
    out.push('\n');
    if p.kind == "push" {
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
            let message = c["message"].as_str().unwrap_or_default();
            let first = field(message.lines().next().unwrap_or_default()).into_owned();
            let _ = writeln!(out, "commit {} {} {first}", s(&c["id"]), s(&c["author"]));
        }
        for f in d["paths"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "{}\t{}", s(&f["status"]), s(&f["path"]));
        }
        if let Some(n) = p.bundle_bytes {
            let _ = writeln!(
                out,
                "bundle: {n} bytes (ghapp proposals bundle {} saves it)",
                p.id
            );
        }
        out.push('\n');
        out.push_str(&block(&p.diff));
        if d["diff_truncated"] == true {
            out.push_str("\n(the diff is cut here: the proxy keeps the first 256 KiB)\n");
        }
    } else if p.kind == "pull_request" {
        out.push_str(&block(d["body"].as_str().unwrap_or_default()));
    } else {
        for r in d["refs"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "ref {} {} -> {}",
                s(&r["ref"]),
                s(&r["old"]),
                s(&r["new"])
            );
            for f in r["paths"].as_array().into_iter().flatten() {
                let _ = writeln!(out, "{}\t{}", s(&f["status"]), s(&f["path"]));
            }
        }
    }
    out
}

/// `checks: NAME STATE (URL), ...` (the conclusion, else the status), or why there are none.
fn checks_line(read: &Checks) -> String {
    if let Some(why) = &read.unavailable {
        return format!("checks: not shown: {}", field(why));
    }
    if read.checks.is_empty() {
        return "checks: none".into();
    }
    let runs: Vec<String> = read
        .checks
        .iter()
        .map(|c| {
            let state = c.conclusion.as_deref().unwrap_or(&c.status);
            match &c.url {
                Some(u) => format!("{} {} ({})", field(&c.name), field(state), field(u)),
                None => format!("{} {}", field(&c.name), field(state)),
            }
        })
        .collect();
    format!("checks: {}", runs.join(", "))
}

/// Who decides, for the record: `$USER`, else "ghapp approvals".
fn who() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "ghapp approvals".into())
}
