//! `ghapp proxy`'s configuration file.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! # advertise = "ghapp-proxy.agents.svc:8080"  # where sandboxes reach it (the HTTPS_PROXY the admin API prints)
//! ca_dir = "/var/lib/ghapp-proxy/ca"
//! egress = "deny"                 # or "tunnel": other hosts pass untouched
//! egress_allow = ["10.1.2.3:443"] # internal addresses a tunnel may reach (IP, IP/PREFIX, IP:PORT)
//! audit_log = "/var/log/ghapp-proxy/audit.jsonl"   # reopened on SIGHUP (which also reloads the sandboxes)
//! audit_max_bytes = 104857600     # rotate to audit.jsonl.1 past this size
//! metrics_listen = "127.0.0.1:9090"
//! # upstream_ca_file = "/etc/ssl/ghes-ca.pem"   # trust for a GHES with a private CA
//! # lfs_storage_hosts = ["media.ghe.example"]     # where GitHub stores LFS objects (see below)
//!
//! [limits]                        # the defaults
//! max_connections = 4096
//! max_connections_per_source = 1024
//! max_unauthenticated = 256
//! max_tunnels_per_sandbox = 256
//! max_side_connections = 256      # each of the admin, webhook and metrics listeners
//! header_timeout = "10s"          # request head, TLS handshake, proxy credentials
//! idle_timeout = "300s"
//! body_timeout = "60s"            # a push's command section, an inspected REST body
//! max_buffered_bytes = 67108864   # held in partial bodies, in all
//! login_failures_per_minute = 20  # wrong proxy credentials per source address
//! max_inflated_bytes = 4294967296 # what one push's objects may inflate to, in all
//!
//! [[app]]                         # one per app (owners = [...] picks one per owner); the same keys
//!                                 # as the host configuration's, GHAPP_* layered over the first
//! app_id = 123456
//! private_key_file = "/etc/ghapp/app.pem"
//!
//! [[sandbox]]
//! name = "agent-1"
//! secret = { env = "AGENT1_SECRET" }   # or "literal", or { file = "/run/secrets/agent-1" }
//! repos = ["my-org/widgets"]
//! push = ["refs/heads/agent/*"]
//! allow_delete = false
//! rest = ["GET /repos/{owner}/{repo}/commits"]   # routes beyond the built-in table
//! # What a push may do (the defaults shown; all may also go in [defaults]):
//! force = []                                # refs where a non-fast-forward update is allowed
//! protected_paths = [".github/workflows/**"]   # paths a push may not add, change or delete
//! max_file_bytes = 104857600                # GitHub's limit: 100 MiB
//! max_push_bytes = 2147483648               # GitHub's limit: 2 GiB
//! secret_scan = true                        # refuse files with tokens, private keys, AWS key ids
//! inspect = true                            # false: decide pushes on ref names alone
//! ```
//!
//! `lfs_storage_hosts` names the hosts (`HOST[:PORT]`) where GitHub's LFS batch answers send
//! objects; the proxy's CA is made for them too, and a sandbox reaches them only for the URLs a
//! batch answer handed it, through the proxy's TLS. The default is GitHub's own
//! (`github-cloud.s3.amazonaws.com`, `github-cloud.githubusercontent.com`,
//! `media.githubusercontent.com`) on github.com and `media.HOST` on a GHES (which also serves
//! objects on its own host); a batch answer naming another host is refused and says so.
//!
//! `spool_dir` (default `CA_DIR/spool`) holds what push inspection writes: a pack being
//! inspected (removed after the verdict) and a mirror of each pushed repository's commits and
//! trees (no file contents), fetched with the sandbox's token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ghapp_core::config::{AppConfig, FileApp};
use serde::Deserialize;

use crate::egress::Allow;

mod budget;
mod limits;
mod notify;
mod sandbox;
mod sts;
pub use budget::BudgetConfig;
use ghapp_core::secret::ProxySecret;
use limits::FileLimits;
pub use limits::Limits;
pub use notify::{NotifyConfig, url_shape};
pub use sandbox::{CODEOWNERS, Credential, Mode, PushRules, SandboxConfig, Significant};
use sandbox::{FileDefaults, FileRules, FileSandbox, SecretSource, file_rules};
pub use sts::{StsConfig, issuer_shape};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Egress {
    #[default]
    Deny,
    Tunnel,
}

