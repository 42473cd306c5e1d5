//! A push from a sandbox in observe mode: read whole into a quarantine
//! (never sent on), then described for its proposal: the ref updates, the new commits, the
//! paths they change and the diff, each bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::facts::{EMPTY_TREE, Facts, STEP};
use super::{DECIDE_TIME, Git, Push, git};

/// The most commits listed per push (all are counted).
const MAX_COMMITS: usize = 100;
/// The most ref updates described (and bundled) per push; the rest are listed only.
const MAX_DESCRIBED_REFS: usize = 50;
/// The most changed paths listed per push (all are counted).
const MAX_PATHS: usize = 1000;
/// The longest commit message kept.
const MAX_MESSAGE: usize = 4096;
/// The most of a push's diff kept (all its refs together).
const MAX_DIFF: usize = 256 << 10;
/// The largest bundle kept (a larger push keeps its diff only).
const MAX_BUNDLE: usize = 4 << 20;

/// What an observed push would have done: the proposal's detail, its diff, and its commits
/// as a git bundle (when under [`MAX_BUNDLE`]).
pub(crate) struct Described {
    pub detail: Value,
    pub diff: String,
    pub bundle: Option<Vec<u8>>,
}

impl Described {
    /// A proposal that is its detail alone (a pull request).
    pub(crate) fn only(detail: Value) -> Described {
        Described {
            detail,
            diff: String::new(),
            bundle: None,
        }
    }
}

/// Reads the push's pack into a quarantine (over the repository's mirror, fetched first with
/// the sandbox's read-only token) and describes what each ref update would have done.
/// `first` holds the command section and whatever of the pack came with it (from
/// `consumed`); the pack is bounded by `max_push_bytes` and the idle timeout.
pub(crate) async fn describe(
    git: Arc<Git>,
    push: Push,
    mut first: Vec<u8>,
    consumed: usize,
    mut body: Incoming,
    bytes_in: Arc<AtomicU64>,
) -> Result<Described, String> {
    let refs: Vec<Value> = push
        .commands
        .commands
        .iter()
        .map(|c| json!({ "ref": c.refname, "old": c.old, "new": c.new }))
        .collect();
    if push.tips().is_empty() {
        return Ok(Described::only(
            json!({ "refs": refs, "commits": [], "commits_total": 0, "paths": [], "paths_total": 0, "pack_bytes": 0 }),
        ));
    }
    let mirror = git.mirror(&push.host, &push.repo, &push.fetch_url).await?;
    git.fetch(&mirror, &push.auth)
        .await
        .map_err(|e| format!("fetching the repository failed: {e}"))?;
    let q = git.quarantine(&mirror)?;
    let mut index = q.command(&git, Some(&push.auth));
    index
        .args(["index-pack", "--stdin", "--fix-thin"])
        .stdin(std::process::Stdio::piped());
    let mut index = index
        .spawn()
        .map_err(|e| format!("cannot run git index-pack: {e}"))?;
    let mut stdin = index.stdin.take().ok_or("git index-pack: no stdin")?;
    let max = push.sb.cfg.rules.max_push_bytes;
    let mut total = 0u64;
    let mut next = Some(first.split_off(consumed.min(first.len())));
    loop {
        let chunk = match next.take() {
            Some(c) => bytes::Bytes::from(c),
            None => match tokio::time::timeout(push.idle, body.frame()).await {
                Ok(Some(Ok(f))) => match f.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
                Ok(None) => break,
                Ok(Some(Err(_))) => return Err("the push was cut off".into()),
                Err(_) => return Err("the pack stalled (idle_timeout)".into()),
            },
        };
        bytes_in.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        total += chunk.len() as u64;
        if total > max {
            return Err(format!(
                "the push is over {} (max_push_bytes)",
                crate::policy::write::mib(max)
            ));
        }
        stdin
            .write_all(&chunk)
            .await
            .map_err(|_| "git index-pack refused the pack".to_owned())?;
    }
    drop(stdin);
    let out = tokio::time::timeout(DECIDE_TIME, index.wait_with_output())
        .await
        .map_err(|_| "indexing the pack took too long".to_owned())?
        .map_err(|e| format!("git index-pack: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git index-pack refused the pack: {}",
            git::first_line(&out.stderr)
        ));
    }
    // Everything after the pack, however many refs it names, within one deadline.
    let mut d = tokio::time::timeout(DECIDE_TIME, describe_refs(&git, &q, &push))
        .await
        .map_err(|_| format!("describing the push took over {} s", DECIDE_TIME.as_secs()))??;
    d.detail["refs"] = json!(refs);
    d.detail["pack_bytes"] = json!(total);
    Ok(d)
}

