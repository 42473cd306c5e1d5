//! A throwaway PostgreSQL cluster for the tests and the benchmarks.

use std::path::{Path, PathBuf};

/// A throwaway PostgreSQL cluster (Debian's `postgresql`), on a Unix socket in a temp dir.
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
}

impl Postgres {
    pub fn start(root: &Path) -> Option<Postgres> {
        crate::needs("postgresql");
        let initdb = crate::Tool::named("postgresql")?.find("initdb")?;
        let bin = initdb.parent()?.to_path_buf();
        let dir = root.join("pg");
        std::fs::create_dir_all(&dir).unwrap();
        let root_user = rustix_is_root();
        if root_user {
            // initdb refuses to run as root: the cluster belongs to postgres.
            let _ = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status();
            let _ = std::process::Command::new("chmod")
                .args(["o+x"])
                .arg(root)
                .status();
        }
        let run = |args: &[&str]| {
            let mut c = if root_user {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]);
                c.arg(bin.join(args[0]));
                c
            } else {
                std::process::Command::new(bin.join(args[0]))
            };
            let out = c.args(&args[1..]).output().unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let data = dir.join("data").display().to_string();
        let sock = dir.display().to_string();
        run(&[
            "initdb",
            "-D",
            &data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ]);
        run(&[
            "pg_ctl",
            "-D",
            &data,
            "-l",
            &dir.join("log").display().to_string(),
            "-o",
            &format!("-k {sock} -c listen_addresses='' -c fsync=off"),
            "-w",
            "start",
        ]);
        Some(Postgres { dir, bin })
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@localhost/postgres?host={}",
            self.dir.display()
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        let args = [pg_ctl.as_str(), "-D", &data, "-m", "immediate", "stop"];
        let _ = if rustix_is_root() {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args)
                .output()
        } else {
            std::process::Command::new(args[0])
                .args(&args[1..])
                .output()
        };
    }
}

fn rustix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Postgres {
    /// `sql` run by psql against the cluster: its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        // Beside initdb (Debian's layout), else on PATH.
        let beside = self.bin.join("psql");
        let exe = if beside.is_file() {
            beside
        } else {
            PathBuf::from("psql")
        };
        let out = std::process::Command::new(exe)
            .args(["-At", "-c", sql, &self.url()])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}
