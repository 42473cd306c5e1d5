//! The config file: its schema as written (`[[app]]`, `[[pat]]`), reading it, and appending an
//! `[[app]]` table (`ghapp setup`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) refresh_margin: Option<u64>,
    pub(crate) cache_dir: Option<PathBuf>,
    #[serde(default)]
    pub(crate) app: Vec<FileApp>,
    #[serde(default)]
    pub(crate) pat: Vec<FilePat>,
}

/// One `[[pat]]` table as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePat {
    pub(crate) api_url: Option<String>,
    pub(crate) git_host: Option<String>,
    pub(crate) token_file: Option<PathBuf>,
    pub(crate) token_keyring: Option<String>,
    #[serde(default)]
    pub(crate) owners: Vec<String>,
}

/// One `[[app]]` table as written (also the `[app]` table of `ghapp proxy`'s config).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileApp {
    pub(crate) api_url: Option<String>,
    pub(crate) git_host: Option<String>,
    pub(crate) app_id: Option<u64>,
    pub(crate) client_id: Option<String>,
    pub(crate) installation_id: Option<u64>,
    pub(crate) private_key_file: Option<PathBuf>,
    pub(crate) private_key_command: Option<String>,
    pub(crate) private_key_keyring: Option<String>,
    pub(crate) credentials_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) owners: Vec<String>,
}

/// The default config file: `config.toml` in the user config dir.
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "ghapp").map(|d| d.config_dir().join("config.toml"))
}

pub(crate) fn read_file(path: &Path, explicit: bool) -> Result<FileConfig> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileConfig::default());
        }
        Err(e) => {
            return Err(Error::Config(format!(
                "cannot read config file {}: {e}; check GHAPP_CONFIG",
                path.display()
            )));
        }
    };
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().replace('\n', " ");
        match line {
            Some(l) => Error::Config(format!("config file {} line {l}: {msg}", path.display())),
            None => Error::Config(format!("config file {}: {msg}", path.display())),
        }
    })
}

/// An `[[app]]` table as `ghapp setup` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct NewApp {
    pub api_url: String,
    pub app_id: u64,
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_keyring: Option<String>,
    pub owners: Vec<String>,
}

/// Appends `app` as a new `[[app]]` table (after a `# comment` line) to the config file at `path`,
/// creating the file. The existing file must parse, and comments and order in it are kept; the
/// write is atomic.
pub fn append_app(path: &Path, app: &NewApp, comment: &str) -> Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => {
            read_file(path, true)?;
            t
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Error::Config(format!(
                "cannot read config file {}: {}",
                path.display(),
                crate::keys::io_reason(&e)
            )));
        }
    };
    #[derive(Serialize)]
    struct Tables<'a> {
        app: [&'a NewApp; 1],
    }
    let table = toml::to_string(&Tables { app: [app] })
        .map_err(|e| Error::Config(format!("cannot render the [[app]] table: {e}")))?;
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if !text.is_empty() {
        text.push('\n');
    }
    for line in comment.lines() {
        text.push_str("# ");
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&table);
    crate::fsutil::write_atomic(path, text.as_bytes(), 0o644).map_err(|e| {
        Error::Config(format!(
            "cannot write config file {}: {}; pass --config FILE to write elsewhere",
            path.display(),
            crate::keys::io_reason(&e)
        ))
    })
}
