//! Push inspection (design section 13): a push is decided on what it does, before GitHub can
//! apply it.
//!
//! The pack streams on to GitHub as it arrives, all of it but its last 20 bytes (the trailer):
//! without them GitHub never has a complete pack and changes nothing. Alongside, the proxy
//! - reads each object's header and inflates it ([`ghapp_gitproto::pack::Scanner`]): an object
//!   over `max_file_bytes`, a pack over `max_push_bytes`, or a whole blob holding a credential
//!   stops the stream to GitHub at once;
//! - writes the pack to `git index-pack --stdin --fix-thin` in a quarantine of its own (the
//!   pack is spilled to disk there, never held in memory), whose thin bases come from a
//!   per-repository mirror of GitHub's commits and trees, fetched meanwhile with the sandbox's
//!   token.
//!
//! With the whole pack indexed, each ref update is decided: fast-forward exactly
//! (`merge-base --is-ancestor`), the paths it changes as the net tree difference (a new ref:
//! against where it leaves the default branch), blobs that came as deltas scanned for
//! credentials, oversized objects and credentials named by path ([`rules`]). Accepted: the
//! trailer goes on and GitHub answers. Refused: the upstream request is dropped and git is
//! told the git way, every ref refused with the rule named.

mod git;
pub(crate) mod observe;
pub(crate) mod rules;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ghapp_gitproto::pack::{self, Kind, Seen};
use ghapp_gitproto::receive_pack::Commands;
use ghapp_gitproto::secrets;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

pub(crate) use git::{Auth, Git};
use rules::{Content, RefChange, Refused};

use crate::audit::PushSummary;
use crate::sandbox::Sandbox;

/// The longest the decision may take once the pack is in (indexing, the checks).
const DECIDE_TIME: Duration = Duration::from_secs(120);
/// Chunks of the pack in flight to GitHub.
const IN_FLIGHT: usize = 16;
const TRAILER: usize = 20;
/// The empty tree: what a ref with no history in common with the default branch is compared
/// against.
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// A push being inspected: its verdict when decided (a refusal as git's report-status).
pub(crate) type Verdict =
    oneshot::Receiver<Result<PushSummary, (PushSummary, crate::policy::PushRefusal)>>;

/// What the pump needs to know about the push.
pub(crate) struct Push {
    pub sb: Arc<Sandbox>,
    pub commands: Commands,
    /// `https://host/owner/repo.git`.
    pub fetch_url: String,
    pub host: String,
    pub repo: ghapp_gitproto::repo::RepoName,
    pub auth: Auth,
    /// The longest wait for the next piece of the pack.
    pub idle: Duration,
}

impl Push {
    /// The commits the push points refs at (deletes point at none).
    fn tips(&self) -> Vec<String> {
        self.commands
            .commands
            .iter()
            .filter(|c| !c.is_delete())
            .map(|c| c.new.clone())
            .collect()
    }
}

