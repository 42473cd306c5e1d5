//! The token cache on disk: one JSON file per cache key, 0600 in a 0700 directory, written
//! atomically (temporary file then rename), and a lock file per key so that parallel processes
//! mint once. Everything here is synchronous: the helper's warm `get` answers from here before
//! any async runtime exists.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::secret::InstallationToken;

/// What a token is for. Two requests with equal keys share a token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub api_url: String,
    /// The JWT issuer (app id or client id).
    pub app: String,
    /// The installation, or `None` when it is discovered from the repository.
    pub installation: Option<u64>,
    /// Repository names, lowercased and sorted; empty: every repository of the installation.
    pub repositories: Vec<String>,
    /// Permission name -> level, sorted by name; empty: the installation's own.
    pub permissions: BTreeMap<String, String>,
}

impl TokenKey {
    pub fn new(
        api_url: &str,
        app: &str,
        installation: Option<u64>,
        repositories: impl IntoIterator<Item = String>,
        permissions: BTreeMap<String, String>,
    ) -> Self {
        let mut repositories: Vec<String> = repositories
            .into_iter()
            .map(|r| r.to_ascii_lowercase())
            .collect();
        repositories.sort();
        repositories.dedup();
        Self {
            api_url: api_url.trim_end_matches('/').to_owned(),
            app: app.to_owned(),
            installation,
            repositories,
            permissions,
        }
    }

    /// A stable file-name-safe id: a SHA-256 prefix of the canonical form.
    pub fn id(&self) -> String {
        let inst = self
            .installation
            .map(|i| i.to_string())
            .unwrap_or_else(|| "auto".into());
        let perms: Vec<String> = self
            .permissions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let canon = format!(
            "v1\n{}\n{}\n{}\n{}\n{}",
            self.api_url,
            self.app,
            inst,
            self.repositories.join(","),
            perms.join(",")
        );
        hex_prefix(&canon)
    }
}

