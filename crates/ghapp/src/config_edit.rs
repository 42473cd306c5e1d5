//! Appending an `[[app]]` table to the user's config file (`ghapp setup`) with toml_edit: the
//! file's comments, order and layout are kept, and it is written only when it parses as a
//! config file before and after (atomically).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};

/// An `[[app]]` table as `ghapp setup` writes it.
#[derive(Debug, Clone)]
pub(crate) struct NewApp {
    pub api_url: String,
    pub app_id: u64,
    pub client_id: String,
    pub private_key_file: Option<PathBuf>,
    pub private_key_keyring: Option<String>,
    pub owners: Vec<String>,
}

impl NewApp {
    fn table(&self, comment: &str) -> Table {
        let mut t = Table::new();
        t.insert("api_url", value(&self.api_url));
        t.insert("app_id", value(self.app_id as i64));
        t.insert("client_id", value(&self.client_id));
        if let Some(p) = &self.private_key_file {
            t.insert("private_key_file", value(p.display().to_string()));
        }
        if let Some(k) = &self.private_key_keyring {
            t.insert("private_key_keyring", value(k));
        }
        t.insert(
            "owners",
            value(self.owners.iter().map(String::as_str).collect::<Array>()),
        );
        let comment: String = comment.lines().map(|l| format!("# {l}\n")).collect();
        t.decor_mut().set_prefix(format!("\n{comment}"));
        t
    }
}

/// Appends `app` as a new `[[app]]` table, after a `# comment`, to the config file at `path`,
/// creating the file.
pub(crate) fn append_app(path: &Path, app: &NewApp, comment: &str) -> Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => {
            ghapp_core::config::check_text(path, &t)?;
            t
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read config file {}", path.display()));
        }
    };
    let mut doc: DocumentMut = existing
        .parse()
        .with_context(|| format!("config file {} is not TOML", path.display()))?;
    let apps = doc
        .entry("app")
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    let Some(apps) = apps.as_array_of_tables_mut() else {
        bail!(
            "config file {}: `app` is not written as [[app]] tables; write each app as an [[app]] table, then run setup again",
            path.display()
        );
    };
    apps.push(app.table(comment));
    let text = doc.to_string();
    let text = text.trim_start_matches('\n');
    ghapp_core::config::check_text(path, text)?;
    ghapp_core::fsutil::write_atomic(path, text.as_bytes(), 0o644).with_context(|| {
        format!(
            "cannot write config file {}; pass --config FILE to write elsewhere",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ghapp_core::config::{Config, Overrides};
    use std::collections::BTreeMap;

    fn new(id: u64, owner: &str) -> NewApp {
        NewApp {
            api_url: "https://ghe.corp/api/v3".into(),
            app_id: id,
            client_id: format!("Iv23li{id}"),
            private_key_file: Some(PathBuf::from(format!("/keys/{id}.pem"))),
            private_key_keyring: None,
            owners: vec![owner.into()],
        }
    }

    #[test]
    fn appends_keeping_the_file_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.toml");
        std::fs::write(
            &f,
            "# my settings\nrefresh_margin = 300 # five minutes\n\n[[pat]]   # the fallback\ntoken_file = \"/t\"\n",
        )
        .unwrap();
        append_app(&f, &new(7, "corp"), "first \"app\"").unwrap();
        let before = std::fs::read_to_string(&f).unwrap();
        assert!(
            before.starts_with(
                "# my settings\nrefresh_margin = 300 # five minutes\n\n[[pat]]   # the fallback\n"
            ),
            "{before}"
        );
        append_app(&f, &new(8, "other"), "second").unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.starts_with(&before), "{text}");
        assert!(text.contains("\n# first \"app\"\n[[app]]\n"), "{text}");
        assert!(text.contains("\n# second\n[[app]]\n"), "{text}");
        let env: BTreeMap<String, String> =
            [("GHAPP_CONFIG".to_owned(), f.display().to_string())].into();
        let c = Config::load_from(&env, &Overrides::default()).unwrap();
        assert_eq!(c.apps.len(), 2);
        assert_eq!(
            c.app_for("ghe.corp", Some("other")).unwrap().ident.app_id,
            Some(8)
        );
        assert_eq!(c.apps[0].ident.client_id.as_deref(), Some("Iv23li7"));
        assert_eq!(c.pats.len(), 1);

        // A new file.
        let g = dir.path().join("sub/new.toml");
        append_app(&g, &new(9, "x"), "x").unwrap();
        assert!(
            std::fs::read_to_string(&g)
                .unwrap()
                .starts_with("# x\n[[app]]\n")
        );

        // A broken file, or one that spells `app` another way, is left alone.
        for bad in ["[[app]\n", "app = 3\n"] {
            std::fs::write(&f, bad).unwrap();
            assert!(append_app(&f, &new(9, "x"), "x").is_err(), "{bad}");
            assert_eq!(std::fs::read_to_string(&f).unwrap(), bad);
        }
    }
}
