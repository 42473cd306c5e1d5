//! What git answers about a write: whether each ref is fast-forwarded, the net change its new
//! tip holds, and what the blobs it lands hold. Asked in a push's quarantine (its objects and
//! the mirror's), or in the mirror alone for a ref moved through the API onto commits GitHub
//! has; either way the same questions, so a write is described the same way whatever its
//! channel ([`crate::policy::write`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use ghapp_gitproto::secrets;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::git::{self, Auth, Git, Quarantine};
use crate::policy::mode::Measure;
use crate::policy::write::{Content, RefMove, Tip};

/// The empty tree: what a ref with no history in common with the default branch is compared
/// against.
pub(crate) const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
/// The longest one question to git may take.
pub(crate) const STEP: Duration = Duration::from_secs(60);
/// Oversized blobs and credentials remembered (the first is what the sandbox is told).
pub(crate) const KEPT: usize = 64;
/// The most blobs a write may land that the proxy reads from GitHub to scan (blobs it did not
/// receive in the push: a ref moved onto commits GitHub has), and their bytes in all. Past
/// either the write is refused rather than read.
const MAX_LANDED: usize = 5000;
const MAX_LANDED_BYTES: u64 = 256 << 20;
/// The most paths one ref's net change may hold.
const MAX_CHANGED: usize = 100_000;

/// One path a ref's new tip changes, and the blob it holds there (`None` for a deletion or a
/// submodule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Landed {
    pub path: String,
    pub blob: String,
}

/// Where the questions are asked.
pub(crate) struct Facts<'a> {
    pub git: &'a Git,
    pub mirror: &'a Path,
    /// A push's own objects; `None` for a ref move through the API.
    pub quarantine: Option<&'a Quarantine>,
    /// The sandbox's token, for blobs and commits the mirror lacks.
    pub auth: &'a Auth,
}