fn hex_prefix(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token as cached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedToken {
    #[serde(with = "token_serde")]
    pub token: InstallationToken,
    /// Unix seconds, from GitHub's `expires_at`.
    pub expires_at: u64,
    pub minted_at: u64,
    pub installation_id: u64,
    #[serde(default)]
    pub repositories: Vec<String>,
    #[serde(default)]
    pub permissions: BTreeMap<String, String>,
}

mod token_serde {
    use super::InstallationToken;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(t: &InstallationToken, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.expose())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<InstallationToken, D::Error> {
        String::deserialize(d).map(InstallationToken::new)
    }
}

impl CachedToken {
    /// Usable for at least `margin` more: `now + margin < expires_at`.
    pub fn is_fresh(&self, now: u64, margin: Duration) -> bool {
        now.saturating_add(margin.as_secs()) < self.expires_at
    }

    /// The expiry to tell git: `expires_at - margin`, so git asks again before the token dies;
    /// the real expiry when the token lives shorter than the margin (else git would drop it
    /// at once).
    pub fn expiry_for_git(&self, now: u64, margin: Duration) -> u64 {
        let early = self.expires_at.saturating_sub(margin.as_secs());
        if early > now { early } else { self.expires_at }
    }
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
}

/// Holds a key's lock file; dropping it releases the lock.
#[derive(Debug)]
pub struct KeyLock {
    _file: File,
}

impl DiskCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn token_path(&self, key: &TokenKey) -> PathBuf {
        self.dir.join(format!("tok-{}.json", key.id()))
    }

    /// Creates the directory 0700 (and tightens it if it exists wider).
    pub fn ensure_dir(&self) -> Result<()> {
        crate::fsutil::ensure_private_dir(&self.dir).map_err(|e| Error::cache(&self.dir, e))
    }

    /// The cached token for `key`, if any. A missing, unreadable or corrupt file is a miss.
    pub fn read(&self, key: &TokenKey) -> Option<CachedToken> {
        let bytes = std::fs::read(self.token_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn write(&self, key: &TokenKey, token: &CachedToken) -> Result<()> {
        let json = serde_json::to_vec(token).map_err(|e| Error::cache(&self.dir, e.into()))?;
        self.write_atomic(&self.token_path(key), &json)
    }

    /// Writes `bytes` to `path` through a 0600 temporary file in the same directory and a
    /// rename, so readers see the old file or the new one, never half of one.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.ensure_dir()?;
        crate::fsutil::write_private_atomic(path, bytes).map_err(|e| Error::cache(path, e))
    }

    /// Removes the cached token for `key` only if it is `value` (never erase a fresher token
    /// another process minted). Returns whether it was removed.
    pub fn remove_if(&self, key: &TokenKey, value: &str) -> Result<bool> {
        let _lock = self.lock(key)?;
        match self.read(key) {
            Some(t) if t.token.expose() == value => {
                std::fs::remove_file(self.token_path(key))
                    .map_err(|e| Error::cache(self.token_path(key), e))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Removes every cached token file; returns the tokens that were there.
    pub fn drain(&self) -> Result<Vec<CachedToken>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::cache(&self.dir, e)),
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("tok-") && name.ends_with(".json") {
                if let Some(t) = std::fs::read(e.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                {
                    out.push(t);
                }
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(out)
    }

    /// Takes the cross-process lock for `key`, blocking until it is free.
    pub fn lock(&self, key: &TokenKey) -> Result<KeyLock> {
        self.ensure_dir()?;
        let path = self.dir.join(format!("tok-{}.lock", key.id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::cache(&path, e))?;
        file.lock().map_err(|e| Error::cache(&path, e))?;
        Ok(KeyLock { _file: file })
    }

    // ----- installation discovery cache -----

    fn installation_path(
        &self,
        api_url: &str,
        app: &str,
        owner: &str,
        repo: Option<&str>,
    ) -> PathBuf {
        let canon = format!(
            "inst-v1\n{api_url}\n{app}\n{}\n{}",
            owner.to_ascii_lowercase(),
            repo.unwrap_or("").to_ascii_lowercase()
        );
        self.dir.join(format!("inst-{}.json", hex_prefix(&canon)))
    }

    pub fn read_installation(
        &self,
        api_url: &str,
        app: &str,
        owner: &str,
        repo: Option<&str>,
        now: u64,
    ) -> Option<CachedInstallation> {
        let bytes = std::fs::read(self.installation_path(api_url, app, owner, repo)).ok()?;
        let c: CachedInstallation = serde_json::from_slice(&bytes).ok()?;
        (now < c.valid_until).then_some(c)
    }

    pub fn write_installation(
        &self,
        api_url: &str,
        app: &str,
        owner: &str,
        repo: Option<&str>,
        entry: &CachedInstallation,
    ) -> Result<()> {
        let json = serde_json::to_vec(entry).map_err(|e| Error::cache(&self.dir, e.into()))?;
        self.write_atomic(&self.installation_path(api_url, app, owner, repo), &json)
    }
}

/// A discovered installation id, or a remembered "not installed" (a short negative cache).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedInstallation {
    pub installation_id: Option<u64>,
    /// For a negative entry: the install page to name in the error.
    #[serde(default)]
    pub install_url: Option<String>,
    pub valid_until: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key(repos: &[&str]) -> TokenKey {
        TokenKey::new(
            "https://api.github.com",
            "1",
            None,
            repos.iter().map(|s| s.to_string()),
            BTreeMap::new(),
        )
    }

    #[test]
    fn key_ids_are_canonical() {
        assert_eq!(key(&["B", "a"]).id(), key(&["a", "b"]).id());
        assert_ne!(key(&["a"]).id(), key(&["b"]).id());
        let mut k = key(&["a"]);
        k.installation = Some(3);
        assert_ne!(k.id(), key(&["a"]).id());
    }

    #[test]
    fn write_read_remove_modes() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::new(dir.path().join("x/tokens"));
        let k = key(&["r"]);
        assert!(c.read(&k).is_none());
        let t = CachedToken {
            token: InstallationToken::new("ghs_1"),
            expires_at: 2000,
            minted_at: 1000,
            installation_id: 5,
            repositories: vec!["r".into()],
            permissions: BTreeMap::new(),
        };
        c.write(&k, &t).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(c.dir()), 0o700);
        assert_eq!(mode(&c.token_path(&k)), 0o600);
        assert_eq!(c.read(&k).unwrap().token.expose(), "ghs_1");
        assert!(!c.remove_if(&k, "ghs_other").unwrap());
        assert!(c.read(&k).is_some());
        assert!(c.remove_if(&k, "ghs_1").unwrap());
        assert!(c.read(&k).is_none());
    }

    #[test]
    fn freshness_and_git_expiry() {
        let t = CachedToken {
            token: InstallationToken::new("x"),
            expires_at: 4600,
            minted_at: 1000,
            installation_id: 1,
            repositories: vec![],
            permissions: BTreeMap::new(),
        };
        let m = Duration::from_secs(600);
        assert!(t.is_fresh(3999, m));
        assert!(!t.is_fresh(4000, m));
        assert_eq!(t.expiry_for_git(1000, m), 4000);
        let short = CachedToken {
            expires_at: 1005,
            ..t
        };
        assert!(!short.is_fresh(1000, m));
        assert_eq!(short.expiry_for_git(1000, m), 1005);
    }
}
