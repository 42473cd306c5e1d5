//! The one configuration loader shared by every binary.
//!
//! Precedence: command-line flag, then environment, then the config file (`$GHAPP_CONFIG`, else
//! `config.toml` in the user config dir), then defaults. Flags and environment describe one app
//! and override the first `[[app]]` of the file (or stand alone when the file has none); further
//! `[[app]]` tables serve other hosts or owners.
//!
//! | variable | meaning |
//! |---|---|
//! | `GHAPP_API_URL` | REST base; default `https://api.github.com`; GHES `https://HOST/api/v3` |
//! | `GHAPP_GIT_HOST` | git host, when it cannot be derived from the API URL |
//! | `GHAPP_APP_ID` / `GHAPP_CLIENT_ID` | the app (the client id is used as the JWT issuer when given) |
//! | `GHAPP_PRIVATE_KEY_FILE` | PEM file (PKCS#1 as GitHub downloads it, or PKCS#8) |
//! | `GHAPP_PRIVATE_KEY` | PEM text; `\n` escapes accepted |
//! | `GHAPP_PRIVATE_KEY_COMMAND` | shell command whose stdout is the PEM or the credentials JSON |
//! | `GHAPP_PRIVATE_KEY_KEYRING` | `SERVICE/USER` entry of the OS keyring holding the PEM |
//! | `GHAPP_CREDENTIALS_FILE` | `{"AppID":..,"InstallationID":..,"PrivateKeyPEM":..}` |
//! | `GHAPP_INSTALLATION_ID` | skip installation discovery |
//! | `GHAPP_PAT` | a fine-grained personal access token: the fallback where no app is installed |
//! | `GHAPP_PAT_FILE` | a 0600 file holding that token |
//! | `GHAPP_PAT_KEYRING` | `SERVICE/USER` entry of the OS keyring holding that token |
//! | `GHAPP_CONFIG` | config file path |
//! | `GHAPP_CACHE_DIR` | token cache directory |
//! | `GHAPP_REFRESH_MARGIN` | seconds before expiry at which a cached token is replaced (600) |
//! | `GHAPP_LOG` | log filter for stderr, e.g. `debug` |

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::keys::{Credentials, KeySource, PatSource};

mod env;
mod exchange;
mod file;
mod host;

pub use env::{ENV_VARS, Env, ProcessEnv};
use env::{parse_u64, unescape_newlines};
pub use exchange::ExchangeConfig;
pub use file::{FileApp, app_tables, check_text, default_config_path};
use file::{FileConfig, FilePat, FileSigner, read_file};
pub use host::{GitHubHost, default_cache_dir};

pub const DEFAULT_API_URL: &str = "https://api.github.com";
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(600);

/// How the app identifies itself in the JWT's `iss`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppIdent {
    pub app_id: Option<u64>,
    pub client_id: Option<String>,
}

impl AppIdent {
    /// The JWT issuer: the client id if given, else the app id (GitHub accepts both).
    pub fn issuer(&self) -> String {
        match (&self.client_id, self.app_id) {
            (Some(c), _) => c.clone(),
            (None, Some(id)) => id.to_string(),
            (None, None) => String::new(),
        }
    }
}

impl std::fmt::Display for AppIdent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.issuer())
    }
}

/// One configured GitHub App.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Where its GitHub is.
    pub github: GitHubHost,
    pub ident: AppIdent,
    pub installation_id: Option<u64>,
    pub key: KeySource,
    /// Owners this app serves; empty: any owner on its host.
    pub owners: Vec<String>,
    /// The app's webhook secret, when its credentials JSON carries one (`WebhookSecret`).
    pub webhook_secret: Option<crate::secret::WebhookSecret>,
    /// Where each of its settings came from, for messages that name what to fix.
    pub sources: Sources,
}

/// Where an app's settings came from: a variable (`GHAPP_API_URL`), a flag (`--app-id`), or
/// a file's table (`/etc/ghapp/proxy.toml [app]`). `None`: the built-in default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub api_url: Option<String>,
    pub app_id: Option<String>,
    pub key: Option<String>,
}