/// What the first [`MAX_DESCRIBED_REFS`] ref updates of an indexed push do: their new
/// commits, changed paths and diff (each bounded), and their bundle.
async fn describe_refs(git: &Git, q: &git::Quarantine, push: &Push) -> Result<Described, String> {
    let facts = Facts {
        git,
        mirror: q.mirror(),
        quarantine: Some(q),
        auth: &push.auth,
    };
    let mut commits = Vec::new();
    let mut commits_total = 0u64;
    let mut paths: Vec<Value> = Vec::new();
    let mut paths_total = 0usize;
    let mut diff = String::new();
    let mut truncated = false;
    let mut bundled = Bundled::default();
    let updates: Vec<_> = push
        .commands
        .commands
        .iter()
        .filter(|c| !c.is_delete())
        .collect();
    for c in updates.iter().take(MAX_DESCRIBED_REFS) {
        let base = if c.is_create() {
            facts.base_of_new(&c.new).await?
        } else {
            c.old.clone()
        };
        // A new ref at history GitHub has needs it all, and brings nothing.
        let known = c.is_create() && facts.is_known(&c.new).await?;
        bundled.add(&c.refname, &c.new, (!known).then_some(base.as_str()));
        let (listed, count) = log(git, q, &c.new, MAX_COMMITS - commits.len()).await?;
        commits_total += count;
        commits.extend(listed.into_iter().map(|mut v| {
            v["ref"] = json!(c.refname);
            v
        }));
        for (status, path) in facts.changed(&base, &c.new).await?.0 {
            paths_total += 1;
            if paths.len() < MAX_PATHS {
                paths.push(json!({ "ref": c.refname, "status": status.to_string(), "path": path }));
            }
        }
        if diff.len() >= MAX_DIFF {
            truncated = true;
            continue;
        }
        // The diff reads the old side's blobs: the mirror has none, so git fetches them (in
        // one batch) with the sandbox's token.
        let mut cmd = q.command(git, Some(&push.auth));
        cmd.args([
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--stat",
            "--patch",
            &base,
            &c.new,
        ]);
        let r = git::exec(cmd, None, STEP).await?;
        if r.code != 0 {
            return Err(r.why());
        }
        diff.push_str(&format!(
            "diff for {} ({}..{})\n",
            c.refname,
            short(&base),
            short(&c.new)
        ));
        let text = String::from_utf8_lossy(&r.out);
        let room = MAX_DIFF.saturating_sub(diff.len());
        let mut cut = room.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        diff.push_str(&text[..cut]);
        truncated |= r.truncated || cut < text.len();
    }
    let (bundle, bundle_note) = match bundled.make(git, q, &push.auth).await {
        Ok(b) => (Some(b), Value::Null),
        Err(why) => (None, json!(why)),
    };
    Ok(Described {
        bundle,
        detail: json!({
            "bundle_not_kept": bundle_note,
            "refs_described": updates.len().min(MAX_DESCRIBED_REFS),
            "commits": commits,
            "commits_total": commits_total,
            "paths": paths,
            "paths_total": paths_total,
            "diff_truncated": truncated,
        }),
        diff,
    })
}

/// What a push's bundle holds: its refs, the commits it needs the receiver to have
/// (prerequisites: what GitHub had) and the revisions for `pack-objects`.
#[derive(Default)]
struct Bundled {
    refs: Vec<(String, String)>,
    prerequisites: Vec<String>,
    revs: Vec<String>,
}

impl Bundled {
    /// A ref update to `new` from `base` (`None`: `new` is history GitHub has).
    fn add(&mut self, refname: &str, new: &str, base: Option<&str>) {
        self.refs.push((new.to_owned(), refname.to_owned()));
        match base {
            None => self.prerequisites.push(new.to_owned()),
            Some(EMPTY_TREE) => self.revs.push(new.to_owned()),
            Some(b) => {
                self.prerequisites.push(b.to_owned());
                self.revs.push(new.to_owned());
                self.revs.push(format!("^{b}"));
            }
        }
    }

    /// The bundle (git's v2 format: a header naming the refs and prerequisites, then a pack
    /// of what the prerequisites lack), or why there is none (over [`MAX_BUNDLE`], git
    /// failed): the proposal keeps its diff either way.
    async fn make(
        &self,
        git: &Git,
        q: &git::Quarantine,
        auth: &super::Auth,
    ) -> Result<Vec<u8>, String> {
        let mut out = b"# v2 git bundle\n".to_vec();
        for p in &self.prerequisites {
            out.extend_from_slice(format!("-{p} \n").as_bytes());
        }
        for (oid, name) in &self.refs {
            out.extend_from_slice(format!("{oid} {name}\n").as_bytes());
        }
        out.push(b'\n');
        let mut cmd = q.command(git, Some(auth));
        cmd.args([
            "pack-objects",
            "--revs",
            "--stdout",
            "--delta-base-offset",
            "-q",
        ]);
        let input: String = self.revs.iter().map(|r| format!("{r}\n")).collect();
        let limit = MAX_BUNDLE.saturating_sub(out.len());
        let r = git::exec_limited(cmd, Some(input.into_bytes()), STEP, limit).await?;
        if r.truncated {
            return Err(format!(
                "the bundle is over {}",
                crate::policy::write::mib(MAX_BUNDLE as u64)
            ));
        }
        if r.code != 0 {
            return Err(r.why());
        }
        out.extend_from_slice(&r.out);
        Ok(out)
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The commits `new` brings that GitHub does not have: the first `room` (id, author, date,
/// message) and how many in all.
async fn log(
    git: &Git,
    q: &git::Quarantine,
    new: &str,
    room: usize,
) -> Result<(Vec<Value>, u64), String> {
    let mut c = q.command(git, None);
    c.args(["rev-list", "--count", new, "--not", "--all"]);
    let count = String::from_utf8_lossy(&git::run(c, None, STEP).await?)
        .trim()
        .parse()
        .unwrap_or(0);
    if room == 0 {
        return Ok((Vec::new(), count));
    }
    let mut c = q.command(git, None);
    c.args([
        "log",
        "-z",
        "--no-color",
        &format!("--max-count={room}"),
        "--format=%H%x1f%an <%ae>%x1f%aI%x1f%B",
        new,
        "--not",
        "--all",
    ]);
    let out = git::run(c, None, STEP).await?;
    let listed = out
        .split(|b| *b == 0)
        .filter(|r| !r.is_empty())
        .filter_map(|r| {
            let text = String::from_utf8_lossy(r);
            let mut f = text.splitn(4, '\u{1f}');
            let (id, author, date, message) = (f.next()?, f.next()?, f.next()?, f.next()?);
            let message: String = message.trim_end().chars().take(MAX_MESSAGE).collect();
            Some(json!({ "id": id, "author": author, "date": date, "message": message }))
        })
        .collect();
    Ok((listed, count))
}
