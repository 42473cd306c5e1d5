//! Push inspection: a push is decided on what it does, before GitHub can apply it.
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
//! With the whole pack indexed, the push is described as every write is
//! ([`crate::policy::write`]; the questions to git in `facts`): each ref's combined move,
//! fast-forward exactly (`merge-base --is-ancestor`), the net change its new tip holds (a new
//! ref: against where it leaves the default branch, whether or not its commits are new), blobs
//! that came as deltas scanned for credentials, blobs it lands that were not in the pack read
//! from GitHub and scanned, oversized objects and credentials named by path. Accepted: the
//! trailer goes on and GitHub answers. Refused: the upstream request is dropped and git is told
//! the git way, every ref refused with the rule named.
//!
//! [`ref_moves`] describes a ref moved through the API (GraphQL's ref mutations, REST's git
//! refs) the same way, in the mirror alone.

mod facts;
mod git;
pub(crate) mod observe;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ghapp_gitproto::pack::{self, Kind, Seen};
use ghapp_gitproto::receive_pack::Commands;
use ghapp_gitproto::secrets;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use facts::{Facts, KEPT, Landed};
pub(crate) use git::{Auth, Git};

use crate::policy::mode;
use crate::policy::write::{self, Content, RefMove, Refused};

use crate::audit::PushSummary;
use crate::sandbox::Sandbox;

/// The longest the decision may take once the pack is in (indexing, the checks).
const DECIDE_TIME: Duration = Duration::from_secs(120);
/// Chunks of the pack in flight to GitHub.
const IN_FLIGHT: usize = 16;
const TRAILER: usize = 20;

/// A push being inspected: its verdict when decided (a refusal as git's report-status).
pub(crate) type Verdict =
    oneshot::Receiver<Result<PushSummary, (PushSummary, crate::policy::PushRefusal)>>;

/// An open pull request whose head a push moves (assisted mode): what the pull request would
/// show once the push lands is measured, and the trust mode decides on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Growth {
    pub refname: String,
    pub number: u64,
    /// The pull request's base branch.
    pub base: String,
}

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
    /// What the pack's objects may inflate to, in all (`[limits] max_inflated_bytes`).
    pub max_inflated: u64,
    /// The open pull requests whose heads it moves (assisted mode).
    pub growth: Vec<Growth>,
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
        let out =
            out.map_err(|(summary, r)| (summary, crate::policy::push_refusal(&sb, &commands, &r)));
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
        reqwest::Body::wrap_stream(crate::body::coalesce(stream)),
        verdict,
    ))
}

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
    /// What the objects seen so far declare they inflate to.
    inflated: u64,
}

