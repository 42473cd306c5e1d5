//! A sandbox's table (`[[sandbox]]`, `[defaults]`, or the admin API's JSON): its identity,
//! its push rules (docs/guides/sandbox.md), its trust mode (docs/guides/fleet.md), checked once into a
//! [`SandboxConfig`].

use std::path::PathBuf;

use ghapp_core::secret::ProxySecret;
use ghapp_gitproto::repo::RepoName;
use serde::Deserialize;

use super::ConfigError;

/// Whether `name` may name a sandbox: 1 to 64 of `A-Z a-z 0-9 . _ -`, starting with a letter or
/// a digit. One charset wherever a name is given (the file, the admin API): no spaces, `:`,
/// `/`, control characters or bidi overrides reach a terminal, a log line, a URL or the
/// `HTTPS_PROXY` user name.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The `reviewers` entry that stands for the code owners of the changed paths.
pub const CODEOWNERS: &str = "@codeowners";

/// Whether `r` is a GitHub login (`octocat`), a team (`octo-org/reviewers`), or
/// [`CODEOWNERS`]: a login is 1 to 39 letters, digits and single hyphens, not at either end;
/// a team's slug comes after one `/`.
fn reviewer_shape(r: &str) -> bool {
    if r == CODEOWNERS {
        return true;
    }
    let login = |s: &str| {
        (1..=39).contains(&s.len())
            && !s.starts_with('-')
            && !s.ends_with('-')
            && !s.contains("--")
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    match r.split_once('/') {
        Some((org, team)) => {
            login(org)
                && (1..=100).contains(&team.len())
                && team
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        }
        None => login(r),
    }
}

/// `[defaults]`: the policy keys a fleet states once; a sandbox's own value replaces one.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDefaults {
    pub(super) push: Option<Vec<String>>,
    pub(super) allow_delete: Option<bool>,
    pub(super) allow_merge: Option<bool>,
    pub(super) weight: Option<u32>,
    pub(super) reviewers: Option<Vec<String>>,
    pub(super) rest: Option<Vec<String>>,
    pub(super) mode: Option<Mode>,
    pub(super) significant: Option<FileSignificant>,
    pub(super) force: Option<Vec<String>>,
    pub(super) protected_paths: Option<Vec<String>>,
    pub(super) max_file_bytes: Option<u64>,
    pub(super) max_push_bytes: Option<u64>,
    pub(super) secret_scan: Option<bool>,
    pub(super) inspect: Option<bool>,
}

/// The push inspection keys, as `[defaults]` or a `[[sandbox]]` gives them (serde's `flatten`
/// cannot be combined with `deny_unknown_fields`, so each table lists them and hands them here).
#[derive(Debug, Default)]
pub(super) struct FileRules {
    pub(super) force: Option<Vec<String>>,
    pub(super) protected_paths: Option<Vec<String>>,
    pub(super) max_file_bytes: Option<u64>,
    pub(super) max_push_bytes: Option<u64>,
    pub(super) secret_scan: Option<bool>,
    pub(super) inspect: Option<bool>,
}

/// A table's push inspection keys, moved out.
macro_rules! file_rules {
    ($t:expr) => {
        FileRules {
            force: $t.force.take(),
            protected_paths: $t.protected_paths.take(),
            max_file_bytes: $t.max_file_bytes,
            max_push_bytes: $t.max_push_bytes,
            secret_scan: $t.secret_scan,
            inspect: $t.inspect,
        }
    };
}

