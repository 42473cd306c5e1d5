//! Git LFS object transfers: the batch answer (from GitHub, through the proxy) names the
//! storage URLs. Each storage host named becomes reachable for that sandbox while the URLs
//! live, as a plain tunnel with no token in it, whatever `egress` says; a URL on a GitHub host
//! the proxy intercepts (storage on the appliance itself, as a GHES may answer) passes exactly,
//! that path and query, with no token added. Nothing else opens either: a sandbox cannot name a
//! host or a URL itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ghapp_gitproto::lfs::actions;

/// How long a URL lives when the answer does not say (GitHub says `expires_in`).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// The longest a grant lasts, whatever the answer says.
const MAX_LIFETIME: Duration = Duration::from_secs(6 * 3600);
/// The most grants held (sandbox and host pairs; sandbox and URL pairs).
const CAP: usize = 4096;
/// The most URL grants one sandbox holds: past it, its grant expiring soonest makes room, so
/// one sandbox asking batch after batch cannot fill what the others need.
const PER_SANDBOX: usize = 512;

/// `(sandbox, host:port)` -> until when the sandbox may reach that storage host.
#[derive(Debug, Default)]
pub(crate) struct Grants {
    map: Mutex<HashMap<(String, String), Instant>>,
    /// `(sandbox, host:port, path?query)` on intercepted hosts -> until when.
    urls: Mutex<HashMap<(String, String, String), Instant>>,
}

impl Grants {
    /// Grants `sandbox` the storage a batch `answer` names (https only): the hosts, or for a
    /// host the proxy intercepts (`intercepted`), the exact URLs. Returns what was granted.
    pub(crate) fn record(
        &self,
        sandbox: &str,
        answer: &[u8],
        intercepted: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let now = Instant::now();
        let mut granted = Vec::new();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, until| *until > now);
        urls.retain(|_, until| *until > now);
        for a in actions(answer) {
            let Ok(url) = reqwest::Url::parse(&a.href) else {
                continue;
            };
            let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
                continue;
            };
            let host = format!("{}:{port}", host.to_ascii_lowercase());
            if url.scheme() != "https" {
                continue;
            }
            let life = a
                .expires_in
                .map_or(DEFAULT_LIFETIME, Duration::from_secs)
                .min(MAX_LIFETIME);
            if intercepted(&host) {
                let target = match url.query() {
                    Some(q) => format!("{}?{q}", url.path()),
                    None => url.path().to_owned(),
                };
                let oldest_of_mine = urls.iter().filter(|(k, _)| k.0 == sandbox).fold(
                    (0, None),
                    |(n, old), (k, until)| match old {
                        Some((_, u)) if u <= until => (n + 1, old),
                        _ => (n + 1, Some((k.clone(), until))),
                    },
                );
                if let (n, Some((k, _))) = oldest_of_mine
                    && n >= PER_SANDBOX
                {
                    urls.remove(&k);
                }
                if urls.len() >= CAP {
                    tracing::warn!(
                        "LFS storage grants are full ({CAP}); a URL on {host} not granted"
                    );
                    continue;
                }
                urls.insert((sandbox.to_owned(), host.clone(), target), now + life);
                granted.push(format!("{host} (one URL)"));
                continue;
            }
            let key = (sandbox.to_owned(), host.clone());
            if map.len() >= CAP && !map.contains_key(&key) {
                tracing::warn!("LFS storage grants are full ({CAP}); {host} not granted");
                continue;
            }
            let until = map.entry(key).or_insert(now);
            *until = (*until).max(now + life);
            if !granted.contains(&host) {
                granted.push(host);
            }
        }
        granted
    }

    /// Whether `sandbox` may reach the storage host `host` (`host:port`) now.
    pub(crate) fn allows(&self, sandbox: &str, host: &str) -> bool {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(sandbox.to_owned(), host.to_owned()))
            .is_some_and(|until| *until > Instant::now())
    }

    /// Whether `sandbox` may send to `path?query` on the intercepted host `host` now: a URL a
    /// batch answer handed it, spelled exactly.
    pub(crate) fn allows_url(&self, sandbox: &str, host: &str, target: &str) -> bool {
        let urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        // Asked for every request in a tunnel: nothing to build when nothing was granted.
        if urls.is_empty() {
            return false;
        }
        urls.get(&(sandbox.to_owned(), host.to_owned(), target.to_owned()))
            .is_some_and(|until| *until > Instant::now())
    }

    /// Drops a sandbox's grants (it was disconnected).
    pub(crate) fn forget(&self, sandbox: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|(s, _), _| s != sandbox);
        let mut urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        urls.retain(|(s, _, _), _| s != sandbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sandbox_cannot_crowd_out_the_others() {
        let g = Grants::default();
        let answer = |from: usize| {
            let objects: Vec<String> = (from..from + 100)
                .map(|i| {
                    format!(r#"{{"actions":{{"download":{{"href":"https://gh.test/_lfs/{i}"}}}}}}"#)
                })
                .collect();
            format!(r#"{{"objects":[{}]}}"#, objects.join(","))
        };
        for batch in 0..50 {
            g.record("hog", answer(batch * 100).as_bytes(), |_| true);
        }
        let held = |who: &str| {
            let urls = g.urls.lock().unwrap();
            urls.keys().filter(|k| k.0 == who).count()
        };
        assert_eq!(held("hog"), PER_SANDBOX);
        assert!(
            g.allows_url("hog", "gh.test:443", "/_lfs/4999"),
            "the newest are kept"
        );
        g.record("agent-a", answer(0).as_bytes(), |_| true);
        assert!(g.allows_url("agent-a", "gh.test:443", "/_lfs/7"));
    }

    #[test]
    fn grants_follow_the_batch_answer() {
        let g = Grants::default();
        let answer = br#"{"objects":[
            {"oid":"a","actions":{"upload":{"href":"https://Storage.example:8443/x?sig=1","expires_in":60}}},
            {"oid":"b","actions":{"download":{"href":"https://storage.example:8443/y"}}},
            {"oid":"c","actions":{"download":{"href":"http://plain.example/z"}}},
            {"oid":"d","actions":{"download":{"href":"https://github.test/o/r.git/info/lfs/z"}}}
        ]}"#;
        let got = g.record("agent-a", answer, |h| h == "github.test:443");
        assert_eq!(got, ["storage.example:8443", "github.test:443 (one URL)"]);
        assert!(g.allows_url("agent-a", "github.test:443", "/o/r.git/info/lfs/z"));
        assert!(!g.allows_url("agent-a", "github.test:443", "/o/r.git/info/lfs/y"));
        assert!(!g.allows_url("agent-b", "github.test:443", "/o/r.git/info/lfs/z"));
        assert!(g.allows("agent-a", "storage.example:8443"));
        assert!(!g.allows("agent-b", "storage.example:8443"), "per sandbox");
        assert!(!g.allows("agent-a", "plain.example:80"), "https only");
        assert!(!g.allows("agent-a", "github.test:443"));
        g.forget("agent-a");
        assert!(!g.allows("agent-a", "storage.example:8443"));
        let g = Grants::default();
        g.record("agent-a", br#"{"objects":[{"actions":{"download":{"href":"https://s.example/x","expires_in":0}}}]}"#, |_| false);
        assert!(
            !g.allows("agent-a", "s.example:443"),
            "an expired URL grants nothing"
        );
    }
}