impl Sources {
    /// ` (api_url from GHAPP_API_URL)`, or nothing for a default.
    pub fn of(&self, key: &str) -> String {
        let from = match key {
            "api_url" => &self.api_url,
            "app_id" => &self.app_id,
            _ => &self.key,
        };
        from.as_ref()
            .map(|w| format!(" ({key} from {w})"))
            .unwrap_or_default()
    }
}

impl AppConfig {
    /// Whether this app serves `host` (and `owner`, when known).
    pub fn serves(&self, host: &str, owner: Option<&str>) -> bool {
        self.github.serves(host) && self.serves_owner(owner)
    }

    /// Whether `owner` (when known) is one of the app's, on whatever host.
    pub fn serves_owner(&self, owner: Option<&str>) -> bool {
        serves_owner(&self.owners, owner)
    }

    /// The REST base, without a trailing slash.
    pub fn api_url(&self) -> &str {
        self.github.api_url()
    }

    /// `HOST[:PORT]` that git talks to.
    pub fn git_host(&self) -> &str {
        self.github.git_host()
    }
}

/// An empty list serves every owner; an unknown owner is served.
fn serves_owner(owners: &[String], owner: Option<&str>) -> bool {
    match owner {
        Some(o) if !owners.is_empty() => owners.iter().any(|x| x.eq_ignore_ascii_case(o)),
        _ => true,
    }
}

/// A fine-grained personal access token: answers for a host (and owners) where no app is
/// configured, or where the app is not installed on the owner.
#[derive(Debug, Clone)]
pub struct PatConfig {
    pub github: GitHubHost,
    pub source: PatSource,
    /// Owners the token serves; empty: any owner on its host.
    pub owners: Vec<String>,
}

impl PatConfig {
    pub fn serves(&self, host: &str, owner: Option<&str>) -> bool {
        self.github.serves(host) && self.serves_owner(owner)
    }

    /// Whether `owner` (when known) is one of the token's, on whatever host.
    pub fn serves_owner(&self, owner: Option<&str>) -> bool {
        serves_owner(&self.owners, owner)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub apps: Vec<AppConfig>,
    /// Fallback personal access tokens, the environment's first.
    pub pats: Vec<PatConfig>,
    pub refresh_margin: Duration,
    pub cache_dir: PathBuf,
    /// The file the configuration came from, if any.
    pub file: Option<PathBuf>,
    /// The GitHub that `GHAPP_API_URL` (and `GHAPP_GIT_HOST`) name, app or not: the helper
    /// says why it answers nothing for that host when no app is configured.
    pub env_github: Option<GitHubHost>,
    /// A token exchange service that answers where no app does (`GHAPP_EXCHANGE_URL`).
    pub exchange: Option<ExchangeConfig>,
}

impl Config {
    /// The app that serves `host` (and `owner`, when known).
    pub fn app_for(&self, host: &str, owner: Option<&str>) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.serves(host, owner))
    }

    /// The personal access token that serves `host` (and `owner`, when known).
    pub fn pat_for(&self, host: &str, owner: Option<&str>) -> Option<&PatConfig> {
        self.pats.iter().find(|p| p.serves(host, owner))
    }

    /// The first app, or an error that says how to configure one.
    pub fn primary(&self) -> Result<&AppConfig> {
        self.apps
            .first()
            .ok_or_else(|| Error::Config(not_configured(self.file.as_deref())))
    }
}

/// The message for "no app configured", naming the config file to write.
pub fn not_configured(file: Option<&Path>) -> String {
    let file = file
        .map(|p| p.display().to_string())
        .or_else(|| default_config_path().map(|p| p.display().to_string()))
        .unwrap_or_else(|| "$GHAPP_CONFIG".into());
    format!(
        "no GitHub App configured: set GHAPP_APP_ID and GHAPP_PRIVATE_KEY_FILE (or GHAPP_CREDENTIALS_FILE), or add an [[app]] table to {file}"
    )
}

/// Command-line overrides; `None` leaves the lower layers in charge.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub api_url: Option<String>,
    pub app_id: Option<u64>,
    pub client_id: Option<String>,
    pub installation_id: Option<u64>,
    pub private_key_file: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
}

