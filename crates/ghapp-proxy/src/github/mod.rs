//! What the proxy asks GitHub itself, with a sandbox's own token (never a forwarded request):
//! what node ids name, a compare, a pull request, the open pull requests of a head, a branch's
//! commit, and creating an approved pull request. One trait ([`GitHub`]) so the pipeline's
//! stages are tested with a fake; one implementation ([`Api`]) over the proxy's upstream
//! client, every call bounded in time and size, and a token GitHub answers 401 to dropped and
//! the call made once more with a new one.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ghapp_gitproto::repo::RepoName;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::body::read_bounded;
use crate::policy::mode::Measure;
use crate::policy::nodes::{NODES_QUERY, Node, read_nodes};
use crate::policy::upstream_url;
use crate::respond::Refusal;
use crate::router::Hosts;
use crate::sandbox::Sandbox;
use crate::tokens::Tokens;

/// A boxed future, for the trait's methods.
pub(crate) type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A pull request as the proxy reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Pull {
    pub number: u64,
    pub head: String,
    pub head_repo: Option<RepoName>,
    pub head_sha: String,
    pub base: String,
    pub state: String,
    pub url: String,
}

/// A check run, as the approvals page and the admin API show it.
pub(crate) use crate::admin_api::CheckRun as Check;

/// The most check runs read for one ref.
pub(crate) const MAX_CHECKS: usize = 50;

/// What the proxy asks GitHub.
pub(crate) trait GitHub: Send + Sync {
    /// What each of `ids` names, as far as the sandbox's tokens reach (ids left out did not
    /// resolve).
    fn nodes<'a>(
        &'a self,
        sb: &'a Sandbox,
        ids: &'a [&'a str],
    ) -> Fut<'a, Result<HashMap<String, Node>, Refusal>>;

    /// The change `base...head` shows in `repo` (GitHub's compare).
    fn compare<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        base: &'a str,
        head: &'a str,
    ) -> Fut<'a, Result<Compare, Refusal>>;

    /// Pull request `n` of `repo`, if it exists.
    fn pull<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        n: u64,
    ) -> Fut<'a, Result<Option<Pull>, Refusal>>;

    /// The open pull requests of `repo` whose head is its branch `head`.
    fn open_pulls<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        head: &'a str,
    ) -> Fut<'a, Result<Vec<Pull>, Refusal>>;

    /// The commit branch `name` of `repo` points at, if the branch exists.
    fn branch<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        name: &'a str,
    ) -> Fut<'a, Result<Option<String>, Refusal>>;

    /// Creates a pull request in `repo` (`POST …/pulls` with `ask`): GitHub's status and
    /// answer.
    fn create_pull<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        ask: &'a Value,
    ) -> Fut<'a, Result<(StatusCode, Value), Refusal>>;

    /// The text of file `path` of `repo` at `git_ref` (the contents API), if it exists and is
    /// text of at most `max` bytes.
    fn file<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        path: &'a str,
        git_ref: &'a str,
        max: usize,
    ) -> Fut<'a, Result<Option<String>, Refusal>>;

    /// The check runs on `git_ref` of `repo` (the newest [`MAX_CHECKS`]), read with a token
    /// of their own narrowed to `repo` and `checks: read` (no sandbox's token carries it);
    /// `Err` says, for a person, why they cannot be shown.
    fn checks<'a>(
        &'a self,
        repo: &'a RepoName,
        git_ref: &'a str,
    ) -> Fut<'a, Result<Vec<Check>, String>>;

    /// Requests reviews of pull request `n` of `repo` (`POST …/requested_reviewers` with
    /// `ask`: `reviewers` and `team_reviewers`): GitHub's status and answer.
    fn request_reviewers<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        n: u64,
        ask: &'a Value,
    ) -> Fut<'a, Result<(StatusCode, Value), Refusal>>;
}

/// How long a resolved node id is kept (what an id names, and its repository, do not change).
const NODE_TTL: Duration = Duration::from_secs(600);
/// The most ids kept; past it the cache starts over.
const NODE_CAP: usize = 4096;
/// The longest wait for one of GitHub's answers, and the largest read.
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(30);
const MAX_ANSWER: usize = 16 << 20;

/// Node ids resolved, with when.
#[derive(Debug, Default)]
struct NodeCache {
    map: Mutex<HashMap<String, (Node, Instant)>>,
}

