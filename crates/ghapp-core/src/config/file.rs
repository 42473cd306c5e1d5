//! The config file: its schema as written (`[[app]]`, `[[pat]]`) and reading it. (`ghapp setup`
//! appends to it with toml_edit, in the ghapp crate: the helper never edits it.)

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) refresh_margin: Option<u64>,
    pub(crate) cache_dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "app_tables")]
    pub(crate) app: Vec<FileApp>,
    #[serde(default)]
    pub(crate) pat: Vec<FilePat>,
}

/// `[[app]]` tables (one per app), or a single `[app]` table: the host configuration and the
/// proxy's read apps the same way. Anything else says which shape is expected.
pub fn app_tables<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<FileApp>, D::Error> {
    use serde::de::{MapAccess, SeqAccess, Visitor, value::MapAccessDeserializer};
    // A visitor rather than an intermediate value: the tables are read straight from the file,
    // so an error in one still names its line.
    struct Apps;
    impl<'de> Visitor<'de> for Apps {
        type Value = Vec<FileApp>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("[[app]] tables (app_id, private_key_file, ...), one per app")
        }
        fn visit_seq<A: SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut v = Vec::new();
            while let Some(app) = seq.next_element::<FileApp>()? {
                v.push(app);
            }
            Ok(v)
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            FileApp::deserialize(MapAccessDeserializer::new(map)).map(|a| vec![a])
        }
    }
    d.deserialize_any(Apps)
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
    /// The app's JWT signed by a command instead of a key held here.
    pub(crate) signer: Option<FileSigner>,
    #[serde(default)]
    pub(crate) owners: Vec<String>,
}

/// `signer = { command = ["PROGRAM", "ARG", ...] }`: the JWT's signing input on its stdin, the
/// RS256 signature (raw or base64) on its stdout; run directly, not through a shell. Or
/// `signer = { pkcs11 = { module, token, key_label, pin = { env = "VAR" } | { file = "PATH" } } }`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSigner {
    pub(crate) command: Option<Vec<String>>,
    pub(crate) pkcs11: Option<FilePkcs11>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePkcs11 {
    pub(crate) module: PathBuf,
    pub(crate) token: String,
    pub(crate) key_label: String,
    pub(crate) pin: FilePin,
}

/// Where a PIN is read: `{ env = "VAR" }` or `{ file = "PATH" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePin {
    pub(crate) env: Option<String>,
    pub(crate) file: Option<PathBuf>,
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
    parse(path, &text)
}

/// Checks that `text` is a valid config file (`path` names it in the error): `ghapp setup` edits
/// a file only when it parses before and after.
pub fn check_text(path: &Path, text: &str) -> Result<()> {
    parse(path, text).map(drop)
}

fn parse(path: &Path, text: &str) -> Result<FileConfig> {
    toml::from_str(text).map_err(|e| {
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