impl Config {
    /// Loads from the process environment and the config file.
    pub fn load(overrides: &Overrides) -> Result<Config> {
        Self::load_from(&ProcessEnv, overrides)
    }

    /// Loads with an explicit environment (tests). Each layer is a named step: the file, the
    /// settings, the apps (environment and flags over the file's first), the fallback tokens.
    pub fn load_from(env: &dyn Env, ov: &Overrides) -> Result<Config> {
        let (file_cfg, file) = config_file(env, ov)?;
        let refresh_margin = refresh_margin(env, &file_cfg)?;
        let cache_dir = cache_dir(env, ov, &file_cfg)?;
        let apps = layered_apps(env, ov, &file_cfg.app, file.as_deref())?;
        let pats = pats(env, file_cfg.pat)?;
        let env_github = match env.var("GHAPP_API_URL") {
            Some(api) => Some(GitHubHost::new(
                Some(&api),
                env.var("GHAPP_GIT_HOST").as_deref(),
            )?),
            None => None,
        };
        let exchange = ExchangeConfig::from_env(env, env_github.as_ref())?;
        Ok(Config {
            apps,
            pats,
            refresh_margin,
            cache_dir,
            file,
            env_github,
            exchange,
        })
    }
}

/// The config file and where it came from: `--config`, else `GHAPP_CONFIG` (set but empty: no
/// file at all, for tests and hermetic CI jobs), else the default path when it exists.
fn config_file(env: &dyn Env, ov: &Overrides) -> Result<(FileConfig, Option<PathBuf>)> {
    let no_file = ov.config_file.is_none() && env.raw("GHAPP_CONFIG").as_deref() == Some("");
    let explicit_file = ov
        .config_file
        .clone()
        .or_else(|| env.var("GHAPP_CONFIG").map(PathBuf::from));
    Ok(match explicit_file {
        Some(p) => (read_file(&p, true)?, Some(p)),
        None if no_file => (FileConfig::default(), None),
        None => match default_config_path() {
            Some(p) if p.exists() => (read_file(&p, false)?, Some(p)),
            _ => (FileConfig::default(), None),
        },
    })
}

fn refresh_margin(env: &dyn Env, file_cfg: &FileConfig) -> Result<Duration> {
    match env.var("GHAPP_REFRESH_MARGIN") {
        Some(v) => Ok(Duration::from_secs(v.trim().parse().map_err(|_| {
            Error::Config(format!(
                "GHAPP_REFRESH_MARGIN={v:?} is not a whole number of seconds: use e.g. 600"
            ))
        })?)),
        None => Ok(file_cfg
            .refresh_margin
            .map_or(DEFAULT_REFRESH_MARGIN, Duration::from_secs)),
    }
}

fn cache_dir(env: &dyn Env, ov: &Overrides, file_cfg: &FileConfig) -> Result<PathBuf> {
    let cache_dir = ov
        .cache_dir
        .clone()
        .or_else(|| env.var("GHAPP_CACHE_DIR").map(PathBuf::from))
        .or_else(|| file_cfg.cache_dir.clone())
        .unwrap_or_else(default_cache_dir);
    if cache_dir.is_relative() {
        // A relative directory would be a different one in every repository git runs in.
        return Err(Error::Config(format!(
            "the token cache directory {} is relative: set GHAPP_CACHE_DIR (or cache_dir) to an absolute path",
            cache_dir.display()
        )));
    }
    Ok(cache_dir)
}

