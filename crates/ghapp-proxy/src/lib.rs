//! ghapp-proxy: an HTTPS smart-protocol proxy for sandboxes.
//!
//! A sandbox gets `HTTPS_PROXY=http://NAME:SECRET@proxy:PORT` and the proxy's CA, nothing else.
//! The proxy identifies the sandbox from `Proxy-Authorization` on `CONNECT`, terminates TLS for
//! the GitHub hosts only (a leaf per host from its own CA; SNI = CONNECT host = Host), decides
//! every request on the sandbox's policy (repositories, the REST and GraphQL it may use, and
//! every write to a repository, however it comes, by one set of rules and its trust mode),
//! injects a token narrowed to the sandbox's repositories, and streams to GitHub. Other hosts
//! are refused or tunnelled untouched (`egress`).
//!
//! Two planes: the data plane ([`pipeline`]) decides and forwards requests, reading the sandbox
//! table; the control plane ([`control`]) changes it (SIGHUP, the state store, the admin API,
//! GitHub's webhooks). `ARCHITECTURE.md` at the repository's root draws the pipeline.
//!
//! The `server` feature (on by default) is the proxy itself. Without it only [`config`]
//! builds: reading and checking `proxy.toml`, with no runtime, TLS, HTTP client or state store
//! (what the fuzz targets link).
//!
//! ```no_run
//! # #[cfg(feature = "server")]
//! # fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = ghapp_proxy::config::ProxyConfig::load(std::path::Path::new("proxy.toml"))?;
//! let proxy = ghapp_proxy::Proxy::new(cfg)?;
//! let running = proxy.start()?;
//! println!("listening on {}", running.addr());
//! # Ok(()) }
//! ```
//!
//! # Security
//! The sandbox never receives a token: the client's `Authorization`, `Proxy-Authorization` and
//! `Cookie` are dropped, the token is added only on the upstream request, and audit events and
//! logs name it by fingerprint. Pushes are decided from the command section before any byte of
//! the pack reaches GitHub, and GitHub never has a whole pack before the verdict. Redirects
//! are never followed.

// `config` and what it reads of `egress` and `router` build without `server` too.
pub mod config;
#[cfg_attr(not(feature = "server"), allow(dead_code))]
mod egress;
#[cfg_attr(not(feature = "server"), allow(dead_code))]
mod router;

cfg_if::cfg_if! {
    if #[cfg(feature = "server")] {
        pub mod admin_api;
        mod audit;
        mod body;
        mod budget;
        pub mod ca;
        mod control;
        mod github;
        mod inspect;
        mod lfs;
        mod limits;
        mod live;
        mod notify;
        mod pipeline;
        mod policy;
        mod preflight;
        mod respond;
        mod running;
        mod sandbox;
        mod signature;
        mod store;
        mod sts;
        mod tokens;
        mod transport;
        mod upstream;

        pub use body::COMMAND_SECTION_LIMIT;
        pub use ghapp_core::secret::ProxySecret;
        pub use preflight::{Check, CheckLevel};
        pub use running::{Reached, Running, StartError, notify_test};
        pub use signature::verify as verify_webhook;
    }
}

#[cfg(feature = "server")]
/// The proxy, prepared: everything that can fail before serving has been done.
pub struct Proxy {
    prepared: running::Prepared,
}

#[cfg(feature = "server")]
impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("listen", &self.prepared.cfg.listen)
            .field("hosts", &self.prepared.hosts)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "server")]