impl FileRules {
    /// These rules, each key this table leaves out taken from `defaults`, then from the built-in
    /// defaults; `fail` words an error.
    pub(super) fn build(
        &self,
        defaults: &FileRules,
        fail: &dyn Fn(String) -> ConfigError,
    ) -> Result<PushRules, ConfigError> {
        let d = PushRules::default();
        let protected_paths = self
            .protected_paths
            .clone()
            .or_else(|| defaults.protected_paths.clone())
            .unwrap_or(d.protected_paths);
        for g in &protected_paths {
            if let Err(e) = globset::Glob::new(g) {
                return Err(fail(format!(
                    "protected_paths entry {g:?} is not a glob ({}): e.g. \".github/workflows/**\"",
                    e.kind()
                )));
            }
        }
        let bytes = |v: Option<u64>, dv: Option<u64>, key: &str, def: u64| match v.or(dv) {
            Some(0) => Err(fail(format!("{key} must be at least 1"))),
            v => Ok(v.unwrap_or(def)),
        };
        Ok(PushRules {
            force: self
                .force
                .clone()
                .or_else(|| defaults.force.clone())
                .unwrap_or_default(),
            protected_paths,
            max_file_bytes: bytes(
                self.max_file_bytes,
                defaults.max_file_bytes,
                "max_file_bytes",
                d.max_file_bytes,
            )?,
            max_push_bytes: bytes(
                self.max_push_bytes,
                defaults.max_push_bytes,
                "max_push_bytes",
                d.max_push_bytes,
            )?,
            secret_scan: self
                .secret_scan
                .or(defaults.secret_scan)
                .unwrap_or(d.secret_scan),
            inspect: self.inspect.or(defaults.inspect).unwrap_or(d.inspect),
        })
    }
}

/// What a push may do beyond its ref names, decided by inspecting it (the sandbox guide's push
/// rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRules {
    /// Ref patterns (as `push`) where a non-fast-forward update is allowed.
    pub force: Vec<String>,
    /// Globs over paths (`**` crosses directories, `*` does not; compared ignoring case) that a
    /// push may not add, change or delete.
    pub protected_paths: Vec<String>,
    pub max_file_bytes: u64,
    pub max_push_bytes: u64,
    pub secret_scan: bool,
    /// Off: pushes are decided on their ref names alone.
    pub inspect: bool,
}

impl Default for PushRules {
    fn default() -> Self {
        PushRules {
            force: Vec::new(),
            protected_paths: vec![".github/workflows/**".into()],
            max_file_bytes: 100 << 20,
            max_push_bytes: 2 << 30,
            secret_scan: true,
            inspect: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSandbox {
    name: String,
    secret: SecretSource,
    #[serde(default)]
    repos: Vec<String>,
    push: Option<Vec<String>>,
    allow_delete: Option<bool>,
    allow_merge: Option<bool>,
    weight: Option<u32>,
    reviewers: Option<Vec<String>>,
    rest: Option<Vec<String>>,
    mode: Option<Mode>,
    significant: Option<FileSignificant>,
    force: Option<Vec<String>>,
    protected_paths: Option<Vec<String>>,
    max_file_bytes: Option<u64>,
    max_push_bytes: Option<u64>,
    secret_scan: Option<bool>,
    inspect: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum SecretSource {
    Literal(String),
    Env {
        env: String,
    },
    File {
        file: PathBuf,
    },
    /// Only the secret's SHA-256 (hex): what the state store keeps.
    Sha256 {
        sha256: String,
    },
}

impl SecretSource {
    /// The secret named by `what` (in errors).
    pub(super) fn read(self, what: &str) -> Result<Credential, String> {
        let secret = match self {
            SecretSource::Literal(v) => v,
            SecretSource::Env { env } => {
                std::env::var(&env).map_err(|_| format!("{what} variable {env} is not set"))?
            }
            SecretSource::File { file } => ghapp_core::fsutil::read_bounded(&file, 64 * 1024)
                .map(|t| t.trim().to_owned())
                .map_err(|e| format!("cannot read {what} file {}: {e}", file.display()))?,
            SecretSource::Sha256 { sha256 } => {
                let bytes: Vec<u8> = (0..sha256.len())
                    .step_by(2)
                    .filter_map(|i| u8::from_str_radix(sha256.get(i..i + 2)?, 16).ok())
                    .collect();
                return <[u8; 32]>::try_from(bytes)
                    .map(Credential::Sha256)
                    .map_err(|_| format!("{what} sha256 must be 64 hex digits"));
            }
        };
        if secret.len() < 16 {
            return Err(format!("the {what} must be at least 16 characters"));
        }
        Ok(Credential::Secret(ProxySecret::new(secret)))
    }
}

/// How a sandbox proves itself: its secret, or (stored sandboxes) only the secret's SHA-256.
#[derive(Clone)]
pub enum Credential {
    Secret(ProxySecret),
    Sha256([u8; 32]),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(****)")
    }
}

impl Credential {
    /// The SHA-256 of a secret.
    pub fn digest(secret: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(secret.as_bytes()).into()
    }

    /// Whether `presented` is the secret (compared in constant time).
    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        match self {
            Credential::Secret(s) => s.matches(presented),
            Credential::Sha256(h) => Credential::digest(presented).ct_eq(h).into(),
        }
    }

    /// Whether two credentials accept the same secret.
    pub fn same(&self, other: &Credential) -> bool {
        match (self, other) {
            (Credential::Secret(a), b) => b.matches(a.expose()),
            (a, Credential::Secret(b)) => a.matches(b.expose()),
            (Credential::Sha256(a), Credential::Sha256(b)) => a == b,
        }
    }
}

/// `significant = { files, lines, paths }`: when an assisted sandbox's pull request is held.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSignificant {
    files: Option<u64>,
    lines: Option<u64>,
    paths: Option<Vec<String>>,
}

/// When a pull request is significant (assisted mode holds it): more files or changed lines
/// than these (GitHub's compare of base...head), or a path matching one of `paths`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Significant {
    pub files: u64,
    pub lines: u64,
    pub paths: Vec<String>,
}

