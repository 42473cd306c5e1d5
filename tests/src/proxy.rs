//! `ghapp proxy` as a process in front of a world's emulator, and the sandboxes' settings.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{World, bin_dir};

/// A running `ghapp proxy` process (the real binary), stopped on drop.
pub struct ProxyProc {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub metrics_addr: Option<String>,
    /// The admin API's `http://ADDR`, when `admin_listen` is set.
    pub admin_url: Option<String>,
    /// The webhook receiver's URL, when `webhook_listen` is set.
    pub webhook_url: Option<String>,
    /// The token exchange's `SCHEME://ADDR`, when `[sts]` is set.
    pub sts_url: Option<String>,
    pub ca_path: PathBuf,
    pub audit_path: PathBuf,
    /// The proxy's TOML, which SIGHUP reloads.
    pub config_path: PathBuf,
    stderr: std::sync::Arc<Mutex<String>>,
}

/// The proxy secrets of the two sandboxes of [`two_sandboxes`].
pub const SECRET_A: &str = "sandbox-a-secret-0123456789";
pub const SECRET_B: &str = "sandbox-b-secret-0123456789";

/// `[[sandbox]]` tables: agent-a (octo-org/widgets, pushes to `refs/heads/agent/*`, plus
/// `a_extra` lines) and agent-b (octo-org/gadgets, `agent/*`, deletes allowed).
pub fn two_sandboxes(a_extra: &str) -> String {
    format!(
        r#"
[[sandbox]]
name = "agent-a"
secret = "{SECRET_A}"
repos = ["octo-org/widgets"]
push = ["refs/heads/agent/*"]
{a_extra}

[[sandbox]]
name = "agent-b"
secret = "{SECRET_B}"
repos = ["octo-org/gadgets"]
push = ["agent/*"]
allow_delete = true
"#
    )
}