impl Observed {
    fn see(&mut self, s: Seen<'_>) {
        match s {
            Seen::Object(o) => {
                self.inflated = self.inflated.saturating_add(o.size);
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
        (self.summary(rule), write::whole(rule, why, &self.names()))
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
        let mut feed = feed_index(&mut index);
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
                let why = format!("the push is over {}", write::mib(max_push));
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
            if self.seen.inflated > self.push.max_inflated {
                let r = self.refuse(
                    "inspection",
                    format!(
                        "the pack's objects inflate to over {}, more than the proxy inflates for one push (max_inflated_bytes): push in parts",
                        write::mib(self.push.max_inflated)
                    ),
                );
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
                if let Some(f) = &feed {
                    match tokio::time::timeout(self.push.idle, f.send(b.clone())).await {
                        Ok(Ok(())) => {}
                        // index-pack ended: its exit status decides.
                        Ok(Err(_)) => feed = None,
                        Err(_) => {
                            let r = self.refuse(
                                "inspection",
                                format!(
                                    "git index-pack stopped reading the pack for {} (idle_timeout): the proxy cannot inspect the push",
                                    humantime::format_duration(self.push.idle)
                                ),
                            );
                            crate::body::drain(body).await;
                            return Err(r);
                        }
                    }
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
        if let Some(f) = feed.take() {
            let _ = f.send(Bytes::copy_from_slice(&self.held)).await;
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

    /// Once the whole pack is with index-pack: what each ref's move does, and the verdict.
    async fn decide(&mut self, index: tokio::process::Child) -> Result<PushSummary, Refused> {
        let names = self.names();
        let whole = |rule: &'static str, e: String| write::whole(rule, e, &names);
        let out = index
            .wait_with_output()
            .await
            .map_err(|e| whole("inspection", format!("git index-pack: {e}")))?;
        if !out.status.success() {
            let why = git::first_line(&out.stderr);
            // The proxy's trouble (its disk), not the pack's.
            let (rule, what) = if why.contains("No space left") || why.contains("Permission denied")
            {
                ("inspection", "the proxy cannot inspect the push")
            } else {
                ("pack", "git index-pack refused the pack")
            };
            return Err(whole(rule, format!("{what}: {why}")));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let hash = text
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let facts = Facts {
            git: &self.git,
            mirror: self.quarantine.mirror(),
            quarantine: Some(&self.quarantine),
            auth: &self.push.auth,
        };
        let mut moves = write::moves(&self.push.commands.commands);
        let landed = facts
            .describe(&mut moves)
            .await
            .map_err(|e| whole("inspection", e))?;
        let news = self.push.tips();
        let mut content = pushed_content(&facts, &hash, &self.seen, &self.push.sb, &news, &landed)
            .await
            .map_err(|e| whole("inspection", e))?;
        if self.push.sb.cfg.rules.secret_scan && content.secrets.is_empty() {
            let names = facts
                .scan_history(&news)
                .await
                .map_err(|e| whole("inspection", e))?;
            content.secrets.extend(names.secrets);
        }
        let paths: std::collections::BTreeSet<&String> = moves
            .iter()
            .flat_map(|m| m.changed.iter().map(|c| &c.1))
            .collect();
        let changed_paths = paths.len() as u64;
        let w = write::Write {
            refs: moves,
            content,
            atomic: self.push.commands.has_capability("atomic"),
        };
        write::decide(&self.push.sb, &w)?;
        self.growth(&facts, &w.refs).await?;
        let commits = facts.count_new(&news).await.unwrap_or(0);
        Ok(PushSummary {
            verdict: "accepted".into(),
            commits,
            changed_paths,
            pack_bytes: self.total,
            pack_bytes_upstream: 0,
        })
    }
}

impl Pump {
    /// The trust mode on the open pull requests the push grows: what each would show once the
    /// push lands, measured here (the push is not at GitHub yet).
    async fn growth(&self, facts: &Facts<'_>, moves: &[RefMove]) -> Result<(), Refused> {
        let sb = &self.push.sb;
        for g in &self.push.growth {
            let Some(new) =
                moves
                    .iter()
                    .find(|m| m.refname == g.refname)
                    .and_then(|m| match &m.new {
                        write::Tip::Commit(c) => Some(c.clone()),
                        _ => None,
                    })
            else {
                continue;
            };
            let grown = facts
                .measure(&g.base, &new)
                .await
                .map_err(|e| write::whole("inspection", e, &self.names()))?;
            let kind = mode::Kind::Refs {
                pull: Some(mode::PullHead::Open {
                    number: g.number,
                    grown,
                }),
            };
            let verdict = mode::of_sandbox(sb, &kind);
            if let mode::Verdict::Refuse(why) = verdict {
                let mut r = write::whole("mode", why, &self.names());
                r.refs.retain(|(name, _)| *name == g.refname);
                return Err(r);
            }
        }
        Ok(())
    }
}

/// `git index-pack`'s stdin fed by its own task, so that GitHub's stream and index-pack each
/// go at their own pace (up to [`IN_FLIGHT`] chunks apart) instead of waiting on each other's
/// pipe. Dropping the sender closes stdin once what was sent is written; a write that fails
/// (index-pack ended) ends the task and the next send. A send waits at most the push's idle
/// time: an index-pack that stops reading refuses the push (and is killed with it).
fn feed_index(index: &mut tokio::process::Child) -> Option<mpsc::Sender<Bytes>> {
    let mut stdin = index.stdin.take()?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(IN_FLIGHT);
    tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if stdin.write_all(&b).await.is_err() {
                return;
            }
        }
    });
    Some(tx)
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

/// What the blobs of a push hold that a rule refuses: objects over the size limit (from the
/// stream), credentials in whole blobs (from the stream) and in blobs that came as deltas (read
/// now), each named by the path a pushed tree gives it; and the blobs the push lands at a tip
/// that were not in its pack (a ref moved onto commits GitHub has), read from GitHub.
async fn pushed_content(
    facts: &Facts<'_>,
    hash: &str,
    seen: &Observed,
    sb: &Sandbox,
    news: &[String],
    landed: &[Landed],
) -> Result<Content, String> {
    let rules = &sb.cfg.rules;
    let mut wanted: Vec<u64> = seen
        .oversized
        .iter()
        .map(|o| o.0)
        .chain(seen.findings.iter().map(|f| f.0))
        .collect();
    wanted.sort_unstable();
    let scan_deltas = rules.secret_scan && !seen.deltas.is_empty();
    let mut ids: HashMap<u64, String> = HashMap::new();
    let mut delta_ids = Vec::new();
    // The landed blobs the pack holds were read already (whole, or as deltas below).
    let mut outside: HashSet<&str> = landed.iter().map(|l| l.blob.as_str()).collect();
    let idx = std::fs::read(facts.quarantine.map(|q| q.index(hash)).unwrap_or_default())
        .map_err(|e| format!("the pack index: {e}"))?;
    let mut c = facts
        .quarantine
        .map(|q| q.command(facts.git, None))
        .ok_or("no quarantine")?;
    c.arg("show-index");
    git::lines(c, Some(idx), facts::STEP, |line| {
        let mut f = line.split_whitespace();
        if let (Some(off), Some(id)) = (f.next().and_then(|o| o.parse::<u64>().ok()), f.next()) {
            if wanted.binary_search(&off).is_ok() {
                ids.insert(off, id.to_owned());
            }
            if scan_deltas && seen.deltas.binary_search(&off).is_ok() {
                delta_ids.push(id.to_owned());
            }
            outside.remove(id);
        }
        true
    })
    .await?;
    let mut found = facts::Found {
        oversized: seen
            .oversized
            .iter()
            .filter_map(|(off, size)| Some((ids.get(off)?.clone(), *size)))
            .collect(),
        secrets: seen
            .findings
            .iter()
            .filter_map(|(off, f)| Some((ids.get(off)?.clone(), *f)))
            .collect(),
    };
    if found.secrets.is_empty() && !delta_ids.is_empty() {
        let (more, _) = facts.read_blobs(&delta_ids, true, None).await?;
        found.secrets.extend(more.secrets);
    }
    // Named by path where a pushed tree names them.
    let names: HashSet<String> = found
        .oversized
        .iter()
        .map(|o| o.0.clone())
        .chain(found.secrets.iter().map(|s| s.0.clone()))
        .collect();
    let paths = if names.is_empty() {
        HashMap::new()
    } else {
        facts.paths_of(&names, news).await?
    };
    let name = |id: &str| match paths.get(id) {
        Some(p) => p.clone(),
        // `commit ID7`, `tag ID7`: named already.
        None if id.contains(' ') => id.to_owned(),
        None => format!("object {id}"),
    };
    let mut content = Content {
        oversized: found
            .oversized
            .iter()
            .map(|(id, s)| (name(id), *s))
            .collect(),
        secrets: found.secrets.iter().map(|(id, f)| (name(id), *f)).collect(),
    };
    let outside: Vec<Landed> = landed
        .iter()
        .filter(|l| outside.contains(l.blob.as_str()))
        .cloned()
        .collect();
    let more = facts
        .scan_landed(&outside, rules.max_file_bytes, rules.secret_scan)
        .await?;
    content.oversized.extend(more.oversized);
    content.secrets.extend(more.secrets);
    Ok(content)
}

/// The facts of ref moves made through the API (GraphQL's ref mutations, REST's git refs) on
/// commits GitHub has, read in the repository's mirror (fetched first with the sandbox's
/// token): fast-forward or not, the net change each new tip holds, and what the blobs it
/// lands hold. The same description a push gets.
pub(crate) async fn ref_moves(
    git: &Git,
    at: &Mirror,
    sb: &Sandbox,
    mut moves: Vec<RefMove>,
) -> Result<write::Write, String> {
    let mirror = git.mirror(&at.host, &at.repo, &at.url).await?;
    git.fetch(&mirror, &at.auth).await?;
    let facts = Facts {
        git,
        mirror: &mirror,
        quarantine: None,
        auth: &at.auth,
    };
    let landed = facts.describe(&mut moves).await?;
    let rules = &sb.cfg.rules;
    let mut content = facts
        .scan_landed(&landed, rules.max_file_bytes, rules.secret_scan)
        .await?;
    if rules.secret_scan && content.secrets.is_empty() {
        let news: Vec<String> = moves
            .iter()
            .filter_map(|m| match &m.new {
                write::Tip::Commit(c) | write::Tip::Merge(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        content
            .secrets
            .extend(facts.scan_history(&news).await?.secrets);
    }
    Ok(write::Write {
        refs: moves,
        content,
        atomic: true,
    })
}

/// Where a repository's mirror is fetched from, and with what.
#[derive(Debug, Clone)]
pub(crate) struct Mirror {
    pub host: String,
    pub repo: ghapp_gitproto::repo::RepoName,
    /// `https://host/owner/repo.git`.
    pub url: String,
    pub auth: Auth,
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
