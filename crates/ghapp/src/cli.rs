//! The command line, as clap reads it: one `#[derive(Args)]` struct per command, handed whole
//! to the module that runs it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ghapp_core::config::Overrides;

#[derive(Parser, Debug)]
#[command(
    name = "ghapp",
    version,
    about = "GitHub App installation tokens for git, CI and sandboxes, without a long-lived secret"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the app is, for the commands that read the host configuration (the flags win over
/// the environment, which wins over the file). Global within those commands, so they may
/// come after a nested subcommand too (`ghapp hooks config --config FILE`).
#[derive(Args, Debug, Clone, Default)]
pub struct AppFlags {
    /// Config file (default: $GHAPP_CONFIG, else config.toml in the user config dir).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// REST API base, e.g. https://HOST/api/v3 for GitHub Enterprise Server.
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,
    /// The app's numeric id.
    #[arg(long, global = true, value_name = "ID")]
    pub app_id: Option<u64>,
    /// Skip installation discovery.
    #[arg(long, global = true, value_name = "ID")]
    pub installation_id: Option<u64>,
    /// The app's private key (PEM).
    #[arg(long, global = true, value_name = "FILE")]
    pub private_key_file: Option<PathBuf>,
}

impl AppFlags {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            api_url: self.api_url.clone(),
            app_id: self.app_id,
            installation_id: self.installation_id,
            private_key_file: self.private_key_file.clone(),
            ..Default::default()
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the GitHub App from a manifest (confirmed in a browser), store its key (OS keyring,
    /// else a 0600 file) and add it to the config file; prints the install URL.
    Setup(SetupArgs),
    /// Print an installation token for one repository (for scripts and CI).
    Token(TokenArgs),
    /// Route a host's HTTPS git credentials to git-credential-ghapp (idempotent).
    ConfigureGit(ConfigureGitArgs),
    /// Check the setup: one line per check (ok / warn / fail), each fail with its fix.
    Doctor(DoctorArgs),
    /// List the app's installations.
    Installations {
        /// Print a JSON array (id, account, repository_selection, permissions).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        app: AppFlags,
    },
    /// Show one installation.
    Installation {
        /// The installation's id (`ghapp installations` lists them).
        id: u64,
        /// Print it as a JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        app: AppFlags,
    },
    /// The app's webhook: configuration, deliveries, redelivery.
    Hooks {
        #[command(subcommand)]
        command: HooksCommand,
        #[command(flatten)]
        app: AppFlags,
    },
    /// Revoke the cached tokens that are still live and clear the cache ("disconnect").
    Revoke {
        /// Also clear the installation cache and lock files.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        app: AppFlags,
    },
    /// Print shell completions.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Write man pages (ghapp.1 and one per command) into DIR, or print ghapp.1.
    Man {
        /// Directory to write the pages into (default: print ghapp.1 on stdout).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run the GitHub emulator (fakehub) in the foreground (runs `ghapp-emulator`).
    Emulator(EmulatorArgs),
    /// Run the sandbox proxy: sandboxes clone, push and open pull requests through it without
    /// holding a token.
    Proxy(ProxyArgs),
    /// Show the whole flow against the built-in emulator: clone, commit, push (runs
    /// `ghapp-emulator`).
    Demo,
    /// Add, change, list and disconnect the proxy's sandboxes (a client of its admin API:
    /// GHAPP_ADMIN_URL, GHAPP_ADMIN_TOKEN).
    Sandbox(SandboxArgs),
    /// Pull requests learning sandboxes asked for: list, show, approve (the proxy creates it),
    /// deny (the agent is told why). A client of the proxy's admin API.
    Approvals(ApprovalsArgs),
    /// What observe-mode sandboxes would have done (pushes with their diffs, pull requests),
    /// recorded instead: list, show, bundle. A client of the proxy's admin API.
    Proposals(ProposalsArgs),
    /// The proxy's notifications (`[notify]` in its config).
    Notify(NotifyArgs),
}

/// `ghapp notify`.
#[derive(Args, Debug, Clone)]
pub struct NotifyArgs {
    #[command(subcommand)]
    pub command: NotifyCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum NotifyCommand {
    /// Send one signed test notification to each `[notify]` receiver of the proxy config and
    /// say what each answered (exit 1 if one was not reached).
    Test {
        /// The proxy's TOML.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Where the proxy's admin API is: `ghapp sandbox`, `approvals` and `proposals` are its
/// clients.
#[derive(Args, Debug, Clone)]
pub struct AdminApi {
    /// The proxy's admin API (its `admin_listen`), e.g. http://127.0.0.1:9091.
    #[arg(long, env = "GHAPP_ADMIN_URL", global = true)]
    pub admin_url: Option<String>,
}

/// `ghapp proposals`.
#[derive(Args, Debug, Clone)]
pub struct ProposalsArgs {
    #[command(flatten)]
    pub admin: AdminApi,
    #[command(subcommand)]
    pub command: ProposalsCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ProposalsCommand {
    /// Newest first: id, sandbox, repository, what it would have done.
    List {
        /// Only this sandbox's.
        #[arg(long)]
        sandbox: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One proposal: a push's refs, commits, changed paths and diff; a pull request's head,
    /// base, title and body.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Save a push's commits as a git bundle, to fetch into a clone (`git fetch FILE REF`)
    /// and push yourself.
    Bundle {
        id: i64,
        /// Where to write it (default: proposal-ID.bundle).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// `ghapp approvals`.
#[derive(Args, Debug, Clone)]
pub struct ApprovalsArgs {
    #[command(flatten)]
    pub admin: AdminApi,
    #[command(subcommand)]
    pub command: ApprovalsCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ApprovalsCommand {
    /// The pending ones (--all: every one).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One approval: sandbox, repository, head -> base, title, body, decision.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Approve: the proxy opens the pull request at GitHub with the sandbox's token.
    Approve {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Deny, with the reason the agent is told.
    Deny {
        id: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

/// `ghapp sandbox`: the admin API's address and token, and what to do.
#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    #[command(flatten)]
    pub admin: AdminApi,
    #[command(subcommand)]
    pub command: SandboxCommand,
}

/// A sandbox's policy, as flags (`add` and `set`).
#[derive(Args, Debug, Clone, Default)]
pub struct SandboxPolicy {
    /// A repository the sandbox works on (OWNER/REPO); repeat for several. `set` replaces them.
    #[arg(long = "repo", value_name = "OWNER/REPO")]
    pub repos: Vec<String>,
    /// A ref pattern it may push (e.g. agent/*); repeat for several. `set` replaces them.
    #[arg(long = "push", value_name = "PATTERN")]
    pub push: Vec<String>,
    /// Refs where it may rewrite history (a non-fast-forward push).
    #[arg(long = "force", value_name = "PATTERN")]
    pub force: Vec<String>,
    /// May it delete refs.
    #[arg(long)]
    pub allow_delete: Option<bool>,
    /// May it merge its own pull requests (autonomous mode only).
    #[arg(long)]
    pub allow_merge: Option<bool>,
    /// How far its agent is trusted: observe (read-only, its work recorded as proposals),
    /// learning (every pull request held for approval), assisted (significant ones held) or
    /// autonomous.
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum SandboxCommand {
    /// Add a sandbox; prints its environment (HTTPS_PROXY with its new secret, the CA), ready
    /// to paste or `eval`. The secret is shown this once.
    Add {
        name: String,
        #[command(flatten)]
        policy: SandboxPolicy,
        /// Where to write the proxy's CA for the sandbox (default: NAME-ca.pem here).
        #[arg(long, value_name = "PATH")]
        ca_file: Option<PathBuf>,
        /// Print the admin API's answer as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// List the sandboxes (from the proxy's file and its state store).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one sandbox and its rules.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a sandbox: its repositories, push patterns, ... (takes effect at once).
    Set {
        name: String,
        #[command(flatten)]
        policy: SandboxPolicy,
        #[arg(long)]
        json: bool,
    },
    /// Disconnect a sandbox: its tokens revoked at GitHub, its tunnels closed, new ones refused.
    Disconnect {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum HooksCommand {
    /// The webhook's URL, content type and TLS setting (the secret stays masked).
    Config,
    /// Recent deliveries, newest first.
    Deliveries {
        /// Only deliveries that failed.
        #[arg(long)]
        failed: bool,
    },
    /// Ask GitHub to deliver a delivery again.
    Redeliver {
        /// The delivery's id (`ghapp hooks deliveries` lists them).
        id: u64,
    },
    /// Check a delivery's X-Hub-Signature-256 against the webhook secret (the body on stdin),
    /// for your own receivers: prints "ok", or fails.
    Verify {
        /// A file holding the webhook secret.
        #[arg(long, value_name = "PATH")]
        secret_file: PathBuf,
        /// The X-Hub-Signature-256 header's value (sha256=HEX).
        #[arg(long, value_name = "SIG")]
        signature: String,
    },
}

/// What `ghapp setup` is asked.
#[derive(Args, Debug, Clone)]
pub struct SetupArgs {
    /// Config file the new app is added to (default: $GHAPP_CONFIG, else config.toml in the
    /// user config dir).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// REST API base of the GitHub to create it on, e.g. https://HOST/api/v3 (or --host).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// Create the app for this organization (default: your personal account).
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// The app's name: unique on the host, at most 34 characters (default: ghapp-ORG-XXXXXX).
    #[arg(long)]
    pub name: Option<String>,
    /// The host: github.com (default, or GHAPP_API_URL's) or a GitHub Enterprise Server host.
    #[arg(long)]
    pub host: Option<String>,
    /// Deliver webhooks to this https URL (default: no webhook).
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// Finish with a code copied from the address GitHub redirected to (no local page).
    #[arg(long)]
    pub code: Option<String>,
    /// Do not try to open a browser; only print the local page's URL.
    #[arg(long)]
    pub no_browser: bool,
    /// Port of the local page on 127.0.0.1 (default: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Keep the private key in this file (0600) instead of the OS keyring.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Seconds to wait for the browser.
    #[arg(long, default_value_t = 900, value_name = "SECS")]
    pub timeout: u64,
}

/// What `ghapp token` is asked.
#[derive(Args, Debug, Clone)]
pub struct TokenArgs {
    #[command(flatten)]
    pub app: AppFlags,
    /// OWNER/REPO the token is narrowed to; repeatable (one owner: one token belongs to one
    /// installation).
    #[arg(long, value_name = "OWNER/REPO", required_unless_present = "owner")]
    pub repo: Vec<String>,
    /// Every repository of OWNER's installation (as create-github-app-token's `owner` without
    /// `repositories`).
    #[arg(long, value_name = "OWNER", conflicts_with = "repo")]
    pub owner: Option<String>,
    /// NAME=LEVEL (read or write); repeatable. Default: contents=write,
    /// pull_requests=write, metadata=read.
    #[arg(long = "permission", value_name = "NAME=LEVEL")]
    pub permissions: Vec<String>,
    /// Print token, expires_at, repositories and permissions as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `ghapp doctor` checks.
#[derive(Args, Debug, Clone)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub app: AppFlags,
    /// Print {"ok": …, "checks": [{"level", "check", "detail", "fix"}]} instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Also check the installation, permissions and a mint for this repository.
    #[arg(long, value_name = "OWNER/REPO")]
    pub repo: Option<String>,
    /// The git host to check (default: the configured app's).
    #[arg(long)]
    pub host: Option<String>,
}

/// How `ghapp emulator` runs.
#[derive(Args, Debug, Clone)]
pub struct EmulatorArgs {
    /// Port on 127.0.0.1 (default: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Directory for repositories, the CA and the app key (default: a temporary one).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Lifetime of minted tokens in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl: u64,
    /// Serve as this host name (in the certificate and every URL), still on 127.0.0.1: for
    /// clients that never proxy loopback addresses (gh, git-lfs); resolve it to 127.0.0.1.
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
}

/// How `ghapp proxy` runs.
#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    /// The proxy's TOML: listeners, sandboxes and their policy, the app (required).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Address to listen on (overrides `listen`).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Directory of the proxy's CA (overrides `ca_dir`).
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
    /// Only check the configuration against GitHub (its certificate, the app's JWT, each
    /// sandbox's installation), print one line per check, and exit (1 if one failed).
    #[arg(long)]
    pub check: bool,
    /// Only ask the running proxy whether it is alive (its `/healthz` on `metrics_listen`):
    /// exit 0 when it answers, 1 when not. For a container's HEALTHCHECK.
    #[arg(long, conflicts_with = "check")]
    pub health: bool,
}

/// Where `ghapp configure-git` routes.
#[derive(Args, Debug, Clone)]
pub struct ConfigureGitArgs {
    #[command(flatten)]
    pub app: AppFlags,
    /// Remove exactly what configure-git writes (other helpers stay).
    #[arg(long)]
    pub unset: bool,
    /// Write the repository's config (.git/config) instead of the global one.
    #[arg(long, conflicts_with = "file")]
    pub local: bool,
    /// Write this git config file instead of the global one (e.g. a CI runner's).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The git host (default: the configured app's, else github.com).
    #[arg(long)]
    pub host: Option<String>,
}
