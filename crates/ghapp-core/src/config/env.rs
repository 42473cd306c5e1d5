//! The environment: every variable ghapp reads, and where they are read from (the process, or
//! a map in tests).

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Every environment variable ghapp reads, for docs and `doctor`.
pub const ENV_VARS: &[&str] = &[
    "GHAPP_API_URL",
    "GHAPP_GIT_HOST",
    "GHAPP_APP_ID",
    "GHAPP_CLIENT_ID",
    "GHAPP_PRIVATE_KEY_FILE",
    "GHAPP_PRIVATE_KEY",
    "GHAPP_PRIVATE_KEY_COMMAND",
    "GHAPP_PRIVATE_KEY_KEYRING",
    "GHAPP_CREDENTIALS_FILE",
    "GHAPP_INSTALLATION_ID",
    "GHAPP_PAT",
    "GHAPP_PAT_FILE",
    "GHAPP_PAT_KEYRING",
    "GHAPP_CONFIG",
    "GHAPP_CACHE_DIR",
    "GHAPP_REFRESH_MARGIN",
    "GHAPP_LOG",
    "GHAPP_EXCHANGE_URL",
    "GHAPP_EXCHANGE_IDENTITY",
    "GHAPP_EXCHANGE_AUDIENCE",
    "GHAPP_OIDC_TOKEN_FILE",
];

/// Reads variables: the real environment, or a map in tests.
pub trait Env {
    /// The value as set, empty included.
    fn raw(&self, name: &str) -> Option<String>;
    /// The value; an empty value counts as unset.
    fn var(&self, name: &str) -> Option<String> {
        self.raw(name).filter(|v| !v.is_empty())
    }
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn raw(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for BTreeMap<String, String> {
    fn raw(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

pub(crate) fn parse_u64(env: &dyn Env, name: &str) -> Result<Option<u64>> {
    env.var(name)
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                Error::Config(format!(
                    "{name}={v:?} is not a number: use the numeric id shown in the app's settings"
                ))
            })
        })
        .transpose()
}

/// PEM text pasted into an environment variable often has literal `\n`.
pub(crate) fn unescape_newlines(s: &str) -> String {
    if s.contains('\n') {
        s.to_owned()
    } else {
        s.replace("\\n", "\n")
    }
}
