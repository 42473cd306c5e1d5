//! Git LFS object transfers: the batch answer (from GitHub, through the proxy) names the
//! storage URLs, and each becomes reachable for that sandbox, exactly as spelled, for the one
//! method its action takes (upload `PUT`, download `GET`, verify `POST`), while it lives, with
//! no token added. Every storage request passes through the proxy's TLS: on a GitHub host, or
//! on a storage host the proxy serves (`lfs_storage_hosts`, which its CA is made for), where the
//! SNI and `Host` must name the host granted. A storage host is never a tunnel: on a shared
//! object store, another name behind the same address is not reachable through a grant. A
//! sandbox cannot name a host or a URL itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ghapp_gitproto::lfs::{ActionKind, actions};

/// How long a URL lives when the answer does not say (GitHub says `expires_in`).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// The longest a grant lasts, whatever the answer says.
const MAX_LIFETIME: Duration = Duration::from_secs(6 * 3600);
/// The most URL grants held, all sandboxes together.
const CAP: usize = 8192;
/// The most URL grants one sandbox holds: past it, its grant expiring soonest makes room, so
/// one sandbox asking batch after batch cannot fill what the others need.
const PER_SANDBOX: usize = 1024;

/// A URL a batch answer handed a sandbox: for which object, and what for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Granted {
    pub oid: String,
    pub kind: ActionKind,
    until: Instant,
}

/// What one batch answer granted, for the audit.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Recorded {
    /// `host:port (N URLs)`, per host.
    pub granted: Vec<String>,
    /// Hosts named that the proxy does not serve (not GitHub's, not in `lfs_storage_hosts`):
    /// nothing there was granted.
    pub refused: Vec<String>,
}

type Key = (String, String, String);

/// How long an object the secret scan refused stays refused to the sandbox that uploaded it.
const REFUSED_FOR: Duration = Duration::from_secs(24 * 3600);
/// The most refused objects remembered, all sandboxes together (past it, the oldest goes).
const REFUSED_CAP: usize = 4096;

/// `(sandbox, host:port, path?query)` -> the grant; and the objects whose upload the secret
/// scan refused, per sandbox, so a batch asking to upload one again is answered at once.
#[derive(Debug, Default)]
pub(crate) struct Grants {
    urls: Mutex<HashMap<Key, Granted>>,
    refused: Mutex<HashMap<(String, String), (Instant, String)>>,
}

impl Grants {
    /// Grants `sandbox` the storage URLs a batch `answer` names (https only) on hosts the
    /// proxy serves (`served`). Says what was granted and what was not.
    pub(crate) fn record(
        &self,
        sandbox: &str,
        answer: &[u8],
        served: impl Fn(&str) -> bool,
    ) -> Recorded {
        let now = Instant::now();
        let mut out = Recorded::default();
        let mut per_host: Vec<(String, usize)> = Vec::new();
        let mut urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        urls.retain(|_, g| g.until > now);
        for a in actions(answer) {
            let Ok(url) = reqwest::Url::parse(&a.href) else {
                continue;
            };
            let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
                continue;
            };
            let host = crate::router::with_port(&format!("{host}:{port}"));
            if url.scheme() != "https" || !served(&host) {
                if !out.refused.contains(&host) {
                    out.refused.push(host);
                }
                continue;
            }
            let life = a
                .expires_in
                .map_or(DEFAULT_LIFETIME, Duration::from_secs)
                .min(MAX_LIFETIME);
            let target = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            let key = (sandbox.to_owned(), host.clone(), target);
            if !urls.contains_key(&key) {
                make_room(&mut urls, sandbox);
                if urls.len() >= CAP {
                    tracing::warn!(
                        "LFS storage grants are full ({CAP}); a URL on {host} not granted"
                    );
                    continue;
                }
            }
            urls.insert(
                key,
                Granted {
                    oid: a.oid,
                    kind: a.kind,
                    until: now + life,
                },
            );
            match per_host.iter_mut().find(|(h, _)| *h == host) {
                Some((_, n)) => *n += 1,
                None => per_host.push((host, 1)),
            }
        }
        out.granted = per_host
            .into_iter()
            .map(|(h, n)| format!("{h} ({n} URL{})", if n == 1 { "" } else { "s" }))
            .collect();
        out
    }

    /// The grant for `path?query` on `host` (`host:port`) to `sandbox`, if it lives now.
    pub(crate) fn url(&self, sandbox: &str, host: &str, target: &str) -> Option<Granted> {
        let urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        // Asked for every request in a tunnel: nothing to build when nothing was granted.
        if urls.is_empty() {
            return None;
        }
        urls.get(&(sandbox.to_owned(), host.to_owned(), target.to_owned()))
            .filter(|g| g.until > Instant::now())
            .cloned()
    }

    /// Whether `sandbox` holds a live URL on `host`: a tunnel there may open (and carries only
    /// the URLs granted).
    pub(crate) fn serves(&self, sandbox: &str, host: &str) -> bool {
        let now = Instant::now();
        let urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        urls.iter()
            .any(|((s, h, _), g)| s == sandbox && h == host && g.until > now)
    }

    /// Remembers that `sandbox`'s upload of `oid` was refused, and why: the same bytes (an
    /// oid is their digest) are refused again at the batch, which git-lfs does not retry.
    pub(crate) fn refuse(&self, sandbox: &str, oid: &str, why: &str) {
        let now = Instant::now();
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.retain(|_, (at, _)| now.duration_since(*at) < REFUSED_FOR);
        if refused.len() >= REFUSED_CAP
            && let Some(oldest) = refused
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
        {
            refused.remove(&oldest);
        }
        refused.insert(
            (sandbox.to_owned(), oid.to_owned()),
            (now, format!("ghapp proxy: {why}")),
        );
    }

    /// A batch `answer` for `sandbox` with the objects it was refused turned into errors; `None`
    /// when it holds none.
    pub(crate) fn refused_in(&self, sandbox: &str, answer: &[u8]) -> Option<Vec<u8>> {
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if refused.is_empty() {
            return None;
        }
        ghapp_gitproto::lfs::refuse_objects(answer, |oid| {
            refused
                .get(&(sandbox.to_owned(), oid.to_owned()))
                .filter(|(at, _)| at.elapsed() < REFUSED_FOR)
                .map(|(_, why)| why.clone())
        })
    }

    /// Drops a sandbox's grants (it was disconnected).
    pub(crate) fn forget(&self, sandbox: &str) {
        let mut urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        urls.retain(|(s, _, _), _| s != sandbox);
    }
}