/// The keys of the file's top level (outside any table): named when one lands in a table.
const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "advertise",
    "ca_dir",
    "egress",
    "egress_allow",
    "audit_log",
    "audit_max_bytes",
    "metrics_listen",
    "cache_dir",
    "upstream_ca_file",
    "resolve",
    "lfs_storage_hosts",
    "spool_dir",
    "state",
    "admin_listen",
    "admin_token",
    "webhook_listen",
    "webhook_secret",
    "events_log",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    advertise: Option<String>,
    ca_dir: Option<PathBuf>,
    #[serde(default)]
    egress: Egress,
    #[serde(default)]
    egress_allow: Vec<String>,
    audit_log: Option<PathBuf>,
    audit_max_bytes: Option<u64>,
    #[serde(default)]
    limits: FileLimits,
    metrics_listen: Option<String>,
    cache_dir: Option<PathBuf>,
    upstream_ca_file: Option<PathBuf>,
    #[serde(default)]
    resolve: Vec<String>,
    lfs_storage_hosts: Option<Vec<String>>,
    spool_dir: Option<PathBuf>,
    state: Option<String>,
    admin_listen: Option<String>,
    admin_token: Option<SecretSource>,
    webhook_listen: Option<String>,
    webhook_secret: Option<SecretSource>,
    events_log: Option<PathBuf>,
    #[serde(default, deserialize_with = "ghapp_core::config::app_tables")]
    app: Vec<FileApp>,
    /// What every `[[sandbox]]` inherits unless it says otherwise.
    #[serde(default)]
    defaults: FileDefaults,
    /// The token exchange service.
    sts: Option<sts::FileSts>,
    /// Where the proxy says that something waits for a person.
    notify: Option<notify::FileNotify>,
    /// Budgets below GitHub's limits.
    #[serde(default)]
    budget: budget::FileBudget,
    #[serde(default)]
    sandbox: Vec<FileSandbox>,
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    /// `host:port` sandboxes reach the proxy at, when not `listen` (behind a Service or a
    /// load balancer): the address in the `HTTPS_PROXY` the admin API hands out.
    pub advertise: Option<String>,
    pub ca_dir: PathBuf,
    pub egress: Egress,
    /// Internal addresses a tunnel may reach all the same.
    pub egress_allow: Vec<Allow>,
    pub audit_log: Option<PathBuf>,
    /// Rotate the audit log to `PATH.1` once it passes this size.
    pub audit_max_bytes: Option<u64>,
    pub limits: Limits,
    pub metrics_listen: Option<SocketAddr>,
    pub cache_dir: PathBuf,
    /// PEM bundle trusted for GitHub (a GHES private CA); default: the system's or
    /// `SSL_CERT_FILE`.
    pub upstream_ca_file: Option<PathBuf>,
    /// Upstream host names resolved to fixed addresses (`NAME=IP`): a GHES behind split DNS,
    /// or an emulator served under a name.
    pub resolve: Vec<(String, std::net::IpAddr)>,
    /// Where GitHub's LFS batch answers send objects (`host:port`): served through the proxy's
    /// TLS, for the URLs granted.
    pub lfs_storage_hosts: Vec<String>,
    /// The apps that mint for sandboxes, each for its `owners` (empty: any): `[[app]]` tables
    /// (or one `[app]`), with the `GHAPP_*` environment layered over the first as for every
    /// command. All on one GitHub.
    pub apps: Vec<AppConfig>,
    pub refresh_margin: std::time::Duration,
    pub sandboxes: Vec<SandboxConfig>,
    /// Push inspection's packs and mirrors.
    pub spool_dir: PathBuf,
    /// The state store (`sqlite:PATH` or `postgres://…`); `None`: no store (sandboxes from
    /// this file only).
    pub state: Option<String>,
    /// The admin API's listener and bearer token.
    pub admin_listen: Option<SocketAddr>,
    pub admin_token: Option<ProxySecret>,
    /// GitHub's webhooks: their listener, the secret deliveries are signed with, and the file
    /// every verified event is appended to.
    pub webhook_listen: Option<SocketAddr>,
    pub webhook_secret: Option<ProxySecret>,
    pub events_log: Option<PathBuf>,
    /// `[sts]`: the token exchange service, on its own listener.
    pub sts: Option<StsConfig>,
    /// `[notify]`: receivers told when a request is held, a proposal recorded or a budget
    /// spent.
    pub notify: Option<NotifyConfig>,
    pub budget: BudgetConfig,
    /// `[defaults]`, for sandboxes added through the admin API.
    defaults: FileDefaults,
}

