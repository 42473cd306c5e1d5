//! The token cache on disk: one JSON file per cache key, 0600 in a 0700 directory, written
//! atomically (temporary file then rename), and a lock file per key so that parallel processes
//! mint once. Everything here is synchronous: the helper's warm `get` answers from here before
//! any async runtime exists.
//!
//! # Security
//! A token file is believed only when this user owns it, it is 0600 or stricter and not a
//! symbolic link, in a directory this user owns that no one else can write: otherwise another
//! local user could plant a token (and see what git sends with it) or swap a file under us.
//! Files are opened without following links, lock files included. A lock held by a stuck
//! process is given up after [`LOCK_WAIT`].

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::permissions::Permissions;
use crate::secret::InstallationToken;

/// What a token is for. Two requests with equal keys share a token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub api_url: String,
    /// The JWT issuer (app id or client id).
    pub app: String,
    /// The installation, or `None` when it is discovered from the owner.
    pub installation: Option<u64>,
    /// The owner, lowercased: the same repository name under two owners is two installations.
    pub owner: Option<String>,
    /// Repository names, lowercased and sorted; empty: every repository of the installation.
    pub repositories: Vec<String>,
    /// Empty: the installation's own.
    pub permissions: Permissions,
    /// The permissions are a ceiling fitted to the grant, not a demand: a different request.
    pub fit: bool,
}

