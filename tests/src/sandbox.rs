//! A sandbox: git with only `HTTPS_PROXY` and the proxy's CA.

use std::path::Path;

use crate::{ProxyProc, Run, World};

/// A sandbox: git with only HTTPS_PROXY and the proxy's CA.
pub struct Sandbox<'a> {
    pub w: &'a World,
    pub env: Vec<(String, String)>,
}

impl<'a> Sandbox<'a> {
    /// Sandbox `name` presenting `secret` to the proxy `p`.
    pub fn new(w: &'a World, p: &ProxyProc, name: &str, secret: &str) -> Sandbox<'a> {
        Sandbox {
            w,
            env: w.sandbox_env(p, name, secret),
        }
    }
    pub fn git(&self, dir: &Path, args: &[&str]) -> Run {
        self.w.cmd("git").env(&self.env).args(args).dir(dir).run()
    }
    pub fn clone(&self, owner: &str, repo: &str, dest: &str, extra: &[&str]) -> Run {
        let url = self.w.hub.repo_url(owner, repo);
        let mut args = vec!["clone", "--quiet"];
        args.extend_from_slice(extra);
        args.push(&url);
        args.push(dest);
        self.git(self.w.root.path(), &args)
    }
    /// On a new `branch`: commits `name`, pushes it, and checks the emulator has that commit.
    #[track_caller]
    pub fn push_new_branch(&self, dir: &Path, branch: &str, name: &str, text: &[u8]) {
        self.git(dir, &["switch", "--quiet", "-c", branch]).ok();
        self.commit(dir, name, text);
        let head = self
            .git(dir, &["rev-parse", "HEAD"])
            .ok()
            .stdout
            .trim()
            .to_owned();
        self.git(dir, &["push", "--quiet", "origin", branch]).ok();
        let refname = format!("refs/heads/{branch}");
        assert_eq!(self.w.hub_ref("octo-org", "widgets", &refname), Some(head));
    }

    pub fn commit(&self, dir: &Path, name: &str, text: &[u8]) {
        std::fs::write(dir.join(name), text).unwrap();
        self.git(dir, &["add", name]).ok();
        self.git(dir, &["commit", "--quiet", "-m", &format!("Add {name}")])
            .ok();
    }
}