impl ProxyProc {
    /// The proxy's `/metrics` answer (head and body).
    pub fn metrics(&self) -> String {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(self.metrics_addr.as_deref().unwrap()).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

impl ProxyProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the proxy process has used so far, in clock ticks (user + system).
    pub fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let f: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |x| x.1)
            .split_whitespace()
            .collect();
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        field(11) + field(12)
    }

    /// Resident memory of the proxy process now (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// File descriptors the proxy process holds open (sockets among them).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Peak resident memory of the proxy process so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// What the proxy logged so far.
    pub fn log(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit_path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl World {
    /// Starts `ghapp proxy` in front of this world's emulator. `sandboxes` are `[[sandbox]]`
    /// tables; `extra` top-level keys (e.g. `egress = "tunnel"`).
    pub fn start_proxy(&self, sandboxes: &str, extra: &str) -> ProxyProc {
        self.start_proxy_with_env(sandboxes, extra, &[])
    }

    /// [`World::start_proxy`] with these variables in the proxy's environment as well.
    pub fn start_proxy_with_env(
        &self,
        sandboxes: &str,
        extra: &str,
        env: &[(&str, String)],
    ) -> ProxyProc {
        let app = format!(
            "[app]\napi_url = {:?}\napp_id = {}\nprivate_key_file = {:?}\n",
            self.hub.api_url(),
            self.hub.app_id(),
            self.hub.key_path().display().to_string(),
        );
        self.spawn_proxy(sandboxes, extra, &app, env)
    }

    /// The emulator's app as an `[[app]]` table with more keys (`owners`, `installation_id`).
    pub fn app_table(&self, more: &str) -> String {
        format!(
            "[[app]]\napi_url = {:?}\napp_id = {}\nprivate_key_file = {:?}\n{more}\n",
            self.hub.api_url(),
            self.hub.app_id(),
            self.hub.key_path().display().to_string(),
        )
    }

    /// [`World::start_proxy`] with these app tables instead of the emulator's one `[app]`.
    pub fn start_proxy_with_apps(&self, sandboxes: &str, extra: &str, apps: &str) -> ProxyProc {
        self.spawn_proxy(sandboxes, extra, apps, &[])
    }

    fn spawn_proxy(
        &self,
        sandboxes: &str,
        extra: &str,
        apps: &str,
        env: &[(&str, String)],
    ) -> ProxyProc {
        use std::io::{BufRead, BufReader, Read};
        let dir = tempfile::Builder::new()
            .prefix("proxy-")
            .tempdir_in(self.root.path())
            .unwrap()
            .keep();
        let audit = dir.join("audit.jsonl");
        let config = dir.join("proxy.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nca_dir = {:?}\naudit_log = {:?}\nmetrics_listen = \"127.0.0.1:0\"\n{extra}\n{apps}\n\n{sandboxes}\n",
                dir.join("ca").display().to_string(),
                audit.display().to_string(),
            ),
        )
        .unwrap();
        let mut child = Command::new(bin_dir().join("ghapp"))
            .args(["proxy", "--config"])
            .arg(&config)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("GHAPP_CONFIG", "")
            .env("GHAPP_LOG", "info")
            .env("SSL_CERT_FILE", self.hub.ca_path())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ghapp proxy starts");
        let stderr = std::sync::Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (mut addr, mut metrics, mut admin, mut hooks, mut sts) = (None, None, None, None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let mut l = String::new();
            if out.read_line(&mut l).unwrap_or(0) == 0 {
                break;
            }
            if let Some(a) = l.trim().strip_prefix("ghapp proxy listening on ") {
                addr = Some(a.to_owned());
            }
            if let Some(m) = l.trim().strip_prefix("metrics: http://") {
                metrics = m.strip_suffix("/metrics").map(str::to_owned);
            }
            if let Some(a) = l.trim().strip_prefix("webhooks: ") {
                hooks = Some(a.to_owned());
            }
            if let Some(a) = l.trim().strip_prefix("token exchange: ") {
                sts = a.split("/sts/").next().map(str::to_owned);
            }
            if let Some(a) = l.trim().strip_prefix("admin API: ") {
                admin = a.split("/v1/").next().map(str::to_owned);
            }
            if l.trim_start().starts_with("sandbox environment:") {
                break;
            }
        }
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            let log = stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
            panic!("ghapp proxy did not start: {log}");
        };
        ProxyProc {
            child,
            addr,
            metrics_addr: metrics,
            admin_url: admin,
            webhook_url: hooks,
            sts_url: sts,
            ca_path: dir.join("ca").join("ca.pem"),
            audit_path: audit,
            config_path: config,
            stderr,
        }
    }

    /// A sandbox's whole environment: the proxy and its CA, and nothing else of ghapp's.
    pub fn sandbox_env(
        &self,
        proxy: &ProxyProc,
        name: &str,
        secret: &str,
    ) -> Vec<(String, String)> {
        let home = self.path(&format!("sandbox-home-{name}"));
        std::fs::create_dir_all(&home).unwrap();
        let cfg = home.join("gitconfig");
        if !cfg.exists() {
            std::fs::write(&cfg, "").unwrap();
        }
        let mut env = fakehub::isolated_git_env(
            &std::env::var("PATH").unwrap_or_default(),
            &home,
            &cfg,
            &proxy.ca_path,
            "Sandbox Agent",
        );
        env.push((
            "HTTPS_PROXY".into(),
            format!("http://{name}:{secret}@{}", proxy.addr),
        ));
        env
    }
}

impl World {
    /// `env` (a sandbox's) with what gh needs behind the proxy: the emulator as `GH_HOST`, a
    /// placeholder token the proxy replaces, a config dir of its own, no prompts or colour,
    /// and the proxy's CA for Go's TLS.
    pub fn gh_env(
        &self,
        proxy: &ProxyProc,
        mut env: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let config = self.path("gh-config");
        std::fs::create_dir_all(&config).unwrap();
        for (k, v) in [
            ("GH_HOST", self.hub.git_host()),
            ("GH_ENTERPRISE_TOKEN", GH_PLACEHOLDER.to_owned()),
            ("GH_CONFIG_DIR", config.display().to_string()),
            ("GH_NO_UPDATE_NOTIFIER", "1".to_owned()),
            ("GH_PROMPT_DISABLED", "1".to_owned()),
            ("NO_COLOR", "1".to_owned()),
            ("SSL_CERT_FILE", proxy.ca_path.display().to_string()),
        ] {
            env.push((k.to_owned(), v));
        }
        env
    }
}

/// The token gh is given in a sandbox: any value, which the proxy drops for its own.
pub const GH_PLACEHOLDER: &str = "placeholder-the-proxy-replaces";