impl NodeCache {
    fn get(&self, id: &str) -> Option<Node> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id)
            // A ref's target moves: a ref is always asked again.
            .filter(|(n, at)| {
                at.elapsed() < NODE_TTL && !matches!(n.kind, crate::policy::nodes::Kind::Ref { .. })
            })
            .map(|(n, _)| n.clone())
    }

    fn put(&self, found: &HashMap<String, Node>) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() + found.len() > NODE_CAP {
            map.clear();
        }
        let now = Instant::now();
        map.extend(found.iter().map(|(k, v)| (k.clone(), (v.clone(), now))));
    }
}

/// GitHub's API, called with the sandboxes' tokens.
pub(crate) struct Api {
    client: reqwest::Client,
    tokens: Arc<Tokens>,
    hosts: Hosts,
    /// The REST base (`https://api.github.com`, `https://HOST/api/v3`).
    api_url: String,
    nodes: NodeCache,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

fn unavailable(what: &str, why: String) -> Refusal {
    Refusal::json(
        StatusCode::BAD_GATEWAY,
        format!("cannot ask GitHub ({what}): {why}"),
    )
}

/// Branch names keep their slashes (GitHub reads `base...head` and `heads/NAME` whole);
/// anything else that is not plain is encoded.
fn enc(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// A pull request as GitHub's REST API answers it.
fn pull_of(v: &Value) -> Pull {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    Pull {
        number: v["number"].as_u64().unwrap_or(0),
        head: text(&v["head"]["ref"]),
        head_repo: v["head"]["repo"]["full_name"]
            .as_str()
            .and_then(RepoName::parse),
        head_sha: text(&v["head"]["sha"]),
        base: text(&v["base"]["ref"]),
        state: text(&v["state"]),
        url: text(&v["html_url"]),
    }
}

/// A file's text from the contents API's answer (`content`, base64 in lines), if it is text.
pub(crate) fn content_text(doc: &Value) -> Option<String> {
    use base64::Engine;
    if doc["encoding"] != "base64" {
        return None;
    }
    let clean: String = doc["content"]
        .as_str()?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(clean)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// What GitHub's compare of `base...head` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Compare {
    pub commits: u64,
    pub additions: u64,
    pub deletions: u64,
    /// The files changed (GitHub lists at most 300: that many means at least that many).
    pub paths: Vec<String>,
    /// The commits (GitHub lists at most 250), oldest first, for a person to read.
    pub log: Vec<CommitLine>,
    /// Each file's change, for a person to read.
    pub files: Vec<FileChange>,
}

/// A commit as the approvals page shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CommitLine {
    pub sha: String,
    pub author: String,
    /// The message's first line.
    pub subject: String,
}

/// One file of a compare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FileChange {
    pub path: String,
    pub status: String,
    pub additions: u64,
    pub deletions: u64,
    /// GitHub's hunks (absent for a binary or very large file), cut at [`MAX_PATCH`].
    pub patch: Option<String>,
}

/// The most of one file's patch kept (a person reads the rest at GitHub or in git).
pub(crate) const MAX_PATCH: usize = 16 * 1024;

impl Compare {
    /// GitHub's compare answer, read.
    pub(crate) fn of(v: &Value) -> Compare {
        let files = v["files"].as_array().map(Vec::as_slice).unwrap_or_default();
        let sum = |k: &str| {
            files
                .iter()
                .map(|f| f[k].as_u64().unwrap_or(0))
                .sum::<u64>()
        };
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        Compare {
            commits: v["total_commits"].as_u64().unwrap_or(0),
            additions: sum("additions"),
            deletions: sum("deletions"),
            paths: files
                .iter()
                .filter_map(|f| f["filename"].as_str().map(str::to_owned))
                .collect(),
            log: v["commits"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| CommitLine {
                    sha: text(&c["sha"]),
                    author: text(&c["commit"]["author"]["name"]),
                    subject: c["commit"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(200)
                        .collect(),
                })
                .collect(),
            files: files
                .iter()
                .map(|f| FileChange {
                    path: text(&f["filename"]),
                    status: text(&f["status"]),
                    additions: f["additions"].as_u64().unwrap_or(0),
                    deletions: f["deletions"].as_u64().unwrap_or(0),
                    patch: f["patch"].as_str().map(|p| {
                        let mut cut = p.len().min(MAX_PATCH);
                        while !p.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        p[..cut].to_owned()
                    }),
                })
                .collect(),
        }
    }

    /// The change's size, for the trust mode.
    pub(crate) fn measure(&self) -> Measure {
        Measure {
            files: self.paths.len() as u64,
            lines: self.additions + self.deletions,
            paths: self.paths.clone(),
        }
    }
}

impl Api {
    pub(crate) fn new(
        client: reqwest::Client,
        tokens: Arc<Tokens>,
        hosts: Hosts,
        api_url: String,
    ) -> Api {
        Api {
            client,
            tokens,
            hosts,
            api_url,
            nodes: NodeCache::default(),
        }
    }