/// Past [`PER_SANDBOX`], drops `sandbox`'s grant that expires soonest.
fn make_room(urls: &mut HashMap<Key, Granted>, sandbox: &str) {
    let mine = urls.iter().filter(|(k, _)| k.0 == sandbox);
    let (n, soonest) = mine.fold((0, None::<(&Key, Instant)>), |(n, old), (k, g)| match old {
        Some((_, u)) if u <= g.until => (n + 1, old),
        _ => (n + 1, Some((k, g.until))),
    });
    if n >= PER_SANDBOX
        && let Some((k, _)) = soonest
    {
        let k = k.clone();
        urls.remove(&k);
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
                    format!(r#"{{"oid":"{i}","actions":{{"download":{{"href":"https://gh.test/_lfs/{i}"}}}}}}"#)
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
            g.url("hog", "gh.test:443", "/_lfs/4999").is_some(),
            "the newest are kept"
        );
        g.record("agent-a", answer(0).as_bytes(), |_| true);
        assert!(g.url("agent-a", "gh.test:443", "/_lfs/7").is_some());
    }

    #[test]
    fn grants_follow_the_batch_answer() {
        let g = Grants::default();
        let answer = br#"{"objects":[
            {"oid":"a","actions":{"upload":{"href":"https://Storage.example:8443/x?sig=1","expires_in":60},
                                  "verify":{"href":"https://github.test/o/r.git/info/lfs/verify"}}},
            {"oid":"b","actions":{"download":{"href":"https://storage.example:8443/y"}}},
            {"oid":"c","actions":{"download":{"href":"http://plain.example/z"}}},
            {"oid":"d","actions":{"download":{"href":"https://elsewhere.example/z"}}}
        ]}"#;
        let served = |h: &str| h == "github.test:443" || h == "storage.example:8443";
        let got = g.record("agent-a", answer, served);
        assert_eq!(
            got.granted,
            ["storage.example:8443 (2 URLs)", "github.test:443 (1 URL)"]
        );
        assert_eq!(got.refused, ["plain.example:80", "elsewhere.example:443"]);
        let up = g
            .url("agent-a", "storage.example:8443", "/x?sig=1")
            .unwrap();
        assert_eq!((up.oid.as_str(), up.kind), ("a", ActionKind::Upload));
        assert_eq!(
            g.url("agent-a", "github.test:443", "/o/r.git/info/lfs/verify")
                .map(|v| v.kind),
            Some(ActionKind::Verify)
        );
        assert!(
            g.url("agent-a", "storage.example:8443", "/x").is_none(),
            "exact"
        );
        assert!(
            g.url("agent-b", "storage.example:8443", "/y").is_none(),
            "per sandbox"
        );
        assert!(g.serves("agent-a", "storage.example:8443"));
        assert!(!g.serves("agent-b", "storage.example:8443"));
        assert!(!g.serves("agent-a", "elsewhere.example:443"));
        g.forget("agent-a");
        assert!(!g.serves("agent-a", "storage.example:8443"));
        let g = Grants::default();
        g.record(
            "agent-a",
            br#"{"objects":[{"oid":"e","actions":{"download":{"href":"https://s.example/x","expires_in":0}}}]}"#,
            |_| true,
        );
        assert!(
            !g.serves("agent-a", "s.example:443")
                && g.url("agent-a", "s.example:443", "/x").is_none(),
            "an expired URL grants nothing"
        );
    }
}