impl Facts<'_> {
    fn cmd(&self) -> tokio::process::Command {
        match self.quarantine {
            Some(q) => q.command(self.git, None),
            None => self.git.command(self.mirror, None),
        }
    }

    /// Whether `old` is an ancestor of `new`.
    pub(crate) async fn is_ancestor(&self, old: &str, new: &str) -> Result<bool, String> {
        let mut c = self.cmd();
        c.args(["merge-base", "--is-ancestor", old, new]);
        let r = git::exec(c, None, STEP).await?;
        match r.code {
            0 => Ok(true),
            1 => Ok(false),
            _ => Err(format!(
                "cannot tell whether {old} is an ancestor of {new} (is the write based on what GitHub has? fetch and try again): {}",
                git::first_line(&r.err)
            )),
        }
    }

    /// What a new ref is compared with: where it leaves the default branch (their merge
    /// base), or the empty tree for history unrelated to it. Whether its commits are new to
    /// GitHub does not matter: what counts is what the new tip holds.
    pub(crate) async fn base_of_new(&self, new: &str) -> Result<String, String> {
        let mut c = self.cmd();
        c.args(["merge-base", new, "refs/ghapp/HEAD"]);
        let r = git::exec(c, None, STEP).await?;
        let base = String::from_utf8_lossy(&r.out).trim().to_owned();
        Ok(if r.code == 0 && !base.is_empty() {
            base
        } else {
            EMPTY_TREE.to_owned()
        })
    }

    /// The net change from `base` to `new`, every path (a rename is a delete and an add),
    /// with the blob each added or changed path holds.
    pub(crate) async fn changed(
        &self,
        base: &str,
        new: &str,
    ) -> Result<(Vec<(char, String)>, Vec<Landed>), String> {
        let mut c = self.cmd();
        c.args(["diff-tree", "-r", "-z", "--no-renames", base, new]);
        let out = git::run(c, None, STEP).await?;
        let mut fields = out.split(|b| *b == 0).filter(|f| !f.is_empty());
        let (mut changed, mut landed) = (Vec::new(), Vec::new());
        // Raw format: ":OLDMODE NEWMODE OLDSHA NEWSHA STATUS" then the path.
        while let (Some(raw), Some(path)) = (fields.next(), fields.next()) {
            let raw = String::from_utf8_lossy(raw);
            let f: Vec<&str> = raw.trim_start_matches(':').split(' ').collect();
            let [_, mode, _, blob, status] = f.as_slice() else {
                return Err(format!("git diff-tree: unexpected line {raw:?}"));
            };
            let s = status.chars().next().unwrap_or('M');
            let path = String::from_utf8_lossy(path).into_owned();
            // Blobs (not submodules: 160000) the new tip holds.
            if s != 'D' && mode.starts_with("10") {
                landed.push(Landed {
                    path: path.clone(),
                    blob: (*blob).to_owned(),
                });
            }
            changed.push((s, path));
            if changed.len() > MAX_CHANGED {
                return Err(format!(
                    "the write changes more than {MAX_CHANGED} paths, more than the proxy inspects"
                ));
            }
        }
        Ok((changed, landed))
    }

    /// Whether GitHub already has `new` (a branch or tag of its reaches it).
    pub(crate) async fn is_known(&self, new: &str) -> Result<bool, String> {
        let mut c = self.cmd();
        c.args(["rev-list", "-n1", new, "--not", "--all"]);
        Ok(git::run(c, None, STEP).await?.is_empty())
    }

    /// Where `refname` points in GitHub's copy (the mirror), if it exists.
    async fn current(&self, refname: &str) -> Result<Option<String>, String> {
        let mut c = self.git.command(self.mirror, None);
        c.args([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{refname}^{{commit}}"),
        ]);
        let r = git::exec(c, None, STEP).await?;
        let oid = String::from_utf8_lossy(&r.out).trim().to_owned();
        Ok((r.code == 0 && !oid.is_empty()).then_some(oid))
    }

    /// The commit `what` names in GitHub's copy: a branch, or a commit id.
    async fn resolve(&self, what: &str) -> Result<String, String> {
        if let Some(c) = self.current(&format!("refs/heads/{what}")).await? {
            return Ok(c);
        }
        self.have_commit(what).await?;
        Ok(what.to_owned())
    }

    /// Makes sure the mirror has commit `oid` (one no branch or tag reaches, made through the
    /// API, is fetched by its id).
    async fn have_commit(&self, oid: &str) -> Result<(), String> {
        let has = |me: &Self| {
            let mut c = me.git.command(me.mirror, None);
            c.env("GIT_NO_LAZY_FETCH", "1")
                .args(["cat-file", "-e", &format!("{oid}^{{commit}}")]);
            c
        };
        if git::exec(has(self), None, STEP).await?.code == 0 {
            return Ok(());
        }
        let mut c = self.git.command(self.mirror, Some(self.auth));
        c.args([
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--filter=blob:none",
            "origin",
            oid,
        ]);
        let fetched = git::exec(c, None, STEP).await?;
        if fetched.code == 0 && git::exec(has(self), None, STEP).await?.code == 0 {
            return Ok(());
        }
        Err(format!("GitHub has no commit {oid} in the repository"))
    }

    /// Fills in what each move does: its old tip when the write did not say (`Some("")`),
    /// fast-forward or not, and the net change its new tip holds. Returns the blobs the moves
    /// land, by path.
    pub(crate) async fn describe(&self, moves: &mut [RefMove]) -> Result<Vec<Landed>, String> {
        let mut landed = Vec::new();
        for m in moves.iter_mut() {
            if m.old.as_deref() == Some("") {
                m.old = self.current(&m.refname).await?;
            }
            if let Tip::Merge(head) = &m.new {
                // What a merge of `head` into the old tip lands: what `head` brings from
                // where it leaves the old tip.
                let head = self.resolve(head).await?;
                let base = match &m.old {
                    Some(old) => {
                        let mut c = self.cmd();
                        c.args(["merge-base", old, &head]);
                        let r = git::exec(c, None, STEP).await?;
                        let b = String::from_utf8_lossy(&r.out).trim().to_owned();
                        if r.code == 0 && !b.is_empty() {
                            b
                        } else {
                            EMPTY_TREE.to_owned()
                        }
                    }
                    None => self.base_of_new(&head).await?,
                };
                let (changed, lands) = self.changed(&base, &head).await?;
                m.fast_forward = Some(true);
                m.changed = changed;
                landed.extend(lands);
                continue;
            }
            let Tip::Commit(new) = &m.new else {
                continue;
            };
            let new = new.clone();
            if self.quarantine.is_none() {
                self.have_commit(&new).await?;
            }
            let base = match &m.old {
                Some(old) => {
                    m.fast_forward = Some(self.is_ancestor(old, &new).await?);
                    old.clone()
                }
                None => self.base_of_new(&new).await?,
            };
            let (changed, lands) = self.changed(&base, &new).await?;
            m.changed = changed;
            landed.extend(lands);
        }
        landed.sort_by(|a, b| a.blob.cmp(&b.blob));
        landed.dedup_by(|a, b| a.blob == b.blob);
        Ok(landed)
    }

    /// Oversized blobs and credentials among `landed`: the blobs are fetched from GitHub into
    /// the mirror first (in one fetch), then read one at a time.
    pub(crate) async fn scan_landed(
        &self,
        landed: &[Landed],
        max_file: u64,
        scan: bool,
    ) -> Result<Content, String> {
        if landed.is_empty() {
            return Ok(Content::default());
        }
        if landed.len() > MAX_LANDED {
            return Err(format!(
                "the write lands {} files the proxy has not received, more than the {MAX_LANDED} it reads to inspect: push their commits with git",
                landed.len()
            ));
        }
        self.fetch_blobs(landed).await?;
        let path: HashMap<&str, &str> = landed
            .iter()
            .map(|l| (l.blob.as_str(), l.path.as_str()))
            .collect();
        let ids: Vec<String> = landed.iter().map(|l| l.blob.clone()).collect();
        let (found, total) = self.read_blobs(&ids, scan, Some(max_file)).await?;
        if total > MAX_LANDED_BYTES {
            return Err(format!(
                "the write lands {} the proxy has not received, more than the {} it reads to inspect: push their commits with git",
                crate::policy::write::mib(total),
                crate::policy::write::mib(MAX_LANDED_BYTES)
            ));
        }
        let name = |id: &str| match path.get(id) {
            Some(p) => (*p).to_owned(),
            None if id.contains(' ') => id.to_owned(),
            None => format!("object {id}"),
        };
        Ok(Content {
            oversized: found
                .oversized
                .iter()
                .map(|(id, s)| (name(id), *s))
                .collect(),
            secrets: found.secrets.iter().map(|(id, f)| (name(id), *f)).collect(),
        })
    }

    /// Fetches the blobs among `landed` into the mirror (one request; those it has are
    /// skipped by git).
    async fn fetch_blobs(&self, landed: &[Landed]) -> Result<(), String> {
        let list: Vec<u8> = landed
            .iter()
            .flat_map(|l| format!("{}\n", l.blob).into_bytes())
            .collect();
        // Which of them the mirror (or the quarantine) lacks.
        let mut check = self.cmd();
        check
            .env("GIT_NO_LAZY_FETCH", "1")
            .args(["cat-file", "--batch-check=%(objectname)"]);
        let mut missing = Vec::new();
        git::lines(check, Some(list), STEP, |line| {
            if let Some(id) = line.strip_suffix(" missing") {
                missing.push(id.to_owned());
            }
            true
        })
        .await?;
        if missing.is_empty() {
            return Ok(());
        }
        let mut c = self.git.command(self.mirror, Some(self.auth));
        c.args([
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--recurse-submodules=no",
            "--filter=blob:none",
            "--stdin",
            "origin",
        ]);
        let wanted: Vec<u8> = missing
            .iter()
            .flat_map(|id| format!("{id}\n").into_bytes())
            .collect();
        git::run(c, Some(wanted), STEP * 2)
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot read the files the write lands from GitHub: {e}"))
    }

    /// Reads the objects `ids` one piece at a time from `git cat-file --batch`: blobs over
    /// `max_file` (when given), and (`scan`) the credentials in blobs. Returns what it found
    /// and the bytes read.
    pub(crate) async fn read_blobs(
        &self,
        ids: &[String],
        scan: bool,
        max_file: Option<u64>,
    ) -> Result<(Found, u64), String> {
        let mut c = self.cmd();
        c.env("GIT_NO_LAZY_FETCH", "1")
            .args([
                "cat-file",
                "--batch=%(objectname) %(objecttype) %(objectsize)",
            ])
            .stdin(std::process::Stdio::piped());
        c.stderr(std::process::Stdio::null());
        let mut child = c
            .spawn()
            .map_err(|e| format!("cannot run git cat-file: {e}"))?;
        let (Some(mut input), Some(out)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("git cat-file: no pipes".into());
        };
        let list: Vec<u8> = ids
            .iter()
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let feed = async move {
            let _ = input.write_all(&list).await;
        };
        let read = async {
            let mut r = tokio::io::BufReader::new(out);
            let mut head = String::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut found = Found::default();
            let mut total = 0u64;
            loop {
                head.clear();
                if r.read_line(&mut head).await.map_err(|e| e.to_string())? == 0 {
                    return Ok::<_, String>((found, total));
                }
                let f: Vec<&str> = head.split_whitespace().collect();
                let (id, kind, size) = match f.as_slice() {
                    [id, kind, size] => (id.to_string(), *kind, size.parse::<u64>().unwrap_or(0)),
                    _ => continue, // "<id> missing"
                };
                total += size;
                if kind == "blob"
                    && let Some(max) = max_file
                    && size > max
                    && found.oversized.len() < KEPT
                {
                    found.oversized.push((id.clone(), size));
                }
                let mut s = secrets::Scanner::new();
                let mut left = size + 1; // and the newline after
                while left > 0 {
                    let n = (left as usize).min(buf.len());
                    r.read_exact(&mut buf[..n])
                        .await
                        .map_err(|e| e.to_string())?;
                    left -= n as u64;
                    if scan && TEXTS.contains(&kind) && !s.done() {
                        let data = if left == 0 { &buf[..n - 1] } else { &buf[..n] };
                        s.feed(data);
                    }
                }
                if TEXTS.contains(&kind)
                    && let Some(f) = s.finish()
                    && found.secrets.len() < KEPT
                {
                    // A blob is named by its path later; a commit or tag by itself.
                    let id = if kind == "blob" {
                        id
                    } else {
                        format!("{kind} {}", id.get(..7).unwrap_or(&id))
                    };
                    found.secrets.push((id, f));
                }
            }
        };
        let ((), out) = tokio::join!(feed, read);
        let _ = child.kill().await;
        out
    }

    /// The change a pull request onto branch `base` would show with its head at `new`: from
    /// where `new` leaves `base` (GitHub's three-dot compare), files and lines as git counts
    /// them (the base side's blobs fetched from GitHub in one batch).
    pub(crate) async fn measure(&self, base: &str, new: &str) -> Result<Measure, String> {
        let mut c = self.cmd();
        c.args(["merge-base", &format!("refs/heads/{base}"), new]);
        let r = git::exec(c, None, STEP).await?;
        let from = String::from_utf8_lossy(&r.out).trim().to_owned();
        let from = if r.code == 0 && !from.is_empty() {
            from
        } else {
            EMPTY_TREE.to_owned()
        };
        let mut c = match self.quarantine {
            Some(q) => q.command(self.git, Some(self.auth)),
            None => self.git.command(self.mirror, Some(self.auth)),
        };
        c.args(["diff", "--numstat", "-z", "--no-renames", &from, new]);
        let out = git::run(c, None, STEP).await?;
        let mut m = Measure::default();
        // "ADDED\tDELETED\tPATH\0" ("-" for binary files).
        for rec in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let text = String::from_utf8_lossy(rec);
            let mut f = text.splitn(3, '\t');
            let (a, d, path) = (f.next(), f.next(), f.next());
            let n = |x: Option<&str>| x.and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            m.files += 1;
            m.lines += n(a) + n(d);
            if let Some(p) = path {
                m.paths.push(p.to_owned());
            }
        }
        Ok(m)
    }

    /// New commits (not reachable from GitHub's refs).
    pub(crate) async fn count_new(&self, news: &[String]) -> Result<u64, String> {
        let mut c = self.cmd();
        c.args(["rev-list", "--count"])
            .args(news)
            .args(["--not", "--all"]);
        let out = git::run(c, None, STEP).await?;
        String::from_utf8_lossy(&out)
            .trim()
            .parse()
            .map_err(|_| "git rev-list --count: no count".into())
    }

    /// What the history a write brings holds beyond file contents, for the secret scan: the
    /// name of every file in its new trees (not only at the tips: a name added and removed
    /// again is in the history all the same), and the message of each new commit and of a tag
    /// it points a ref at. `news`: the new tips.
    pub(crate) async fn scan_history(&self, news: &[String]) -> Result<Content, String> {
        let mut content = Content::default();
        let mut texts: Vec<String> = news.to_vec();
        let mut too_many = false;
        let mut c = self.cmd();
        c.args(["rev-list", "--objects", "--missing=allow-promisor"])
            .args(news)
            .args(["--not", "--all"]);
        git::lines(c, None, STEP, |line| {
            match line.split_once(' ') {
                // A commit: its id alone.
                None if texts.len() < MAX_NEW_COMMITS => texts.push(line.to_owned()),
                None => too_many = true,
                Some((_, path)) => content.scan_text(
                    || format!("the file name {}", crate::policy::write::shown(path)),
                    path.as_bytes(),
                ),
            }
            !too_many
        })
        .await?;
        if too_many {
            return Err(format!(
                "the write brings over {MAX_NEW_COMMITS} commits, more than the proxy reads to inspect: push in parts"
            ));
        }
        texts.sort_unstable();
        texts.dedup();
        let (found, _) = self.read_blobs(&texts, true, None).await?;
        content.secrets.extend(found.secrets);
        Ok(content)
    }

    /// The path a pushed tree gives each of `ids`, where one does.
    pub(crate) async fn paths_of(
        &self,
        ids: &HashSet<String>,
        news: &[String],
    ) -> Result<HashMap<String, String>, String> {
        let mut names: HashMap<String, String> = HashMap::new();
        let mut c = self.cmd();
        c.args(["rev-list", "--objects", "--missing=allow-promisor"])
            .args(news)
            .args(["--not", "--all"]);
        git::lines(c, None, STEP, |line| {
            if let Some((id, path)) = line.split_once(' ')
                && ids.contains(id)
                && !names.contains_key(id)
            {
                names.insert(id.to_owned(), path.to_owned());
            }
            names.len() < ids.len()
        })
        .await?;
        Ok(names)
    }
}

/// The most new commits one write may bring for the secret scan to read their messages.
const MAX_NEW_COMMITS: usize = 200_000;

/// The kinds of object whose contents the secret scan reads: files, and commit and tag
/// messages (with their author lines).
const TEXTS: [&str; 3] = ["blob", "commit", "tag"];

/// What reading blobs found, by object id (a commit or tag: `commit ID7`, `tag ID7`).
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub oversized: Vec<(String, u64)>,
    pub secrets: Vec<(String, secrets::Finding)>,
}