impl Default for Significant {
    fn default() -> Self {
        Significant {
            files: 20,
            lines: 400,
            paths: Vec::new(),
        }
    }
}

/// How far a sandbox's agent is trusted (the fleet guide's trust modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Read-only; pushes and pull requests recorded as proposals.
    Observe,
    /// Every pull request held for a human's approval.
    Learning,
    /// Pull requests created at once unless significant.
    Assisted,
    /// Today's behaviour: the agent opens and manages its pull requests.
    #[default]
    Autonomous,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::Learning => "learning",
            Mode::Assisted => "assisted",
            Mode::Autonomous => "autonomous",
        }
    }
}

/// One sandbox's identity and policy.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub name: String,
    pub secret: Credential,
    /// As configured (the spelling kept; compared case-insensitively).
    pub repos: Vec<RepoName>,
    pub push: Vec<String>,
    pub allow_delete: bool,
    /// May merge its own pull requests (autonomous mode only).
    pub allow_merge: bool,
    /// Its weight in the budgets' fair share (1: an equal share).
    pub weight: u32,
    /// Learning and assisted: who reviews at GitHub (logins, and `org/team` slugs). Set, a
    /// pull request that would be held is opened as a draft with them requested instead.
    pub reviewers: Vec<String>,
    /// Extra REST routes: `(METHOD, path pattern)`.
    pub rest: Vec<(String, String)>,
    pub rules: PushRules,
    pub mode: Mode,
    pub significant: Significant,
}