/// Where GitHub stores LFS objects when the file does not say: its object store and media
/// hosts on github.com, `media.HOST` on a GHES.
fn default_lfs_storage(github: &ghapp_core::config::GitHubHost) -> Vec<String> {
    if github.git_host().eq_ignore_ascii_case("github.com") {
        [
            "github-cloud.s3.amazonaws.com:443",
            "github-cloud.githubusercontent.com:443",
            "media.githubusercontent.com:443",
        ]
        .map(String::from)
        .to_vec()
    } else {
        vec![crate::router::with_port(&format!(
            "media.{}",
            github.git_host()
        ))]
    }
}

impl ProxyConfig {
    /// A sandbox of the state store: its stored keys (the `[[sandbox]]` keys as JSON, the
    /// secret as `{"sha256": HEX}`) with this file's `[defaults]`, checked as the file's are.
    pub fn stored_sandbox(
        &self,
        name: &str,
        spec: &serde_json::Value,
    ) -> Result<SandboxConfig, ConfigError> {
        let mut spec = spec.clone();
        if let Some(m) = spec.as_object_mut() {
            m.insert("name".into(), serde_json::Value::String(name.to_owned()));
        }
        let s: FileSandbox = serde_json::from_value(spec)
            .map_err(|e| ConfigError(format!("sandbox {name:?}: {e}")))?;
        let mut d = self.defaults.clone();
        let rules = file_rules!(d);
        s.build("(the admin API)", &self.defaults, &rules)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!("cannot read proxy config {}: {e}", path.display()))
        })?;
        // Relative paths in the file are relative to the file, wherever the proxy is started.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let base = std::fs::canonicalize(dir).map_err(|e| {
            ConfigError(format!("cannot read proxy config {}: {e}", path.display()))
        })?;
        Self::parse_at(
            &text,
            &path.display().to_string(),
            &ghapp_core::config::ProcessEnv,
            &base,
        )
    }

    /// The app that mints for `owner`: the first whose `owners` hold it (or that serves any).
    pub fn app_for(&self, owner: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.serves_owner(Some(owner)))
    }

    /// Where GitHub is (every app's is the same).
    pub fn github(&self) -> &ghapp_core::config::GitHubHost {
        &self.apps[0].github
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        Self::parse_with_env(text, origin, &ghapp_core::config::ProcessEnv)
    }

    /// As [`ProxyConfig::parse`], with `env` as the `GHAPP_*` environment.
    pub fn parse_with_env(
        text: &str,
        origin: &str,
        env: &dyn ghapp_core::config::Env,
    ) -> Result<Self, ConfigError> {
        let cwd = std::env::current_dir().map_err(|e| {
            ConfigError(format!("proxy config {origin}: no working directory: {e}"))
        })?;
        Self::parse_at(text, origin, env, &cwd)
    }

    /// As [`ProxyConfig::parse_with_env`], relative paths taken from `base` (the file's
    /// directory): every path the proxy keeps is absolute, so no later change of directory
    /// (git runs in its mirrors) changes what one names.
    fn parse_at(
        text: &str,
        origin: &str,
        env: &dyn ghapp_core::config::Env,
        base: &Path,
    ) -> Result<Self, ConfigError> {
        let abs = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let f: File = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let mut msg = e.message().replace('\n', " ");
            // A top-level key written after a table belongs to that table in TOML.
            if let Some(key) = msg
                .strip_prefix("unknown field `")
                .and_then(|m| m.split('`').next())
                .filter(|k| TOP_LEVEL_KEYS.contains(k))
            {
                msg = format!(
                    "{msg}; {key} is a top-level setting: move it above the first [table] (TOML reads every key after a [table] header as that table's)"
                );
            }
            ConfigError(match line {
                Some(l) => format!("proxy config {origin} line {l}: {msg}"),
                None => format!("proxy config {origin}: {msg}"),
            })
        })?;
        let addr = |s: &str, key: &str| -> Result<SocketAddr, ConfigError> {
            s.parse().map_err(|_| {
                ConfigError(format!(
                    "proxy config {origin}: {key} = {s:?} is not an address: use e.g. \"127.0.0.1:8080\""
                ))
            })
        };
        let listen = addr(f.listen.as_deref().unwrap_or("127.0.0.1:8080"), "listen")?;
        let advertise = f
            .advertise
            .map(|a| {
                let ok = a.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty()
                        && port.parse::<u16>().is_ok_and(|p| p > 0)
                        && host
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c))
                });
                if ok {
                    Ok(a)
                } else {
                    Err(ConfigError(format!(
                        "proxy config {origin}: advertise = {a:?} is not HOST:PORT: use the address sandboxes reach the proxy at, e.g. \"ghapp-proxy.agents.svc:8080\""
                    )))
                }
            })
            .transpose()?;
        let metrics_listen = f
            .metrics_listen
            .as_deref()
            .map(|s| addr(s, "metrics_listen"))
            .transpose()?;
        let ca_dir = abs(f.ca_dir.unwrap_or_else(|| PathBuf::from("ghapp-proxy-ca")));
        let apps = ghapp_core::config::layered_apps(
            env,
            &ghapp_core::config::Overrides::default(),
            &f.app,
            Some(Path::new(origin)),
        )
        .map_err(|e| ConfigError(format!("proxy config {origin}: {e}")))?;
        let Some(first) = apps.first() else {
            return Err(ConfigError(format!(
                "proxy config {origin}: no app: add an [[app]] table (app_id, private_key_file), or set GHAPP_APP_ID and GHAPP_PRIVATE_KEY_FILE"
            )));
        };
        if let Some(other) = apps.iter().find(|a| a.github != first.github) {
            return Err(ConfigError(format!(
                "proxy config {origin}: the apps name two GitHubs ({} and {}): one proxy fronts one GitHub; run one proxy per GitHub",
                first.api_url(),
                other.api_url()
            )));
        }
        let mut sandboxes: Vec<SandboxConfig> = Vec::new();
        let kept_defaults = f.defaults.clone();
        let mut defaults = f.defaults;
        let default_rules = file_rules!(defaults);
        for s in f.sandbox {
            let sb = s.build(origin, &defaults, &default_rules)?;
            if sandboxes.iter().any(|x| x.name == sb.name) {
                return Err(ConfigError(format!(
                    "proxy config {origin}: sandbox {:?}: the name is used twice",
                    sb.name
                )));
            }
            sandboxes.push(sb);
        }
        let cache_dir = f.cache_dir.map_or_else(|| ca_dir.join("tokens"), abs);
        let spool_dir = f.spool_dir.map_or_else(|| ca_dir.join("spool"), abs);
        let admin_listen = f
            .admin_listen
            .as_deref()
            .map(|s| addr(s, "admin_listen"))
            .transpose()?;
        let token = |src: Option<SecretSource>,
                     key: &str|
         -> Result<Option<ProxySecret>, ConfigError> {
            match src.map(|s| s.read(key)) {
                None => Ok(None),
                Some(Ok(Credential::Secret(t))) => Ok(Some(t)),
                Some(Ok(Credential::Sha256(_))) => Err(ConfigError(format!(
                    "proxy config {origin}: {key}: give the value ({{ env = \"VAR\" }} or {{ file = \"PATH\" }}), not its sha256"
                ))),
                Some(Err(e)) => Err(ConfigError(format!("proxy config {origin}: {e}"))),
            }
        };
        let admin_token = token(f.admin_token, "admin_token")?;
        // Named here, or the credentials JSON's WebhookSecret.
        let webhook_secret = match token(f.webhook_secret, "webhook_secret")? {
            Some(s) => Some(s),
            None => apps
                .iter()
                .find_map(|a| a.webhook_secret.as_ref())
                .map(|w| ProxySecret::new(w.expose().to_owned())),
        };
        let webhook_listen = f
            .webhook_listen
            .as_deref()
            .map(|s| addr(s, "webhook_listen"))
            .transpose()?;
        if webhook_listen.is_some() && webhook_secret.is_none() {
            return Err(ConfigError(format!(
                "proxy config {origin}: webhook_listen needs webhook_secret = {{ env = \"VAR\" }} or {{ file = \"PATH\" }} (the app's webhook secret)"
            )));
        }
        if admin_listen.is_some() && admin_token.is_none() {
            return Err(ConfigError(format!(
                "proxy config {origin}: admin_listen needs admin_token = {{ env = \"VAR\" }} or {{ file = \"PATH\" }} (the bearer token of the admin API)"
            )));
        }
        // The store: named, or (with an admin API to fill it) a SQLite file beside the CA dir.
        let state = std::env::var("GHAPP_PROXY_STATE")
            .ok()
            .filter(|v| !v.is_empty())
            .or(f.state)
            .map(|s| match s.strip_prefix("sqlite:") {
                Some(file) if !file.starts_with("//") && Path::new(file).is_relative() => {
                    format!("sqlite:{}", base.join(file).display())
                }
                _ => s,
            })
            .or_else(|| {
                admin_listen
                    .map(|_| format!("sqlite:{}", ca_dir.with_file_name("state.db").display()))
            });
        let egress_allow = f
            .egress_allow
            .iter()
            .map(|e| {
                Allow::parse(e).map_err(|m| ConfigError(format!("proxy config {origin}: {m}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let limits = f.limits.build(origin)?;
        let sts = f.sts.map(|s| s.build(origin, abs)).transpose()?;
        let notify = f.notify.map(|n| n.build(origin)).transpose()?;
        let budget = f.budget.build(origin)?;
        let resolve = f
            .resolve
            .iter()
            .map(|r| {
                r.split_once('=')
                    .and_then(|(n, ip)| Some((n.trim().to_ascii_lowercase(), ip.trim().parse().ok()?)))
                    .filter(|(n, _)| !n.is_empty())
                    .ok_or_else(|| {
                        ConfigError(format!(
                            "proxy config {origin}: resolve entry {r:?} is not NAME=IP: e.g. \"ghe.internal=10.1.2.3\""
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let lfs_storage_hosts = match f.lfs_storage_hosts {
            Some(hosts) => hosts
                .iter()
                .map(|h| {
                    crate::router::split_authority(h)
                        .filter(|_| !h.contains(['/', '?', '#']))
                        .map(|_| crate::router::with_port(h))
                        .ok_or_else(|| {
                            ConfigError(format!(
                                "proxy config {origin}: lfs_storage_hosts entry {h:?} is not HOST[:PORT]: e.g. \"media.ghe.example\""
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => default_lfs_storage(&apps[0].github),
        };
        if state.is_none()
            && let Some(s) = sandboxes.iter().find(|s| s.mode != Mode::Autonomous)
        {
            return Err(ConfigError(format!(
                "proxy config {origin}: sandbox {:?}: mode = \"{}\" keeps pull requests (held or proposed) in the state store: set state = \"sqlite:PATH\" (or admin_listen, to see and approve them)",
                s.name,
                s.mode.as_str()
            )));
        }
        Ok(ProxyConfig {
            listen,
            advertise,
            ca_dir,
            egress: f.egress,
            egress_allow,
            audit_log: f.audit_log.map(abs),
            audit_max_bytes: f.audit_max_bytes,
            limits,
            metrics_listen,
            cache_dir,
            upstream_ca_file: f.upstream_ca_file.map(abs),
            resolve,
            lfs_storage_hosts,
            apps,
            refresh_margin: ghapp_core::config::DEFAULT_REFRESH_MARGIN,
            sandboxes,
            spool_dir,
            state,
            admin_listen,
            admin_token,
            webhook_listen,
            webhook_secret,
            events_log: f.events_log.map(abs),
            sts,
            notify,
            budget,
            defaults: kept_defaults,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_secret_file_is_refused_not_read_forever() {
        let text = r#"
[app]
api_url = "https://127.0.0.1:1/api/v3"
app_id = 1
private_key_file = "/nonexistent/key.pem"

[[sandbox]]
name = "a"
secret = { file = "/dev/zero" }
"#;
        let e = ProxyConfig::parse(text, "test.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sandbox \"a\"") && e.contains("larger than 64 KiB"),
            "{e}"
        );
    }

    #[test]
    fn advertise_is_host_and_port() {
        let base = "[app]\napi_url = \"https://h/api/v3\"\napp_id = 1\nprivate_key_file = \"/k\"\n";
        for good in ["proxy.internal:3128", "10.0.0.7:8080", "[fd00::1]:8080"] {
            let c = ProxyConfig::parse(&format!("advertise = {good:?}\n{base}"), "t.toml").unwrap();
            assert_eq!(c.advertise.as_deref(), Some(good));
        }
        for bad in [
            "proxy.internal",
            "user@host:1",
            "host:0",
            "host:port",
            "http://h:1",
            ":80",
        ] {
            let e = ProxyConfig::parse(&format!("advertise = {bad:?}\n{base}"), "t.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains("is not HOST:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_fleet_states_its_rules_once_in_defaults() {
        let text = r#"
[app]
api_url = "https://h/api/v3"
app_id = 1
private_key_file = "/k"

[defaults]
push = ["agent/*"]
allow_delete = true
rest = ["POST /repos/{owner}/{repo}/statuses/{sha}"]

[[sandbox]]
name = "inherits"
secret = "0123456789abcdef"
repos = ["o/r"]

[[sandbox]]
name = "read-only"
secret = "0123456789abcdef"
repos = ["o/r"]
push = []
allow_delete = false
rest = []
"#;
        let c = ProxyConfig::parse(text, "t").unwrap();
        let (a, b) = (&c.sandboxes[0], &c.sandboxes[1]);
        assert_eq!(
            (a.push.clone(), a.allow_delete, a.rest.len()),
            (vec!["agent/*".to_owned()], true, 1)
        );
        assert_eq!((b.push.len(), b.allow_delete, b.rest.len()), (0, false, 0));
        let e = ProxyConfig::parse(
            &text.replace("allow_delete = true", "alow_delete = true"),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("alow_delete"), "{e}");
    }

    #[test]
    fn apps_from_tables_or_the_environment() {
        // Issue 11, trap 3: [[app]] (several, one GitHub), [app], or the GHAPP_* environment.
        let env = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let none = env(&[]);
        let two = "[[app]]\napi_url = \"https://h/api/v3\"\napp_id = 1\nprivate_key_file = \"/k\"\nowners = [\"a\"]\n[[app]]\napi_url = \"https://h/api/v3\"\napp_id = 2\nprivate_key_file = \"/k\"\n";
        let c = ProxyConfig::parse_with_env(two, "t", &none).unwrap();
        assert_eq!(c.app_for("A").unwrap().ident.app_id, Some(1));
        assert_eq!(c.app_for("b").unwrap().ident.app_id, Some(2));
        let c = ProxyConfig::parse_with_env(
            "",
            "t",
            &env(&[
                ("GHAPP_API_URL", "https://h/api/v3"),
                ("GHAPP_APP_ID", "3"),
                ("GHAPP_PRIVATE_KEY_FILE", "/k"),
            ]),
        )
        .unwrap();
        assert_eq!((c.apps.len(), c.github().git_host()), (1, "h"));
        let e = ProxyConfig::parse_with_env("", "t", &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no app: add an [[app]] table"), "{e}");
        let e = ProxyConfig::parse_with_env(
            &two.replacen("https://h/api/v3", "https://other/api/v3", 1),
            "t",
            &none,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("one proxy fronts one GitHub"), "{e}");
    }

    #[test]
    fn the_webhook_secret_comes_from_the_file_or_the_credentials_json() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds.json");
        // The key is never read here; only its shape matters (put together, not committed).
        let pem = format!(
            "-----BEGIN RSA {0}-----\nQQ\n-----END RSA {0}-----",
            "PRIVATE KEY"
        );
        let json = serde_json::json!({"AppID": 7, "PrivateKeyPEM": pem, "WebhookSecret": "from-the-credentials"});
        std::fs::write(&creds, json.to_string()).unwrap();
        let app = format!(
            "[app]\napi_url = \"https://h/api/v3\"\ncredentials_file = {:?}\n",
            creds.display().to_string()
        );
        let c =
            ProxyConfig::parse(&format!("webhook_listen = \"127.0.0.1:0\"\n{app}"), "t").unwrap();
        assert_eq!(c.webhook_secret.unwrap().expose(), "from-the-credentials");
        let c = ProxyConfig::parse(
            &format!("webhook_listen = \"127.0.0.1:0\"\nwebhook_secret = \"named-here-0123456789\"\n{app}"),
            "t",
        )
        .unwrap();
        assert_eq!(c.webhook_secret.unwrap().expose(), "named-here-0123456789");
        let e = ProxyConfig::parse(
            "webhook_listen = \"127.0.0.1:0\"\n[app]\napi_url = \"https://h/api/v3\"\napp_id = 1\nprivate_key_file = \"/k\"\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("webhook_listen needs webhook_secret"), "{e}");
        let e = ProxyConfig::parse(
            "admin_listen = \"127.0.0.1:0\"\n[app]\napi_url = \"https://h/api/v3\"\napp_id = 1\nprivate_key_file = \"/k\"\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("admin_listen needs admin_token"), "{e}");
    }

    #[test]
    fn a_top_level_key_inside_a_table_is_named_as_such() {
        // The list the hint uses is the file's own top level, no more, no less.
        let e = toml::from_str::<File>("nope = 1")
            .unwrap_err()
            .message()
            .to_owned();
        let listed: Vec<&str> = e
            .split("expected one of ")
            .nth(1)
            .unwrap()
            .split(", ")
            .map(|k| k.trim_matches('`'))
            .filter(|k| {
                ![
                    "limits", "app", "defaults", "sts", "notify", "budget", "sandbox",
                ]
                .contains(k)
            })
            .collect();
        assert_eq!(listed, TOP_LEVEL_KEYS, "{e}");
        let text = "[[sandbox]]\nname = \"a\"\nsecret = \"0123456789abcdef\"\nadmin_listen = \"127.0.0.1:9\"\n";
        let e = ProxyConfig::parse(text, "t").unwrap_err().to_string();
        assert!(
            e.contains("admin_listen is a top-level setting: move it above the first [table]"),
            "{e}"
        );
    }

    #[test]
    fn limits_and_egress_allow_are_checked() {
        let base = "[app]\napi_url = \"https://127.0.0.1:1/api/v3\"\napp_id = 1\nprivate_key_file = \"/k.pem\"\n";
        let cfg = ProxyConfig::parse(
            &format!("egress_allow = [\"10.0.0.0/8\"]\n[limits]\nidle_timeout = \"2m\"\n{base}"),
            "t",
        )
        .unwrap();
        assert_eq!(cfg.limits.idle_timeout, std::time::Duration::from_secs(120));
        assert_eq!(cfg.egress_allow.len(), 1);
        for (bad, want) in [
            ("[limits]\nidle_timeout = \"soon\"\n", "idle_timeout"),
            (
                "[limits]\nmax_connections = 0\n",
                "max_connections must be at least 1",
            ),
            ("[limits]\nmax_conections = 5\n", "unknown field"),
            (
                "egress_allow = [\"example.com:443\"]\n",
                "names are not accepted",
            ),
            ("resolve = [\"ghe.test\"]\n", "is not NAME=IP"),
            ("resolve = [\"ghe.test=nowhere\"]\n", "is not NAME=IP"),
        ] {
            let e = ProxyConfig::parse(&format!("{bad}{base}"), "t")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
