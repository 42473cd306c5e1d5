//! Errors of ghapp-core. Each message says what happened and what to do, in one line, and never
//! carries a secret (GitHub's own `message` field is included; it never echoes credentials).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is missing, unreadable or wrong; the message names the file or variable.
    #[error("{0}")]
    Config(String),

    /// The private key could not be obtained or parsed; the message names the source.
    #[error("{0}")]
    Key(String),

    /// The private key file cannot be read. Typed, so a caller whose setting has another name
    /// (the proxy's `[app] private_key_file`) can say that name instead.
    #[error(
        "cannot read private key file {}: {reason}; set GHAPP_PRIVATE_KEY_FILE to the .pem downloaded from the app's settings",
        path.display()
    )]
    KeyFileUnreadable { path: PathBuf, reason: String },

    #[error("cannot reach {url}: {reason}; check GHAPP_API_URL and the network or proxy settings")]
    Unreachable { url: String, reason: String },

    #[error(
        "GitHub refused the app's JWT (401: {message}): check that app id {app} and the private key belong to the same app"
    )]
    JwtRejected { app: String, message: String },

    /// GitHub answers 404 both when the app is not installed on the owner and when the
    /// repository does not exist (or is not granted to the installation): the message says both.
    #[error("{}", not_installed(owner, repo, install_url))]
    NotInstalled {
        owner: String,
        repo: String,
        install_url: String,
    },

    #[error(
        "GitHub refused to mint a token for {scope} (422: {message}): the installation does not grant that repository or permission; narrow the request or update the app's installation"
    )]
    OutsideGrant { scope: String, message: String },

    #[error("GitHub answered {status} to {what}: {message}")]
    Api {
        status: u16,
        what: String,
        message: String,
    },

    #[error(
        "GitHub kept answering {status} to {what} for {waited_secs} s (deadline {deadline_secs} s): {message}; try again later"
    )]
    GaveUp {
        status: u16,
        what: String,
        message: String,
        waited_secs: u64,
        deadline_secs: u64,
    },

    #[error("unexpected answer from GitHub to {what}: {detail}")]
    BadResponse { what: String, detail: String },

    #[error("token cache {path}: {source}; check the directory's owner and permissions or set GHAPP_CACHE_DIR", path = path.display())]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn cache(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Cache {
            path: path.into(),
            source,
        }
    }
}

fn not_installed(owner: &str, repo: &str, install_url: &str) -> String {
    if repo == "*" {
        format!("the app is not installed on {owner}: install it at {install_url}")
    } else {
        format!(
            "the app is not installed on {owner}, or {owner}/{repo} does not exist or is not granted to the installation: check the name, or install the app at {install_url}"
        )
    }
}