impl FileSandbox {
    /// The sandbox this table describes, checked, with `[defaults]` for the keys it leaves
    /// out; `origin` names the file in errors.
    pub(super) fn build(
        self,
        origin: &str,
        defaults: &FileDefaults,
        default_rules: &FileRules,
    ) -> Result<SandboxConfig, ConfigError> {
        let mut s = self;
        let name = s.name.clone();
        let fail = |m: String| ConfigError(format!("proxy config {origin}: sandbox {name:?}: {m}"));
        if !valid_name(&name) {
            return Err(fail(
                "a sandbox's name is 1 to 64 of A-Z a-z 0-9 . _ - and starts with a letter or digit (it is shown in terminals, logs and URLs)".into(),
            ));
        }
        let secret = s.secret.read("secret").map_err(fail)?;
        let mut repos = Vec::new();
        for r in &s.repos {
            let Some(name) = RepoName::parse(r) else {
                return Err(fail(format!("repository {r:?} is not OWNER/REPO")));
            };
            repos.push(name);
        }
        let mut rest = Vec::new();
        let rest_routes = s.rest.as_ref().or(defaults.rest.as_ref());
        for r in rest_routes.into_iter().flatten() {
            let Some((m, p)) = r.split_once(' ') else {
                return Err(fail(format!("rest route {r:?} is not \"METHOD /path\"")));
            };
            if !p.starts_with('/') {
                return Err(fail(format!(
                    "rest route {r:?}: the path must start with /"
                )));
            }
            rest.push((m.to_ascii_uppercase(), p.to_owned()));
        }
        let rules = file_rules!(s).build(default_rules, &fail)?;
        let mode = s.mode.or(defaults.mode).unwrap_or_default();
        let d = Significant::default();
        let (own, def) = (
            s.significant.clone().unwrap_or_default(),
            defaults.significant.clone().unwrap_or_default(),
        );
        let significant = Significant {
            files: own.files.or(def.files).unwrap_or(d.files),
            lines: own.lines.or(def.lines).unwrap_or(d.lines),
            paths: own.paths.or(def.paths).unwrap_or(d.paths),
        };
        for g in &significant.paths {
            if let Err(e) = globset::Glob::new(g) {
                return Err(fail(format!(
                    "significant.paths entry {g:?} is not a glob ({})",
                    e.kind()
                )));
            }
        }
        let push = s.push.or_else(|| defaults.push.clone()).unwrap_or_default();
        for (key, p) in push
            .iter()
            .map(|p| ("push", p))
            .chain(rules.force.iter().map(|p| ("force", p)))
        {
            if let Some(rest) = p.strip_prefix("refs/")
                && !rest.starts_with("heads/")
                && !rest.starts_with("tags/")
            {
                let hint = rest
                    .split_once('/')
                    .map(|(_, tail)| format!(": did you mean \"refs/heads/{tail}\"?"))
                    .unwrap_or_default();
                return Err(fail(format!(
                    "{key} pattern {p:?} can match no branch or tag (refs/heads/… or refs/tags/…; a name without refs/ is a branch){hint}"
                )));
            }
        }
        let weight = match s.weight.or(defaults.weight).unwrap_or(1) {
            0 => {
                return Err(fail(
                    "weight must be at least 1 (its share of the budgets)".into(),
                ));
            }
            w => w.min(1000),
        };
        let reviewers = s
            .reviewers
            .or_else(|| defaults.reviewers.clone())
            .unwrap_or_default();
        if let Some(bad) = reviewers.iter().find(|r| !reviewer_shape(r)) {
            return Err(fail(format!(
                "reviewers entry {bad:?} is neither a GitHub login, ORG/TEAM-SLUG nor \"@codeowners\""
            )));
        }
        if reviewers.len() > 15 {
            return Err(fail(
                "reviewers: at most 15 (GitHub requests at most 15 reviewers at once)".into(),
            ));
        }
        Ok(SandboxConfig {
            weight,
            reviewers,
            rules,
            mode,
            significant,
            name,
            secret,
            repos,
            push,
            allow_delete: s.allow_delete.or(defaults.allow_delete).unwrap_or(false),
            allow_merge: s.allow_merge.or(defaults.allow_merge).unwrap_or(false),
            rest,
        })
    }
}

pub(super) use file_rules;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_charset_for_sandbox_names() {
        for good in ["agent-1", "a", "team.agent_2", "A9", &"x".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "agent 1",
            "agent\t1",
            "team/agent",
            "a:b",
            "esc\u{1b}[2J",
            "evil\u{202e}gnp",
            "-dash",
            ".dot",
            "naïve",
            &"x".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