/// The apps: the environment and the flags layered over the file's first `[[app]]` (or making
/// one of their own), then the file's others as written. The proxy reads its apps with it too.
pub fn layered_apps(
    env: &dyn Env,
    ov: &Overrides,
    file_apps: &[FileApp],
    file: Option<&Path>,
) -> Result<Vec<AppConfig>> {
    let mut primary = file_apps.first().cloned().unwrap_or_default();
    let mut layered = false;
    let one = file_apps.len() == 1;
    let table = |n: usize| {
        let t = if one {
            "[app]".to_owned()
        } else {
            format!("[[app]] #{n}")
        };
        match file {
            Some(f) => format!("{} {t}", f.display()),
            None => t,
        }
    };
    let mut sources = Sources {
        api_url: primary.api_url.as_ref().map(|_| table(1)),
        app_id: (primary.app_id.is_some() || primary.client_id.is_some()).then(|| table(1)),
        key: (primary.private_key_file.is_some()
            || primary.private_key_command.is_some()
            || primary.signer.is_some()
            || primary.private_key_keyring.is_some()
            || primary.credentials_file.is_some())
        .then(|| table(1)),
    };
    macro_rules! layer {
        ($field:ident, $val:expr) => {
            if let Some(v) = $val {
                primary.$field = Some(v);
                layered = true;
            }
        };
    }
    let from = |v: &Option<String>, name: &str| v.as_ref().map(|_| name.to_owned());
    // The host alone does not make an app (it may be there for a personal access token).
    if let Some(v) = env.var("GHAPP_API_URL") {
        primary.api_url = Some(v);
        sources.api_url = Some("GHAPP_API_URL".into());
    }
    if let Some(v) = env.var("GHAPP_GIT_HOST") {
        primary.git_host = Some(v);
    }
    for name in ["GHAPP_APP_ID", "GHAPP_CLIENT_ID"] {
        if let Some(w) = from(&env.var(name), name) {
            sources.app_id = Some(w);
        }
    }
    for name in [
        "GHAPP_CREDENTIALS_FILE",
        "GHAPP_PRIVATE_KEY_COMMAND",
        "GHAPP_PRIVATE_KEY_KEYRING",
        "GHAPP_PRIVATE_KEY",
        "GHAPP_PRIVATE_KEY_FILE",
        "GHAPP_SIGNER_COMMAND",
    ] {
        if let Some(w) = from(&env.var(name), name) {
            sources.key = Some(w);
        }
    }
    if ov.api_url.is_some() {
        sources.api_url = Some("--api-url".into());
    }
    if ov.app_id.is_some() || ov.client_id.is_some() {
        sources.app_id = Some("the command line".into());
    }
    if ov.private_key_file.is_some() {
        sources.key = Some("--private-key-file".into());
    }
    layer!(app_id, parse_u64(env, "GHAPP_APP_ID")?);
    layer!(client_id, env.var("GHAPP_CLIENT_ID"));
    layer!(installation_id, parse_u64(env, "GHAPP_INSTALLATION_ID")?);
    layer!(
        credentials_file,
        env.var("GHAPP_CREDENTIALS_FILE").map(PathBuf::from)
    );
    layer!(private_key_command, env.var("GHAPP_PRIVATE_KEY_COMMAND"));
    layer!(private_key_keyring, env.var("GHAPP_PRIVATE_KEY_KEYRING"));
    let env_key_pem = env.var("GHAPP_PRIVATE_KEY");
    layered |= env_key_pem.is_some();
    layer!(
        private_key_file,
        env.var("GHAPP_PRIVATE_KEY_FILE").map(PathBuf::from)
    );
    layer!(api_url, ov.api_url.clone());
    layer!(app_id, ov.app_id);
    layer!(client_id, ov.client_id.clone());
    layer!(installation_id, ov.installation_id);
    layer!(private_key_file, ov.private_key_file.clone());
    // A more specific layer's key source replaces the file's: a flag or variable naming a key
    // file wins over a keyring entry written in the file.
    if env_key_pem.is_some() || ov.private_key_file.is_some() {
        if env_key_pem.is_some() && ov.private_key_file.is_none() {
            primary.private_key_file = None;
        }
        primary.private_key_command = None;
        primary.private_key_keyring = None;
        primary.signer = None;
    }
    // A signer named in the environment replaces every key source of the file (a shell command
    // line, as GHAPP_PRIVATE_KEY_COMMAND is).
    if let Some(cmd) = env.var("GHAPP_SIGNER_COMMAND") {
        primary.signer = Some(FileSigner {
            command: Some(vec!["sh".into(), "-c".into(), cmd]),
            pkcs11: None,
        });
        primary.private_key_file = None;
        primary.private_key_command = None;
        primary.private_key_keyring = None;
        primary.credentials_file = None;
        layered = true;
    }

    let mut apps = Vec::new();
    if !file_apps.is_empty() || layered {
        let mut app = build_app(primary, env_key_pem, "environment", file)?;
        app.sources = sources;
        apps.push(app);
    }
    for (i, a) in file_apps.iter().enumerate().skip(1) {
        let t = table(i + 1);
        let mut app = build_app(a.clone(), None, &format!("[[app]] #{}", i + 1), file)?;
        app.sources = Sources {
            api_url: a.api_url.as_ref().map(|_| t.clone()),
            app_id: Some(t.clone()),
            key: Some(t),
        };
        apps.push(app);
    }
    Ok(apps)
}

