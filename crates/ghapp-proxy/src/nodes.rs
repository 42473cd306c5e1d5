//! Node ids resolved through GitHub for the GraphQL mutation policy ([`crate::graphql`]): asked
//! with the sandbox's own token (so an id outside its repositories does not resolve), one
//! `nodes(ids:)` query per owner, bounded in time and size, and cached. What an id names and the
//! repository it belongs to do not change (a repository renamed or transferred aside), so a
//! resolved id is kept for [`TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::graphql::{NODES_QUERY, Node, read_nodes};
use crate::respond::Refusal;
use crate::sandbox::Sandbox;
use crate::{Proxy, policy};

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
            let token = self.token(sb, owner).await?;
            let answer = self.ask_nodes(token.token.expose(), &missing).await?;
            let got = read_nodes(&missing, &answer);
            self.nodes.put(&got);
            missing.retain(|id| !got.contains_key(id));
            found.extend(got);
        }
        Ok(found)
    }

    /// GitHub's answer to [`NODES_QUERY`] for `ids`.
    async fn ask_nodes(&self, token: &str, ids: &[String]) -> Result<Value, Refusal> {
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
        if resp.status() != StatusCode::OK {
            return Err(unavailable(format!("GitHub answered {}", resp.status())));
        }
        let body = crate::upstream::read_bounded(resp, MAX_ANSWER, WAIT)
            .await
            .map_err(|why| unavailable(format!("the answer: {why}")))?;
        serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("the answer is not JSON: {e}")))
    }
}