/// Starts inspecting: the body to send upstream (the section, then the pack as it passes,
/// without its trailer until the verdict) and the verdict to come. `first` holds the section
/// and whatever of the pack came with it (from `consumed`).
pub(crate) async fn start(
    git: Arc<Git>,
    push: Push,
    first: Vec<u8>,
    consumed: usize,
    body: Incoming,
    bytes_in: Arc<AtomicU64>,
) -> Result<(reqwest::Body, Verdict), String> {
    let mirror = git.mirror(&push.host, &push.repo, &push.fetch_url).await?;
    let quarantine = git.quarantine(&mirror)?;
    let fetch = {
        let (git, mirror, auth) = (git.clone(), mirror, push.auth.clone());
        tokio::spawn(async move { git.fetch(&mirror, &auth).await })
    };
    let mut index = quarantine.command(&git, Some(&push.auth));
    index
        .args(["index-pack", "--stdin", "--fix-thin"])
        .stdin(std::process::Stdio::piped());
    let index = index
        .spawn()
        .map_err(|e| format!("cannot run git index-pack (push inspection needs git): {e}"))?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(IN_FLIGHT);
    let aborted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut first = first;
    let pack_start = first.split_off(consumed.min(first.len()));
    // The command section goes at once (GitHub's receive-pack reads it before the pack).
    let _ = tx.try_send(Ok(Bytes::from(first)));
    let (done, verdict) = oneshot::channel();
    let (sb, commands) = (push.sb.clone(), push.commands.clone());
    let pump = Pump {
        aborted: aborted.clone(),
        git,
        push,
        quarantine,
        up: Some(tx),
        up_bytes: 0,
        held: Vec::with_capacity(TRAILER),
        total: 0,
        seen: Observed::default(),
        scanner: pack::Scanner::new(),
    };
    tokio::spawn(async move {
        let out = pump.run(pack_start, body, index, fetch, bytes_in).await;
        let out = out.map_err(|(summary, r)| {
            let reason = r.reason();
            (
                summary,
                crate::policy::push_refusal(&sb, &commands, &r.refs, reason),
            )
        });
        let _ = done.send(out);
    });
    // The body GitHub reads: the pump's chunks; cut, it ends in an error (never cleanly).
    let stream = futures_util::stream::unfold(Some(rx), move |rx| {
        let aborted = aborted.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(item) => Some((item, Some(rx))),
                None if aborted.load(Ordering::SeqCst) => Some((
                    Err(std::io::Error::other("push refused by the proxy")),
                    None,
                )),
                None => None,
            }
        }
    });
    Ok((
        reqwest::Body::wrap_stream(crate::upstream::coalesce(stream)),
        verdict,
    ))
}

/// Oversized objects and credentials remembered (the first is what git is told).
const KEPT: usize = 64;
/// The most delta objects one push may hold: their offsets are kept (8 bytes each) and, with
/// the secret scan, their ids and contents read after the pack; past this a push is refused
/// rather than let a hostile pack of tiny deltas grow the proxy's memory.
const MAX_DELTAS: usize = 500_000;

/// What the stream showed, object by object.
#[derive(Default)]
struct Observed {
    max_file: u64,
    scan: bool,
    /// The whole blob being inflated, and its scanner.
    blob: Option<(u64, secrets::Scanner)>,
    /// Offsets of objects over `max_file_bytes`, with their size.
    oversized: Vec<(u64, u64)>,
    /// Offsets of whole blobs holding a credential.
    findings: Vec<(u64, secrets::Finding)>,
    /// Offsets of deltas (their contents are known only once indexed), in pack order.
    deltas: Vec<u64>,
    /// More than [`MAX_DELTAS`] deltas: the push is refused.
    too_many_deltas: bool,
}

impl Observed {
    fn see(&mut self, s: Seen<'_>) {
        match s {
            Seen::Object(o) => {
                if o.size > self.max_file && self.oversized.len() < KEPT {
                    self.oversized.push((o.offset, o.size));
                }
                if o.kind.is_delta() {
                    if self.deltas.len() < MAX_DELTAS {
                        self.deltas.push(o.offset);
                    } else {
                        self.too_many_deltas = true;
                    }
                } else if o.kind == Kind::Blob && self.scan {
                    self.blob = Some((o.offset, secrets::Scanner::new()));
                }
            }
            Seen::BlobData(d) => {
                if let Some((_, s)) = self.blob.as_mut() {
                    s.feed(d);
                    if s.done() {
                        self.end_blob();
                    }
                }
            }
            Seen::ObjectEnd => self.end_blob(),
        }
    }

    fn end_blob(&mut self) {
        if let Some((at, s)) = self.blob.take()
            && let Some(f) = s.finish()
            && self.findings.len() < KEPT
        {
            self.findings.push((at, f));
        }
    }

    /// Whether the push is already known to be refused.
    fn refuses(&self) -> bool {
        !self.oversized.is_empty() || !self.findings.is_empty()
    }
}

struct Pump {
    /// Set when the stream to GitHub is cut: the body then ends in an error.
    aborted: Arc<std::sync::atomic::AtomicBool>,
    git: Arc<Git>,
    push: Push,
    quarantine: git::Quarantine,
    /// The way to GitHub; `None` once cut.
    up: Option<mpsc::Sender<Result<Bytes, std::io::Error>>>,
    up_bytes: u64,
    /// The last bytes received: the trailer, at the end.
    held: Vec<u8>,
    total: u64,
    seen: Observed,
    scanner: pack::Scanner,
}