/// The fallback personal access tokens: the environment's first, then the file's.
fn pats(env: &dyn Env, file_pats: Vec<FilePat>) -> Result<Vec<PatConfig>> {
    let mut pats = Vec::new();
    let env_pat = match (
        env.var("GHAPP_PAT"),
        env.var("GHAPP_PAT_FILE"),
        env.var("GHAPP_PAT_KEYRING"),
    ) {
        (Some(t), _, _) => Some(PatSource::Env(crate::secret::PersonalAccessToken::new(
            t.trim(),
        ))),
        (None, Some(f), _) => Some(PatSource::File(expand_tilde(Path::new(&f)))),
        (None, None, Some(k)) => Some(keyring_entry(&k, "GHAPP_PAT_KEYRING", |service, user| {
            PatSource::Keyring { service, user }
        })?),
        _ => None,
    };
    if let Some(source) = env_pat {
        pats.push(PatConfig {
            github: GitHubHost::new(
                env.var("GHAPP_API_URL").as_deref(),
                env.var("GHAPP_GIT_HOST").as_deref(),
            )?,
            source,
            owners: Vec::new(),
        });
    }
    for (i, p) in file_pats.into_iter().enumerate() {
        let origin = format!("[[pat]] #{}", i + 1);
        let github = GitHubHost::new(p.api_url.as_deref(), p.git_host.as_deref())?;
        let source = match (p.token_file, p.token_keyring) {
            (Some(f), None) => PatSource::File(expand_tilde(&f)),
            (None, Some(k)) => keyring_entry(&k, &origin, |service, user| PatSource::Keyring {
                service,
                user,
            })?,
            _ => {
                return Err(Error::Config(format!(
                    "{origin} needs exactly one of token_file or token_keyring"
                )));
            }
        };
        pats.push(PatConfig {
            github,
            source,
            owners: p.owners,
        });
    }
    Ok(pats)
}

/// `SERVICE/USER` -> a keyring source.
fn keyring_entry<T>(
    entry: &str,
    origin: &str,
    make: impl FnOnce(String, String) -> T,
) -> Result<T> {
    let (service, user) = entry
        .split_once('/')
        .filter(|(s, u)| !s.is_empty() && !u.is_empty())
        .ok_or_else(|| {
            Error::Config(format!(
                "keyring entry {entry:?} ({origin}) is not SERVICE/USER: e.g. \"ghapp/pat-github.com\""
            ))
        })?;
    Ok(make(service.into(), user.into()))
}

impl FileApp {
    /// Builds the app this table describes; `origin` names it in errors.
    pub fn build(self, origin: &str) -> Result<AppConfig> {
        build_app(self, None, origin, None)
    }
}

