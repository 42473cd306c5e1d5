//! Node ids resolved through GitHub for the GraphQL mutation policy ([`crate::graphql`]): asked
//! with the sandbox's own token (so an id outside its repositories does not resolve), one
//! `nodes(ids:)` query per owner, bounded in time and size, and cached. What an id names and the
//! repository it belongs to do not change (a repository renamed or transferred aside), so a
//! resolved id is kept for [`TTL`]. [`Proxy::graphql`] decides a GraphQL body with them.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::graphql::{NODES_QUERY, Node, read_nodes};
use crate::respond::Refusal;
use crate::sandbox::Sandbox;
use crate::{Proxy, approvals, config, graphql, policy};

/// How long a resolved id is kept.
const TTL: Duration = Duration::from_secs(600);
/// The most ids kept; past it the cache starts over.
const CAP: usize = 4096;
/// The longest wait for GitHub's answer, and its largest size.
const WAIT: Duration = Duration::from_secs(15);
const MAX_ANSWER: usize = 1 << 20;

#[derive(Debug, Default)]
pub(crate) struct NodeCache {
    map: Mutex<HashMap<String, (Node, Instant)>>,
}

impl NodeCache {
    fn get(&self, id: &str) -> Option<Node> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(n, _)| n.clone())
    }

    fn put(&self, found: &HashMap<String, Node>) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() + found.len() > CAP {
            map.clear();
        }
        let now = Instant::now();
        map.extend(found.iter().map(|(k, v)| (k.clone(), (v.clone(), now))));
    }
}

fn unavailable(why: String) -> Refusal {
    Refusal::graphql(
        StatusCode::BAD_GATEWAY,
        format!("cannot check the mutation's node ids with GitHub: {why}"),
    )
}

impl Proxy {
    /// What each of `ids` names, as far as the sandbox's tokens reach; ids left out did not
    /// resolve.
    pub(crate) async fn resolve_nodes(
        &self,
        sb: &Sandbox,
        ids: &[&str],
    ) -> Result<HashMap<String, Node>, Refusal> {
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
                return Err(unavailable(format!("GitHub answered {status}")));
            }
            let got = read_nodes(&missing, &answer);
            self.nodes.put(&got);
            missing.retain(|id| !got.contains_key(id));
            found.extend(got);
        }
        Ok(found)
    }

    /// GitHub's answer to [`NODES_QUERY`] for `ids` (`Null` unless it answered 200).
    async fn ask_nodes(&self, token: &str, ids: &[String]) -> Result<(StatusCode, Value), Refusal> {
        let url =
            policy::upstream_url(&self.hosts.api, &self.hosts.graphql, "").map_err(unavailable)?;
        let send = self
            .upstream
            .post(url)
            .bearer_auth(token)
            .header(hyper::header::USER_AGENT, "ghapp-proxy")
            .json(&json!({"query": NODES_QUERY, "variables": {"ids": ids}}))
            .send();
        let resp = tokio::time::timeout(WAIT, send)
            .await
            .map_err(|_| unavailable(format!("no answer in {} s", WAIT.as_secs())))?
            .map_err(|e| unavailable(ghapp_core::client::root_cause(&e)))?;
        let status = resp.status();
        if status != StatusCode::OK {
            return Ok((status, Value::Null));
        }
        let body = crate::upstream::read_bounded(resp, MAX_ANSWER, WAIT)
            .await
            .map_err(|why| unavailable(format!("the answer: {why}")))?;
        serde_json::from_slice(&body)
            .map(|v| (status, v))
            .map_err(|e| unavailable(format!("the answer is not JSON: {e}")))
    }
}

/// Why a GraphQL request is not forwarded: refused, or (a learning sandbox's
/// `createPullRequest`) held for a human.
pub(crate) enum Stop {
    Refused(Refusal),
    /// Held: the repository, what was asked, and why it waits.
    Held(ghapp_gitproto::repo::RepoName, approvals::Ask, String),
    /// To be recorded as a proposal, not done (observe mode).
    Proposed(ghapp_gitproto::repo::RepoName, approvals::Ask),
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Stop {
        Stop::Refused(r)
    }
}

impl Proxy {
    /// A GraphQL body decided: a query re-printed as read; a mutation's node ids resolved, its checks
    /// decided, and the re-printed body to send with the token of the repository it changes
    /// (returned with the mutations' names, for the audit).
    pub(crate) async fn graphql(
        &self,
        sb: &Sandbox,
        bytes: Bytes,
    ) -> Result<(Bytes, Option<(ghapp_gitproto::repo::RepoName, String)>), Stop> {
        let (checks, body) = match policy::graphql_body(sb, &bytes)? {
            policy::GraphqlPlan::Query(body) => return Ok((Bytes::from(body), None)),
            policy::GraphqlPlan::Mutation { checks, body } => (checks, body),
        };
        let ids: Vec<&str> = checks.iter().flat_map(|(_, c)| c.ids()).collect();
        let nodes = self.resolve_nodes(sb, &ids).await?;
        match graphql::decide(sb, &checks, &nodes) {
            Ok(repo) if sb.cfg.mode != config::Mode::Autonomous => {
                // A createPullRequest that needs a human is held, one in observe mode
                // recorded; neither is forwarded.
                let held = checks.iter().find_map(|(_, c)| match c {
                    graphql::Check::CreatePull {
                        head,
                        base,
                        title,
                        body,
                        draft,
                        ..
                    } => Some(approvals::Ask {
                        head: head.clone(),
                        base: base.clone(),
                        title: title.clone(),
                        body: body.clone(),
                        draft: *draft,
                    }),
                    _ => None,
                });
                let held = match held.map(approvals::Ask::checked).transpose() {
                    Ok(h) => h,
                    Err(why) => {
                        return Err(Stop::Refused(Refusal::graphql(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            format!("sandbox {}: createPullRequest: {why}", sb.name()),
                        )));
                    }
                };
                if sb.cfg.mode == config::Mode::Observe
                    && let Some(ask) = held
                {
                    return Err(Stop::Proposed(repo, ask));
                }
                let why = match &held {
                    Some(ask) => self.needs_approval(sb, &repo, ask).await?,
                    None => None,
                };
                match (held, why) {
                    (Some(ask), Some(why)) => Err(Stop::Held(repo, ask, why)),
                    _ => {
                        let names: Vec<&str> = checks.iter().map(|(n, _)| n.as_str()).collect();
                        Ok((Bytes::from(body), Some((repo, names.join(",")))))
                    }
                }
            }
            Ok(repo) => {
                let names: Vec<&str> = checks.iter().map(|(n, _)| n.as_str()).collect();
                Ok((Bytes::from(body), Some((repo, names.join(",")))))
            }
            Err(why) => Err(Stop::Refused(Refusal::graphql(
                StatusCode::FORBIDDEN,
                format!("sandbox {}: {why}", sb.name()),
            ))),
        }
    }
}