type Fetch = tokio::task::JoinHandle<Result<(), String>>;

impl Pump {
    fn summary(&self, verdict: &str) -> PushSummary {
        PushSummary {
            verdict: verdict.to_owned(),
            pack_bytes: self.total,
            pack_bytes_upstream: self.up_bytes,
            ..PushSummary::default()
        }
    }

    fn names(&self) -> Vec<String> {
        self.push
            .commands
            .commands
            .iter()
            .map(|c| c.refname.clone())
            .collect()
    }

    fn refuse(&mut self, rule: &'static str, why: String) -> (PushSummary, Refused) {
        self.cut();
        (self.summary(rule), rules::whole(rule, why, &self.names()))
    }

    /// Stops the stream to GitHub: the request ends in an error, GitHub has no whole pack.
    fn cut(&mut self) {
        self.aborted.store(true, Ordering::SeqCst);
        self.up = None;
    }

    async fn send_up(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        let Some(tx) = &self.up else { return };
        let n = b.len() as u64;
        match tokio::time::timeout(self.push.idle, tx.send(Ok(b))).await {
            Ok(Ok(())) => self.up_bytes += n,
            // GitHub stopped reading (it answered, or went away): its answer decides.
            _ => self.up = None,
        }
    }

    async fn run(
        mut self,
        pack_start: Vec<u8>,
        mut body: Incoming,
        mut index: tokio::process::Child,
        fetch: Fetch,
        bytes_in: Arc<AtomicU64>,
    ) -> Result<PushSummary, (PushSummary, Refused)> {
        let rules = &self.push.sb.cfg.rules;
        self.seen.max_file = rules.max_file_bytes;
        self.seen.scan = rules.secret_scan;
        let max_push = rules.max_push_bytes;
        let mut stdin = index.stdin.take();
        let mut next = Some(Bytes::from(pack_start));
        loop {
            let chunk = match next.take() {
                Some(c) => c,
                None => match tokio::time::timeout(self.push.idle, body.frame()).await {
                    Ok(Some(Ok(f))) => match f.into_data() {
                        Ok(d) => {
                            bytes_in.fetch_add(d.len() as u64, Ordering::Relaxed);
                            d
                        }
                        Err(_) => continue,
                    },
                    Ok(None) => break,
                    Ok(Some(Err(_))) => {
                        return Err(self.refuse("pack", "the push was cut off".into()));
                    }
                    Err(_) => {
                        return Err(self.refuse(
                            "pack",
                            format!(
                                "the pack stalled for {} (idle_timeout)",
                                humantime::format_duration(self.push.idle)
                            ),
                        ));
                    }
                },
            };
            if chunk.is_empty() {
                continue;
            }
            self.total += chunk.len() as u64;
            if self.total > max_push {
                let why = format!("the push is over {}", rules::mib(max_push));
                let r = self.refuse("max_push_bytes", why);
                crate::body::drain(body).await;
                return Err(r);
            }
            let seen = &mut self.seen;
            if let Err(e) = self.scanner.feed(&chunk, &mut |s| seen.see(s)) {
                let r = self.refuse("pack", format!("the pack is broken: {e}"));
                crate::body::drain(body).await;
                return Err(r);
            }
            if self.seen.too_many_deltas {
                let r = self.refuse(
                    "inspection",
                    format!(
                        "the pack holds over {MAX_DELTAS} delta objects, more than the proxy inspects in one push: push in parts"
                    ),
                );
                crate::body::drain(body).await;
                return Err(r);
            }
            if self.seen.refuses() {
                // Known to be refused: GitHub gets nothing more; the rest is read to name it.
                self.cut();
            }
            // Everything but the last 20 bytes goes on, to index-pack and to GitHub.
            let (pass, keep) = hold_back(&mut self.held, chunk);
            for b in pass {
                if let Some(w) = stdin.as_mut()
                    && w.write_all(&b).await.is_err()
                {
                    stdin = None;
                }
                self.send_up(b).await;
            }
            self.held = keep;
        }
        if let Err(e) = self.scanner.finish() {
            return Err(self.refuse("pack", format!("the pack is broken: {e}")));
        }
        // The mirror must hold the thin pack's bases before index-pack resolves them.
        let fetched = match tokio::time::timeout(DECIDE_TIME, fetch).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("fetching GitHub's copy took too long".into()),
        };
        if let Err(e) = fetched {
            return Err(self.refuse(
                "inspection",
                format!("cannot inspect the push: fetching the repository failed: {e}"),
            ));
        }
        if let Some(mut w) = stdin.take() {
            let _ = w.write_all(&self.held).await;
        }
        let decided = tokio::time::timeout(DECIDE_TIME, self.decide(index)).await;
        match decided {
            Ok(Ok(summary)) => {
                let trailer = Bytes::from(std::mem::take(&mut self.held));
                self.send_up(trailer).await;
                // The sender dropped: the body ends, GitHub has the whole pack.
                self.up = None;
                Ok(PushSummary {
                    pack_bytes_upstream: self.up_bytes,
                    ..summary
                })
            }
            Ok(Err(refused)) => {
                self.cut();
                Err((self.summary(refused.rule), refused))
            }
            Err(_) => Err(self.refuse(
                "inspection",
                format!("cannot inspect the push within {} s", DECIDE_TIME.as_secs()),
            )),
        }
    }

    /// Once the whole pack is with index-pack: what each ref update does, and the verdict.
    async fn decide(&mut self, index: tokio::process::Child) -> Result<PushSummary, Refused> {
        let out = index.wait_with_output().await.map_err(|e| {
            rules::whole("inspection", format!("git index-pack: {e}"), &self.names())
        })?;
        if !out.status.success() {
            let why = git::first_line(&out.stderr);
            // The proxy's trouble (its disk), not the pack's.
            let (rule, what) = if why.contains("No space left") || why.contains("Permission denied")
            {
                ("inspection", "the proxy cannot inspect the push")
            } else {
                ("pack", "git index-pack refused the pack")
            };
            return Err(rules::whole(rule, format!("{what}: {why}"), &self.names()));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let hash = text
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let facts = Facts {
            git: &self.git,
            q: &self.quarantine,
        };
        let mut refs = Vec::new();
        let news = self.push.tips();
        for c in &self.push.commands.commands {
            if c.is_delete() {
                continue;
            }
            let fail = |e: String| rules::whole("inspection", e, &self.names());
            let fast_forward = if c.is_create() {
                None
            } else {
                Some(facts.is_ancestor(&c.old, &c.new).await.map_err(fail)?)
            };
            let base = if c.is_create() {
                facts.create_base(&c.new).await.map_err(fail)?
            } else {
                Some(c.old.clone())
            };
            let changed = match base {
                Some(b) => facts.changed(&b, &c.new).await.map_err(fail)?,
                None => Vec::new(),
            };
            refs.push(RefChange {
                refname: c.refname.clone(),
                old: c.old.clone(),
                new: c.new.clone(),
                fast_forward,
                changed,
            });
        }
        let content = facts
            .content(&hash, &self.seen, &self.push.sb, &news)
            .await
            .map_err(|e| rules::whole("inspection", e, &self.names()))?;
        rules::decide(&self.push.sb, &refs, &content)?;
        let commits = facts.count_new(&news).await.unwrap_or(0);
        let mut paths: Vec<&String> = refs
            .iter()
            .flat_map(|r| r.changed.iter().map(|c| &c.1))
            .collect();
        paths.sort();
        paths.dedup();
        Ok(PushSummary {
            verdict: "accepted".into(),
            commits,
            changed_paths: paths.len() as u64,
            pack_bytes: self.total,
            pack_bytes_upstream: 0,
        })
    }
}