fn build_app(
    a: FileApp,
    env_pem: Option<String>,
    origin: &str,
    file: Option<&Path>,
) -> Result<AppConfig> {
    let github = GitHubHost::new(a.api_url.as_deref(), a.git_host.as_deref())?;
    let mut ident = AppIdent {
        app_id: a.app_id,
        client_id: a.client_id,
    };
    let mut installation_id = a.installation_id;
    let mut webhook_secret = None;

    let key = if let Some(pem) = env_pem {
        KeySource::Env(crate::secret::PrivateKeyPem::new(unescape_newlines(&pem)))
    } else if let Some(p) = a.private_key_file {
        KeySource::File(expand_tilde(&p))
    } else if let Some(cmd) = a.private_key_command {
        KeySource::Command(cmd)
    } else if let Some(entry) = a.private_key_keyring {
        keyring_entry(&entry, origin, |service, user| KeySource::Keyring {
            service,
            user,
        })?
    } else if let Some(p) = a.credentials_file {
        let creds = Credentials::read_file(&expand_tilde(&p))?;
        ident.app_id = ident.app_id.or(Some(creds.app_id));
        installation_id = installation_id.or(creds.installation_id);
        webhook_secret = creds.webhook_secret;
        KeySource::Inline(creds.private_key)
    } else if let Some(signer) = a.signer {
        KeySource::Signer(signer_spec(signer, origin)?)
    } else {
        let what = if ident.app_id.is_some() || ident.client_id.is_some() {
            format!("app {ident} has no private key")
        } else {
            return Err(Error::Config(not_configured(file)));
        };
        return Err(Error::Config(format!(
            "{what} ({origin}): set GHAPP_PRIVATE_KEY_FILE to the .pem downloaded from the app's settings, or GHAPP_CREDENTIALS_FILE"
        )));
    };
    if ident.app_id.is_none() && ident.client_id.is_none() && !matches!(key, KeySource::Command(_))
    {
        return Err(Error::Config(format!(
            "the app has a private key but no id ({origin}): set GHAPP_APP_ID (or GHAPP_CLIENT_ID) as shown in the app's settings"
        )));
    }
    Ok(AppConfig {
        github,
        ident,
        installation_id,
        key,
        owners: a.owners,
        webhook_secret,
        sources: Sources::default(),
    })
}

fn expand_tilde(p: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => match directories::BaseDirs::new() {
            Some(b) => b.home_dir().join(rest),
            None => p.to_path_buf(),
        },
        Err(_) => p.to_path_buf(),
    }
}