impl Proxy {
    /// Prepares everything that can fail before serving: the key, the CA, the audit log, the
    /// upstream client. Synchronous: call it before any runtime exists.
    pub fn new(cfg: config::ProxyConfig) -> Result<Proxy, StartError> {
        Ok(Proxy {
            prepared: running::prepare(cfg)?,
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.prepared.ca.cert_pem
    }

    /// SIGHUP reloads the sandboxes, their policy and egress from `path` (with the overrides
    /// already applied to this proxy's listeners and CA kept).
    pub fn reload_from(mut self, path: &std::path::Path) -> Proxy {
        self.prepared.config_path = Some(path.to_owned());
        self
    }

    /// What `ghapp proxy` checks before it serves (`--check` alone): GitHub trusted, the
    /// app's JWT accepted, an installation for each sandbox's repositories (and, with the
    /// approvals page, that it lets the page read checks).
    pub fn preflight(&self) -> Vec<Check> {
        let cfg = &self.prepared.cfg;
        let sandboxes = live::Live::of(cfg).sandboxes;
        let page = cfg.admin_listen.is_some() && cfg.admin_token.is_some();
        preflight::preflight(&self.prepared.tokens, &sandboxes, page)
    }

    /// Serves on the configured addresses from a background thread with its own runtime.
    pub fn start(self) -> Result<Running, StartError> {
        running::start(self.prepared)
    }
}

#[cfg(test)]
mod tests {
    //! The crate's shape: its modules import one another in one direction only.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The crate's top-level modules and which others each names (`crate::NAME`, in its code
    /// before its tests), `lib` standing for this file.
    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = Vec::new();
        files(&src, &mut all);
        let top = |p: &Path| -> String {
            let rel = p.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            first.trim_end_matches(".rs").to_owned()
        };
        let modules: BTreeSet<String> = all.iter().map(|p| top(p)).collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in &all {
            let me = top(p);
            if me == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(p).unwrap();
            // Code, not comments (a doc link names a module without using it), before tests.
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let code = code.as_str();
            let mut names = Vec::new();
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    let end = group.find('}').unwrap_or(group.len());
                    names.extend(group[..end].split(',').map(str::trim));
                } else {
                    names.push(rest);
                }
            }
            for n in names {
                let name: String = n
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let to = if modules.contains(&name) {
                    name
                } else {
                    // An item of the crate's root (`crate::Proxy`): a module reaching back up.
                    "lib".to_owned()
                };
                if to != me {
                    edges.entry(me.clone()).or_default().insert(to);
                }
            }
        }
        edges
    }

    /// Every cycle's modules, as found by a depth-first walk.
    fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
        fn walk(
            at: &str,
            edges: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
            found: &mut Vec<Vec<String>>,
        ) {
            if let Some(i) = path.iter().position(|p| p == at) {
                found.push(path[i..].to_vec());
                return;
            }
            if !done.insert(at.to_owned()) {
                return;
            }
            path.push(at.to_owned());
            for next in edges.get(at).into_iter().flatten() {
                walk(next, edges, path, done, found);
            }
            path.pop();
        }
        let mut found = Vec::new();
        let mut done = BTreeSet::new();
        for m in edges.keys() {
            walk(m, edges, &mut Vec::new(), &mut done, &mut found);
        }
        found
    }

    #[test]
    fn no_module_imports_one_that_imports_it_back() {
        let edges = graph();
        assert!(
            !edges.values().any(|to| to.contains("lib")),
            "a module uses an item of lib.rs: {:?}",
            edges
                .iter()
                .filter(|(_, to)| to.contains("lib"))
                .map(|(m, _)| m)
                .collect::<Vec<_>>()
        );
        let found = cycles(&edges);
        assert!(found.is_empty(), "import cycles: {found:?}");
        // The layers the architecture names: policy is pure, transport knows no policy.
        for (module, never) in [
            (
                "policy",
                &[
                    "pipeline",
                    "control",
                    "upstream",
                    "inspect",
                    "transport",
                    "github",
                ][..],
            ),
            (
                "transport",
                &["pipeline", "control", "policy", "inspect", "upstream"][..],
            ),
            ("pipeline", &["control", "running"][..]),
        ] {
            let uses = edges.get(module).cloned().unwrap_or_default();
            for n in never {
                assert!(!uses.contains(*n), "{module} uses {n}: {uses:?}");
            }
        }
    }

    #[test]
    fn the_checker_finds_a_cycle() {
        let mut edges = BTreeMap::new();
        edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
        edges.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
        assert_eq!(cycles(&edges).len(), 1);
    }
}