    /// Runs `call` with the sandbox's token for `owner`; when GitHub answers 401 (the token
    /// was revoked: by an admin, secret scanning, `ghapp revoke`), the token is dropped and
    /// `call` runs once more with a new one. GitHub acted on nothing it answered 401 to, so
    /// even a POST is safe to send again.
    async fn with_token<T, F>(
        &self,
        sb: &Sandbox,
        owner: &str,
        call: impl Fn(String) -> F,
    ) -> Result<(StatusCode, T), Refusal>
    where
        F: Future<Output = Result<(StatusCode, T), Refusal>>,
    {
        let token = self.tokens.token(sb, owner).await?;
        let first = call(token.token.expose().to_owned()).await?;
        if first.0 != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        self.tokens.forget(sb, owner, &token);
        let token = self.tokens.token(sb, owner).await?;
        call(token.token.expose().to_owned()).await
    }

    /// A REST call under the API base with the sandbox's token for `repo`'s owner: GitHub's
    /// status and JSON answer (read whole, bounded), or why there is none.
    async fn rest(
        &self,
        sb: &Sandbox,
        repo: &RepoName,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), Refusal> {
        let url = format!("{}{path}", self.api_url);
        let what = format!("{method} {path}");
        let (url, what, method) = (&url, &what, &method);
        self.with_token(sb, repo.owner(), |token: String| async move {
            self.send(&token, method, url, what, body).await
        })
        .await
    }

    /// One call to GitHub with `token`: its status and JSON answer (`Null` when not JSON),
    /// within [`ANSWER_WAIT`] and [`MAX_ANSWER`].
    async fn send(
        &self,
        token: &str,
        method: &Method,
        url: &str,
        what: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), Refusal> {
        let mut rb = self
            .client
            .request(method.clone(), url)
            .bearer_auth(token)
            .header(hyper::header::ACCEPT, "application/vnd.github+json")
            .header(hyper::header::USER_AGENT, "ghapp-proxy");
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = match tokio::time::timeout(ANSWER_WAIT, rb.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Err(unavailable(what, ghapp_core::client::root_cause(&e)));
            }
            Err(_) => {
                return Err(unavailable(
                    what,
                    format!("no answer within {} s", ANSWER_WAIT.as_secs()),
                ));
            }
        };
        let status = resp.status();
        let bytes = read_bounded(resp, MAX_ANSWER, ANSWER_WAIT)
            .await
            .map_err(|why| unavailable(what, why))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// [`GitHub::checks`]: a token for `repo` with `checks: read` alone (cached as any), then
    /// `GET …/commits/{ref}/check-runs`, bounded as every call here.
    async fn read_checks(&self, repo: &RepoName, git_ref: &str) -> Result<Vec<Check>, String> {
        let broker = self
            .tokens
            .broker_for(repo.owner())
            .ok_or_else(|| format!("no app of this proxy serves {}", repo.owner()))?;
        let want = ghapp_core::broker::TokenRequest {
            owner: Some(repo.owner().to_owned()),
            repositories: vec![repo.repo().to_owned()],
            permissions: [("checks", ghapp_core::permissions::Level::Read)]
                .into_iter()
                .collect(),
            fit: false,
        };
        let token = broker.token(&want).await.map_err(|e| match e {
            ghapp_core::Error::OutsideGrant { .. } => format!(
                "the app may not read checks on {}: grant it Checks (read) to see CI here",
                repo.owner()
            ),
            e => format!("cannot mint a token to read checks: {e}"),
        })?;
        let segment: String =
            percent_encoding::utf8_percent_encode(git_ref, percent_encoding::NON_ALPHANUMERIC)
                .collect();
        let url = format!(
            "{}/repos/{}/{}/commits/{segment}/check-runs?per_page={MAX_CHECKS}",
            self.api_url,
            repo.owner(),
            repo.repo()
        );
        let (status, v) = self
            .send(token.token.expose(), &Method::GET, &url, "check runs", None)
            .await
            .map_err(|r| r.message)?;
        if !status.is_success() {
            return Err(format!("GitHub answered {status}"));
        }
        Ok(v["check_runs"]
            .as_array()
            .into_iter()
            .flatten()
            .take(MAX_CHECKS)
            .map(|c| {
                let text = |k: &str| c[k].as_str().map(str::to_owned);
                Check {
                    name: text("name").unwrap_or_default(),
                    status: text("status").unwrap_or_default(),
                    conclusion: text("conclusion"),
                    url: text("details_url").or_else(|| text("html_url")),
                }
            })
            .collect())
    }