/// A `signer` table as what signs: a command or a PKCS#11 key, exactly one.
fn signer_spec(signer: FileSigner, origin: &str) -> Result<crate::keys::SignerSpec> {
    use crate::keys::{PinSource, Pkcs11Spec, SignerSpec};
    match (signer.command, signer.pkcs11) {
        (Some(command), None) => {
            if command.first().is_none_or(|p| p.is_empty()) {
                return Err(Error::Config(format!(
                    "signer.command is empty ({origin}): name the program that signs, e.g. signer = {{ command = [\"/usr/local/bin/kms-sign\"] }}"
                )));
            }
            Ok(SignerSpec::Command(command))
        }
        (None, Some(p)) => {
            let pin = match (p.pin.env, p.pin.file) {
                (Some(v), None) if !v.is_empty() => PinSource::Env(v),
                (None, Some(f)) => PinSource::File(expand_tilde(&f)),
                _ => {
                    return Err(Error::Config(format!(
                        "signer.pkcs11.pin ({origin}): give exactly one of {{ env = \"VAR\" }} or {{ file = \"PATH\" }}"
                    )));
                }
            };
            if p.token.is_empty() || p.key_label.is_empty() {
                return Err(Error::Config(format!(
                    "signer.pkcs11 ({origin}): token and key_label name the token and the key in it (their labels)"
                )));
            }
            Ok(SignerSpec::Pkcs11(Pkcs11Spec {
                module: expand_tilde(&p.module),
                token: p.token,
                key_label: p.key_label,
                pin,
            }))
        }
        _ => Err(Error::Config(format!(
            "signer ({origin}): give exactly one of command = [...] or pkcs11 = {{ module, token, key_label, pin }}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Never read the developer's own config file in unit tests.
        m.entry("GHAPP_CONFIG".into())
            .or_insert_with(|| "/nonexistent/ghapp-test.toml".into());
        m
    }

    #[test]
    fn env_app() {
        // PEM-shaped, put together here (no key-looking text is committed).
        let pem = format!(
            "-----BEGIN RSA {0}-----\\nAAA\\n-----END RSA {0}-----",
            "PRIVATE KEY"
        );
        let e = env(&[
            ("GHAPP_APP_ID", "42"),
            ("GHAPP_PRIVATE_KEY", pem.as_str()),
            ("GHAPP_API_URL", "https://ghe.corp/api/v3/"),
        ]);
        let err = Config::load_from(&e, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read config file"), "{err}");

        let mut e = e;
        e.insert("GHAPP_CONFIG".into(), String::new());
        let c = Config::load_from(&e, &Overrides::default()).unwrap();
        let a = c.primary().unwrap();
        assert_eq!(a.api_url(), "https://ghe.corp/api/v3");
        assert_eq!(a.git_host(), "ghe.corp");
        assert_eq!(a.ident.app_id, Some(42));
        match &a.key {
            KeySource::Env(p) => assert!(p.expose().contains("KEY-----\nAAA\n")),
            k => panic!("{k:?}"),
        }
        assert_eq!(c.refresh_margin, DEFAULT_REFRESH_MARGIN);
        // Debug never shows the key.
        assert!(!format!("{c:?}").contains("AAA"));
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "refresh_margin = 120\n[[app]]\napp_id = 1\nprivate_key_file = \"/k.pem\"\ninstallation_id = 5\n[[app]]\napi_url = \"https://ghe.corp/api/v3\"\napp_id = 9\nprivate_key_command = \"vault read\"\nowners = [\"corp\"]\n",
        )
        .unwrap();
        let e = env(&[("GHAPP_CONFIG", f.to_str().unwrap()), ("GHAPP_APP_ID", "2")]);
        let ov = Overrides {
            installation_id: Some(77),
            ..Default::default()
        };
        let c = Config::load_from(&e, &ov).unwrap();
        assert_eq!(c.refresh_margin, Duration::from_secs(120));
        assert_eq!(c.apps.len(), 2);
        assert_eq!(c.apps[0].ident.app_id, Some(2));
        assert_eq!(c.apps[0].installation_id, Some(77));
        assert!(matches!(c.apps[0].key, KeySource::File(_)));
        assert!(c.app_for("ghe.corp", Some("corp")).is_some());
        assert!(c.app_for("ghe.corp", Some("other")).is_none());
        assert_eq!(c.app_for("github.com", None).unwrap().ident.app_id, Some(2));
    }

    #[test]
    fn a_signer_is_a_key_source_and_the_more_specific_layer_wins() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[[app]]\napp_id = 1\nsigner = { command = [\"/usr/local/bin/kms-sign\", \"--key\", \"alias/ghapp\"] }\n",
        )
        .unwrap();
        let load = |pairs: &[(&str, &str)]| {
            let mut all = vec![("GHAPP_CONFIG", f.to_str().unwrap())];
            all.extend_from_slice(pairs);
            Config::load_from(&env(&all), &Overrides::default())
        };
        let c = load(&[]).unwrap();
        match &c.apps[0].key {
            KeySource::Signer(crate::keys::SignerSpec::Command(argv)) => {
                assert_eq!(argv[2], "alias/ghapp")
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(c.apps[0].key.describe(), "signer command `kms-sign`");
        // A key file in the environment replaces the file's signer, and the reverse.
        let c = load(&[("GHAPP_PRIVATE_KEY_FILE", "/k.pem")]).unwrap();
        assert!(matches!(c.apps[0].key, KeySource::File(_)));
        let c = load(&[("GHAPP_SIGNER_COMMAND", "/opt/sign --fast")]).unwrap();
        assert_eq!(c.apps[0].key.describe(), "signer command `sign`");
        assert_eq!(
            c.apps[0].sources.key.as_deref(),
            Some("GHAPP_SIGNER_COMMAND")
        );
        // An empty command, or an unknown key in the table, is named.
        std::fs::write(&f, "[[app]]\napp_id = 1\nsigner = { command = [] }\n").unwrap();
        let e = load(&[]).unwrap_err().to_string();
        assert!(e.contains("signer.command is empty"), "{e}");
        std::fs::write(&f, "[[app]]\napp_id = 1\nsigner = { cmd = [\"x\"] }\n").unwrap();
        let e = load(&[]).unwrap_err().to_string();
        assert!(e.contains("cmd"), "{e}");
        // A PKCS#11 key: its PIN from one place, never both signers at once.
        let p11 = "pkcs11 = { module = \"/m.so\", token = \"t\", key_label = \"k\", pin = PIN }";
        std::fs::write(
            &f,
            format!(
                "[[app]]\napp_id = 1\nsigner = {{ {} }}\n",
                p11.replace("PIN", "{ file = \"/p\" }")
            ),
        )
        .unwrap();
        assert_eq!(
            load(&[]).unwrap().apps[0].key.describe(),
            "PKCS#11 key \"k\" in token \"t\" (/m.so)"
        );
        for (pin, extra, says) in [
            ("{ env = \"A\", file = \"/p\" }", "", "exactly one of { env"),
            ("{}", "", "exactly one of { env"),
            (
                "{ env = \"A\" }",
                ", command = [\"x\"]",
                "exactly one of command",
            ),
        ] {
            let text = format!(
                "[[app]]\napp_id = 1\nsigner = {{ {}{extra} }}\n",
                p11.replace("PIN", pin)
            );
            std::fs::write(&f, text).unwrap();
            let e = load(&[]).unwrap_err().to_string();
            assert!(e.contains(says), "{pin}{extra}: {e}");
        }
    }

    #[test]
    fn bad_inputs_are_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[[app]]\napp_id = 1\nprivate_key_fil = \"x\"\n").unwrap();
        let cases: Vec<(BTreeMap<String, String>, &str)> = vec![
            (env(&[("GHAPP_CONFIG", f.to_str().unwrap())]), "line 3"),
            (
                env(&[("GHAPP_CONFIG", ""), ("GHAPP_APP_ID", "abc")]),
                "GHAPP_APP_ID",
            ),
            (
                env(&[("GHAPP_CONFIG", ""), ("GHAPP_APP_ID", "1")]),
                "no private key",
            ),
            (
                env(&[("GHAPP_CONFIG", ""), ("GHAPP_REFRESH_MARGIN", "10m")]),
                "GHAPP_REFRESH_MARGIN",
            ),
            (
                env(&[
                    ("GHAPP_CONFIG", ""),
                    ("GHAPP_API_URL", "http://x/api/v3"),
                    ("GHAPP_APP_ID", "1"),
                    ("GHAPP_PRIVATE_KEY_FILE", "/k"),
                ]),
                "not https",
            ),
        ];
        for (e, want) in cases {
            let err = Config::load_from(&e, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn apps_are_tables_in_either_spelling() {
        // Issue 11, trap 3: [app] and [[app]] are one shape; anything else says which.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        let load = |text: &str| {
            std::fs::write(&f, text).unwrap();
            Config::load_from(
                &env(&[("GHAPP_CONFIG", f.to_str().unwrap())]),
                &Overrides::default(),
            )
        };
        let one = "[app]\napp_id = 7\nprivate_key_file = \"/k.pem\"\n";
        let many = "[[app]]\napp_id = 7\nprivate_key_file = \"/k.pem\"\n[[app]]\napp_id = 8\nprivate_key_file = \"/k.pem\"\nowners = [\"x\"]\n";
        assert_eq!(load(one).unwrap().apps[0].ident.app_id, Some(7));
        assert_eq!(load(many).unwrap().apps.len(), 2);
        let e = load("app = \"7\"\n").unwrap_err().to_string();
        assert!(
            e.contains("line 1")
                && e.contains(
                    "expected [[app]] tables (app_id, private_key_file, ...), one per app"
                ),
            "{e}"
        );
        let e = load("[app]\napp_id = 7\nprivate_key_fil = \"/k\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("private_key_fil"), "{e}");
    }

    #[test]
    fn nothing_configured() {
        let c = Config::load_from(&env(&[("GHAPP_CONFIG", "")]), &Overrides::default()).unwrap();
        assert!(c.apps.is_empty());
        let err = c.primary().unwrap_err().to_string();
        assert!(err.contains("no GitHub App configured"), "{err}");
    }
}