impl TokenKey {
    /// Repository names lowercased, sorted, without duplicates.
    pub fn canonical_repos(repos: &[String]) -> Vec<String> {
        let mut v: Vec<String> = repos.iter().map(|r| r.to_ascii_lowercase()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// A stable file-name-safe id: a SHA-256 prefix of the canonical form.
    pub fn id(&self) -> String {
        let inst = self
            .installation
            .map_or_else(|| "auto".to_owned(), |i| i.to_string());
        let canon = format!(
            "v2\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.api_url,
            self.app,
            inst,
            self.owner.as_deref().unwrap_or(""),
            self.repositories.join(","),
            self.permissions,
            if self.fit { "fit" } else { "exact" },
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
    pub permissions: Permissions,
}

mod token_serde {
    use super::InstallationToken;
    use serde::{Deserialize, Deserializer, Serializer};
    pub(super) fn serialize<S: Serializer>(t: &InstallationToken, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.expose())
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<InstallationToken, D::Error> {
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

/// How long a process waits for another's lock on a key before it gives up on it.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The largest cache file read (a token file is well under 4 KiB).
const MAX_CACHE_FILE: u64 = 64 * 1024;

fn no_follow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Why a cache file or directory is not used.
fn untrusted(path: &Path, why: &str) -> String {
    format!(
        "token cache {} is not used: {why}; fix it or set GHAPP_CACHE_DIR to a directory of your own",
        path.display()
    )
}

/// Checks the ownership and mode of an opened (or lstat-ed) file or directory.
fn check_owner(path: &Path, meta: &std::fs::Metadata, writable_mask: u32) -> Result<(), String> {
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(untrusted(
            path,
            &format!("it belongs to uid {}, not to this user ({me})", meta.uid()),
        ));
    }
    if meta.mode() & writable_mask != 0 {
        return Err(untrusted(
            path,
            &format!(
                "its mode is {:o}, open to other users",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
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

    /// Whether the directory can be trusted: this user's, not a link, writable by no one else.
    /// `Ok(false)`: it does not exist (yet).
    pub fn check_dir(&self) -> Result<bool, String> {
        match std::fs::symlink_metadata(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(untrusted(&self.dir, &e.to_string())),
            Ok(m) if m.file_type().is_symlink() => {
                Err(untrusted(&self.dir, "it is a symbolic link"))
            }
            Ok(m) if !m.is_dir() => Err(untrusted(&self.dir, "it is not a directory")),
            Ok(m) => check_owner(&self.dir, &m, 0o022).map(|()| true),
        }
    }

    /// Makes the directory (0700) when it is missing, then checks it ([`DiskCache::check_dir`]).
    /// `Err`: the cache cannot be used (someone else's directory, a read-only disk); the caller
    /// mints without it.
    pub fn usable(&self) -> Result<(), String> {
        if !self.check_dir()? {
            self.ensure_dir().map_err(|e| e.to_string())?;
            self.check_dir()?;
        }
        Ok(())
    }

    /// The cached token for `key`, if any. A missing, unreadable or corrupt file is a miss, and
    /// so is one that cannot be trusted.
    pub fn read(&self, key: &TokenKey) -> Option<CachedToken> {
        self.read_checked(key).ok().flatten()
    }

    /// As [`DiskCache::read`], but says why a file that is there is not trusted.
    pub fn read_checked(&self, key: &TokenKey) -> Result<Option<CachedToken>, String> {
        if !self.check_dir()? {
            return Ok(None);
        }
        let path = self.token_path(key);
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(no_follow())
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(untrusted(&path, "it is a symbolic link"));
            }
            Err(e) => return Err(untrusted(&path, &e.to_string())),
        };
        let meta = file
            .metadata()
            .map_err(|e| untrusted(&path, &e.to_string()))?;
        if !meta.is_file() {
            return Err(untrusted(&path, "it is not a regular file"));
        }
        check_owner(&path, &meta, 0o077)?;
        let mut bytes = Vec::new();
        if file.take(MAX_CACHE_FILE).read_to_end(&mut bytes).is_err() {
            return Ok(None);
        }
        Ok(serde_json::from_slice(&bytes).ok())
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

    /// Takes the cross-process lock for `key`, waiting at most [`LOCK_WAIT`] for another
    /// process to let go of it.
    pub fn lock(&self, key: &TokenKey) -> Result<KeyLock> {
        self.lock_within(key, LOCK_WAIT)
    }

    /// As [`DiskCache::lock`], waiting at most `wait`.
    pub fn lock_within(&self, key: &TokenKey, wait: Duration) -> Result<KeyLock> {
        self.ensure_dir()?;
        let path = self.dir.join(format!("tok-{}.lock", key.id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(no_follow())
            .open(&path)
            .map_err(|e| Error::cache(&path, e))?;
        let start = std::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(KeyLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::cache(
                        &path,
                        std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!(
                                "another process has held this lock for {} s; if it is stuck, end it",
                                wait.as_secs()
                            ),
                        ),
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::cache(&path, e)),
            }
        }
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

    /// Forgets the discovered installation of `owner` (and `repo`): GitHub no longer knows it.
    pub fn forget_installation(&self, api_url: &str, app: &str, owner: &str, repo: Option<&str>) {
        let _ = std::fs::remove_file(self.installation_path(api_url, app, owner, repo));
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
        let repos: Vec<String> = repos.iter().map(|s| s.to_string()).collect();
        TokenKey {
            api_url: "https://api.github.com".into(),
            app: "1".into(),
            installation: None,
            owner: Some("octo".into()),
            repositories: TokenKey::canonical_repos(&repos),
            permissions: Permissions::default(),
            fit: true,
        }
    }

    #[test]
    fn key_ids_are_canonical() {
        assert_eq!(key(&["B", "a"]).id(), key(&["a", "b"]).id());
        assert_ne!(key(&["a"]).id(), key(&["b"]).id());
        let mut k = key(&["a"]);
        k.installation = Some(3);
        assert_ne!(k.id(), key(&["a"]).id());
        // The same repository name under another owner is another installation's token.
        let mut k = key(&["a"]);
        k.owner = Some("other".into());
        assert_ne!(k.id(), key(&["a"]).id());
        let mut k = key(&["a"]);
        k.fit = false;
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
            permissions: Permissions::default(),
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

    fn token(v: &str) -> CachedToken {
        CachedToken {
            token: InstallationToken::new(v),
            expires_at: u64::MAX,
            minted_at: 1000,
            installation_id: 5,
            repositories: vec![],
            permissions: Permissions::default(),
        }
    }

    #[test]
    fn untrusted_files_and_directories_are_not_read() {
        let t = tempfile::tempdir().unwrap();
        let c = DiskCache::new(t.path().join("tokens"));
        let k = key(&["r"]);
        c.write(&k, &token("ghs_good")).unwrap();
        assert!(c.read_checked(&k).unwrap().is_some());
        let path = c.token_path(&k);
        let set = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        // A token file others can read or write.
        set(&path, 0o644);
        let e = c.read_checked(&k).unwrap_err();
        assert!(
            e.contains("mode is 644") && e.contains("GHAPP_CACHE_DIR"),
            "{e}"
        );
        assert!(c.read(&k).is_none());
        set(&path, 0o600);
        // A symbolic link to a file elsewhere.
        let planted = t.path().join("planted.json");
        std::fs::write(&planted, serde_json::to_vec(&token("ghs_planted")).unwrap()).unwrap();
        set(&planted, 0o600);
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&planted, &path).unwrap();
        let e = c.read_checked(&k).unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        std::fs::remove_file(&path).unwrap();
        // A directory others can write.
        c.write(&k, &token("ghs_good")).unwrap();
        set(c.dir(), 0o777);
        let e = c.read_checked(&k).unwrap_err();
        assert!(e.contains("mode is 777"), "{e}");
        set(c.dir(), 0o700);
        // A directory that is a link.
        let link = DiskCache::new(t.path().join("link"));
        std::os::unix::fs::symlink(c.dir(), link.dir()).unwrap();
        assert!(link.read_checked(&k).unwrap_err().contains("symbolic link"));
        assert!(link.usable().is_err());
        // A lock file planted as a link is not followed.
        let lock = c.dir().join(format!("tok-{}.lock", k.id()));
        std::os::unix::fs::symlink(&planted, &lock).unwrap();
        assert!(c.lock(&k).is_err());
    }

    #[test]
    fn a_stuck_lock_is_given_up() {
        let t = tempfile::tempdir().unwrap();
        let c = DiskCache::new(t.path().join("tokens"));
        let k = key(&["r"]);
        let held = c.lock(&k).unwrap();
        let start = std::time::Instant::now();
        let e = c
            .lock_within(&k, Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(e.contains("another process has held this lock"), "{e}");
        drop(held);
        assert!(c.lock_within(&k, Duration::from_millis(300)).is_ok());
    }

    #[test]
    fn freshness_and_git_expiry() {
        let t = CachedToken {
            token: InstallationToken::new("x"),
            expires_at: 4600,
            minted_at: 1000,
            installation_id: 1,
            repositories: vec![],
            permissions: Permissions::default(),
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