    /// GitHub's answer to [`NODES_QUERY`] for `ids` (`Null` unless it answered 200).
    async fn ask_nodes(&self, token: &str, ids: &[String]) -> Result<(StatusCode, Value), Refusal> {
        let what = "node ids";
        let url = upstream_url(&self.hosts.api, &self.hosts.graphql, "")
            .map_err(|why| unavailable(what, why))?;
        let send = self
            .client
            .post(url)
            .bearer_auth(token)
            .header(hyper::header::USER_AGENT, "ghapp-proxy")
            .json(&json!({"query": NODES_QUERY, "variables": {"ids": ids}}))
            .send();
        let resp = tokio::time::timeout(ANSWER_WAIT, send)
            .await
            .map_err(|_| unavailable(what, format!("no answer in {} s", ANSWER_WAIT.as_secs())))?
            .map_err(|e| unavailable(what, ghapp_core::client::root_cause(&e)))?;
        let status = resp.status();
        if status != StatusCode::OK {
            return Ok((status, Value::Null));
        }
        let body = read_bounded(resp, MAX_ANSWER, ANSWER_WAIT)
            .await
            .map_err(|why| unavailable(what, format!("the answer: {why}")))?;
        serde_json::from_slice(&body)
            .map(|v| (status, v))
            .map_err(|e| unavailable(what, format!("the answer is not JSON: {e}")))
    }