/// Splits `chunk` into what passes now and the last [`TRAILER`] bytes received (kept).
fn hold_back(held: &mut Vec<u8>, chunk: Bytes) -> (Vec<Bytes>, Vec<u8>) {
    if chunk.len() >= TRAILER {
        let cut = chunk.len() - TRAILER;
        let pass = vec![Bytes::from(std::mem::take(held)), chunk.slice(..cut)];
        (pass, chunk[cut..].to_vec())
    } else {
        let mut all = std::mem::take(held);
        all.extend_from_slice(&chunk);
        let cut = all.len().saturating_sub(TRAILER);
        let keep = all.split_off(cut);
        (vec![Bytes::from(all)], keep)
    }
}

/// Questions to git about the quarantined push.
struct Facts<'a> {
    git: &'a Git,
    q: &'a git::Quarantine,
}

const STEP: Duration = Duration::from_secs(60);

impl Facts<'_> {
    fn cmd(&self) -> tokio::process::Command {
        self.q.command(self.git, None)
    }

    /// Whether `old` is an ancestor of `new`.
    async fn is_ancestor(&self, old: &str, new: &str) -> Result<bool, String> {
        let mut c = self.cmd();
        c.args(["merge-base", "--is-ancestor", old, new]);
        let r = git::exec(c, None, STEP).await?;
        match r.code {
            0 => Ok(true),
            1 => Ok(false),
            _ => Err(format!(
                "cannot tell whether {old} is an ancestor of {new} (is the push based on what GitHub has? fetch and try again): {}",
                git::first_line(&r.err)
            )),
        }
    }

    /// What a new ref is compared with: nothing when it points at history GitHub has, else
    /// where it leaves the default branch (or the empty tree, for unrelated history).
    async fn create_base(&self, new: &str) -> Result<Option<String>, String> {
        let mut c = self.cmd();
        c.args(["rev-list", "-n1", new, "--not", "--all"]);
        if git::run(c, None, STEP).await?.is_empty() {
            return Ok(None);
        }
        let mut c = self.cmd();
        c.args(["merge-base", new, "refs/ghapp/HEAD"]);
        let r = git::exec(c, None, STEP).await?;
        let base = String::from_utf8_lossy(&r.out).trim().to_owned();
        Ok(Some(if r.code == 0 && !base.is_empty() {
            base
        } else {
            EMPTY_TREE.to_owned()
        }))
    }

    /// The net change from `base` to `new`, every path (a rename is a delete and an add).
    async fn changed(&self, base: &str, new: &str) -> Result<Vec<(char, String)>, String> {
        let mut c = self.cmd();
        c.args([
            "diff-tree",
            "-r",
            "-z",
            "--no-renames",
            "--name-status",
            base,
            new,
        ]);
        let out = git::run(c, None, STEP).await?;
        let mut fields = out.split(|b| *b == 0).filter(|f| !f.is_empty());
        let mut changed = Vec::new();
        while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
            let s = status.first().copied().unwrap_or(b'M') as char;
            changed.push((s, String::from_utf8_lossy(path).into_owned()));
        }
        Ok(changed)
    }

    /// New commits (not reachable from GitHub's refs).
    async fn count_new(&self, news: &[String]) -> Result<u64, String> {
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

    /// What the pushed objects hold that a rule refuses: objects over the size limit (from
    /// the stream), credentials in whole blobs (from the stream) and in blobs that came as
    /// deltas (read now), each named by the path a pushed tree gives it.
    async fn content(
        &self,
        hash: &str,
        seen: &Observed,
        sb: &Sandbox,
        news: &[String],
    ) -> Result<Content, String> {
        // The object id at each offset of interest.
        let mut wanted: Vec<u64> = seen
            .oversized
            .iter()
            .map(|o| o.0)
            .chain(seen.findings.iter().map(|f| f.0))
            .collect();
        let scan_deltas = sb.cfg.rules.secret_scan && !seen.deltas.is_empty();
        if wanted.is_empty() && !scan_deltas {
            return Ok(Content::default());
        }
        wanted.sort_unstable();
        let mut ids: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
        let mut delta_ids = Vec::new();
        let idx = std::fs::read(self.q.index(hash)).map_err(|e| format!("the pack index: {e}"))?;
        let mut c = self.cmd();
        c.arg("show-index");
        git::lines(c, Some(idx), STEP, |line| {
            let mut f = line.split_whitespace();
            if let (Some(off), Some(id)) = (f.next().and_then(|o| o.parse::<u64>().ok()), f.next())
            {
                if wanted.binary_search(&off).is_ok() {
                    ids.insert(off, id.to_owned());
                }
                if scan_deltas && seen.deltas.binary_search(&off).is_ok() {
                    delta_ids.push(id.to_owned());
                }
            }
            true
        })
        .await?;
        let mut secrets_found: Vec<(String, secrets::Finding)> = seen
            .findings
            .iter()
            .filter_map(|(off, f)| Some((ids.get(off)?.clone(), *f)))
            .collect();
        if secrets_found.is_empty()
            && !delta_ids.is_empty()
            && let Some(f) = self.scan_blobs(&delta_ids).await?
        {
            secrets_found.push(f);
        }
        let oversized: Vec<(String, u64)> = seen
            .oversized
            .iter()
            .filter_map(|(off, size)| Some((ids.get(off)?.clone(), *size)))
            .collect();
        if oversized.is_empty() && secrets_found.is_empty() {
            return Ok(Content::default());
        }
        // Named by path where a pushed tree names them.
        let mut names: std::collections::HashMap<String, String> = oversized
            .iter()
            .map(|o| o.0.clone())
            .chain(secrets_found.iter().map(|s| s.0.clone()))
            .map(|id| (id, String::new()))
            .collect();
        let mut left = names.len();
        let mut c = self.cmd();
        c.args(["rev-list", "--objects", "--missing=allow-promisor"])
            .args(news)
            .args(["--not", "--all"]);
        git::lines(c, None, STEP, |line| {
            if let Some((id, path)) = line.split_once(' ')
                && let Some(slot) = names.get_mut(id)
                && slot.is_empty()
            {
                *slot = path.to_owned();
                left -= 1;
            }
            left > 0
        })
        .await?;
        let name = |id: &str| {
            names
                .get(id)
                .filter(|p| !p.is_empty())
                .cloned()
                .unwrap_or_else(|| format!("object {id}"))
        };
        Ok(Content {
            oversized: oversized.iter().map(|(id, s)| (name(id), *s)).collect(),
            secrets: secrets_found.iter().map(|(id, f)| (name(id), *f)).collect(),
        })
    }

    /// The first credential in the blobs among `ids` (objects that came as deltas), read
    /// one piece at a time from `git cat-file --batch`.
    async fn scan_blobs(
        &self,
        ids: &[String],
    ) -> Result<Option<(String, secrets::Finding)>, String> {
        let mut c = self.cmd();
        c.args([
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
            loop {
                head.clear();
                if r.read_line(&mut head).await.map_err(|e| e.to_string())? == 0 {
                    return Ok(None);
                }
                let f: Vec<&str> = head.split_whitespace().collect();
                let (id, kind, size) = match f.as_slice() {
                    [id, kind, size] => (id.to_string(), *kind, size.parse::<u64>().unwrap_or(0)),
                    _ => continue, // "<id> missing"
                };
                let mut s = secrets::Scanner::new();
                let mut left = size + 1; // and the newline after
                while left > 0 {
                    let n = (left as usize).min(buf.len());
                    r.read_exact(&mut buf[..n])
                        .await
                        .map_err(|e| e.to_string())?;
                    left -= n as u64;
                    if kind == "blob" {
                        let data = if left == 0 { &buf[..n - 1] } else { &buf[..n] };
                        s.feed(data);
                    }
                }
                if kind == "blob"
                    && let Some(f) = s.finish()
                {
                    return Ok::<_, String>(Some((id, f)));
                }
            }
        };
        let ((), found) = tokio::join!(feed, read);
        let _ = child.kill().await;
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_twenty_bytes_are_held_however_the_pack_arrives() {
        let pack: Vec<u8> = (0..200u8).collect();
        for piece in [1, 7, 19, 20, 21, 64, 200] {
            let mut held = Vec::new();
            let mut passed = Vec::new();
            for c in pack.chunks(piece) {
                let (pass, keep) = hold_back(&mut held, Bytes::copy_from_slice(c));
                pass.iter().for_each(|b| passed.extend_from_slice(b));
                held = keep;
            }
            assert_eq!(passed, pack[..180], "piece {piece}");
            assert_eq!(held, pack[180..], "piece {piece}");
        }
    }
}
