//! Files that hold secrets: 0600 in 0700 directories, written atomically (a temporary file in the
//! same directory, synced, then renamed), so a reader sees the old file or the new one.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and its missing parents) 0700. A directory that exists is used only if it is
/// this user's own: one that is shared (writable by others, or sticky, as `/tmp` is) or belongs
/// to someone else is refused and left as it is; one of this user's that others may only read
/// is tightened to 0700.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
        }
        Err(e) => return Err(e),
        Ok(meta) => {
            let refuse = |why: String| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{} {why}: secrets are kept only in a directory of ghapp's own; name another (a new path is created 0700)",
                        dir.display()
                    ),
                ))
            };
            let me = rustix::process::geteuid().as_raw();
            if meta.file_type().is_symlink() {
                return refuse("is a symbolic link".into());
            }
            if !meta.is_dir() {
                return refuse("is not a directory".into());
            }
            if meta.uid() != me {
                return refuse(format!(
                    "belongs to uid {}, not to this user ({me})",
                    meta.uid()
                ));
            }
            let mode = meta.mode() & 0o7777;
            if mode & 0o1000 != 0 || mode & 0o022 != 0 {
                return refuse(format!("is shared (mode {mode:o})"));
            }
            if mode & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` as a 0600 file, atomically, in a directory of ghapp's own that is
/// created or tightened to 0700.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    ensure_private_dir(parent(path))?;
    write_atomic(path, bytes, 0o600)
}

/// Writes `bytes` to `path` with `mode`, atomically. Missing parent directories are created 0700;
/// an existing one (the user's choice) is left as it is.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = parent(path);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Reads a text file of at most `max` bytes (a key, a token, a secret, a CA bundle): a path
/// such as `/dev/zero` is refused, not read forever.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut s)?;
    if s.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it is larger than {} KiB", max / 1024),
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_replacement() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/b");
        let f = dir.join("secret.pem");
        write_private_atomic(&f, b"one").unwrap();
        write_private_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f), 0o600);
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }
}