    async fn resolve(&self, sb: &Sandbox, ids: &[&str]) -> Result<HashMap<String, Node>, Refusal> {
        let mut found = HashMap::new();
        let mut missing: Vec<String> = Vec::new();
        for id in ids {
            match self.nodes.get(id) {
                Some(n) => {
                    found.insert((*id).to_owned(), n);
                }
                None if !missing.iter().any(|m| m == id) => missing.push((*id).to_owned()),
                None => {}
            }
        }
        let mut owners: Vec<&str> = Vec::new();
        for r in &sb.cfg.repos {
            if !owners.iter().any(|o| o.eq_ignore_ascii_case(r.owner())) {
                owners.push(r.owner());
            }
        }
        for owner in owners {
            if missing.is_empty() {
                break;
            }
            let ids = &missing;
            let (status, answer) = self
                .with_token(sb, owner, |token: String| async move {
                    self.ask_nodes(&token, ids).await
                })
                .await?;
            if status != StatusCode::OK {
                return Err(unavailable("node ids", format!("GitHub answered {status}")));
            }
            let got = read_nodes(&missing, &answer);
            self.nodes.put(&got);
            missing.retain(|id| !got.contains_key(id));
            found.extend(got);
        }
        Ok(found)
    }
}

impl GitHub for Api {
    fn nodes<'a>(
        &'a self,
        sb: &'a Sandbox,
        ids: &'a [&'a str],
    ) -> Fut<'a, Result<HashMap<String, Node>, Refusal>> {
        Box::pin(self.resolve(sb, ids))
    }

    fn compare<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        base: &'a str,
        head: &'a str,
    ) -> Fut<'a, Result<Compare, Refusal>> {
        Box::pin(async move {
            let path = format!(
                "/repos/{}/{}/compare/{}...{}",
                repo.owner(),
                repo.repo(),
                enc(base),
                enc(head)
            );
            let (status, v) = self.rest(sb, repo, Method::GET, &path, None).await?;
            if !status.is_success() {
                return Err(Refusal::json(
                    StatusCode::BAD_GATEWAY,
                    format!("cannot compare {base}...{head} in {repo}: GitHub answered {status}"),
                ));
            }
            Ok(Compare::of(&v))
        })
    }

    fn checks<'a>(
        &'a self,
        repo: &'a RepoName,
        git_ref: &'a str,
    ) -> Fut<'a, Result<Vec<Check>, String>> {
        Box::pin(self.read_checks(repo, git_ref))
    }

    fn pull<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        n: u64,
    ) -> Fut<'a, Result<Option<Pull>, Refusal>> {
        Box::pin(async move {
            let path = format!("/repos/{}/{}/pulls/{n}", repo.owner(), repo.repo());
            let (status, v) = self.rest(sb, repo, Method::GET, &path, None).await?;
            match status {
                StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success() => Ok(Some(pull_of(&v))),
                s => Err(Refusal::json(
                    StatusCode::BAD_GATEWAY,
                    format!("cannot read pull request {n} of {repo}: GitHub answered {s}"),
                )),
            }
        })
    }

    fn open_pulls<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        head: &'a str,
    ) -> Fut<'a, Result<Vec<Pull>, Refusal>> {
        Box::pin(async move {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("head", &format!("{}:{head}", repo.owner()))
                .append_pair("state", "open")
                .finish();
            let path = format!("/repos/{}/{}/pulls?{q}", repo.owner(), repo.repo());
            let (status, v) = self.rest(sb, repo, Method::GET, &path, None).await?;
            if !status.is_success() {
                return Err(Refusal::json(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "cannot list the pull requests of {head} in {repo}: GitHub answered {status}"
                    ),
                ));
            }
            Ok(v.as_array().into_iter().flatten().map(pull_of).collect())
        })
    }

    fn branch<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        name: &'a str,
    ) -> Fut<'a, Result<Option<String>, Refusal>> {
        Box::pin(async move {
            let path = format!(
                "/repos/{}/{}/branches/{}",
                repo.owner(),
                repo.repo(),
                enc(name)
            );
            let (status, v) = self.rest(sb, repo, Method::GET, &path, None).await?;
            match status {
                StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success() => Ok(v["commit"]["sha"].as_str().map(str::to_owned)),
                s => Err(Refusal::json(
                    StatusCode::BAD_GATEWAY,
                    format!("cannot read branch {name} of {repo}: GitHub answered {s}"),
                )),
            }
        })
    }

    fn create_pull<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        ask: &'a Value,
    ) -> Fut<'a, Result<(StatusCode, Value), Refusal>> {
        Box::pin(async move {
            let path = format!("/repos/{}/{}/pulls", repo.owner(), repo.repo());
            self.rest(sb, repo, Method::POST, &path, Some(ask)).await
        })
    }

    fn file<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        path: &'a str,
        git_ref: &'a str,
        max: usize,
    ) -> Fut<'a, Result<Option<String>, Refusal>> {
        Box::pin(async move {
            let path = format!(
                "/repos/{}/{}/contents/{}?ref={}",
                repo.owner(),
                repo.repo(),
                path.split('/').map(enc).collect::<Vec<_>>().join("/"),
                enc(git_ref)
            );
            let (status, v) = self.rest(sb, repo, Method::GET, &path, None).await?;
            match status {
                StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success() => Ok(content_text(&v).filter(|t| t.len() <= max)),
                s => Err(Refusal::json(
                    StatusCode::BAD_GATEWAY,
                    format!("cannot read {path} of {repo}: GitHub answered {s}"),
                )),
            }
        })
    }

    fn request_reviewers<'a>(
        &'a self,
        sb: &'a Sandbox,
        repo: &'a RepoName,
        n: u64,
        ask: &'a Value,
    ) -> Fut<'a, Result<(StatusCode, Value), Refusal>> {
        Box::pin(async move {
            let path = format!(
                "/repos/{}/{}/pulls/{n}/requested_reviewers",
                repo.owner(),
                repo.repo()
            );
            self.rest(sb, repo, Method::POST, &path, Some(ask)).await
        })
    }
}

#[cfg(test)]
pub(crate) mod fake;
