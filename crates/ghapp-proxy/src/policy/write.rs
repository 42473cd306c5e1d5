//! Every write to a repository, however it arrives (a git push, a GraphQL mutation, a REST
//! route), described the same way ([`Write`]) and decided by one pure function ([`decide`]).
//!
//! A write moves refs. For each ref it says what the ref pointed at and what it will point at,
//! whether that is a fast-forward, and the *net change* the new tip holds: against the old tip
//! for an update, and for a new ref against where it leaves the default branch (their merge
//! base), whether or not its commits are new to GitHub. So a ref created or moved onto a commit
//! GitHub already has is measured by what it lands, and no sequence of writes can put a
//! protected path at a tip that one write could not. The content rules read the blobs the
//! write brings or lands (sizes, credentials). Several commands on one ref in one push are
//! decided as their combined effect ([`moves`]): a delete and a create of the same ref is a
//! rewrite, and needs `force`.
//!
//! The rules, in order; the first broken refuses the whole write (half a push cannot be
//! forwarded, and a GraphQL request runs whole):
//!
//! | rule | refuses |
//! |---|---|
//! | `push` | a ref outside the sandbox's `push` patterns; a delete without `allow_delete` |
//! | `force` | a ref that is not fast-forwarded, outside `force` |
//! | `protected_paths` | a net change adding, changing or deleting a protected path |
//! | `max_file_bytes` | a blob over the limit |
//! | `secret_scan` | a blob holding a credential (named by path and line, never echoed) |

use ghapp_gitproto::receive_pack::{Command, valid_refname};
use ghapp_gitproto::secrets::Finding;

use crate::sandbox::Sandbox;

/// The all-zero object id git uses for "no object".
const ZERO: &str = "0000000000000000000000000000000000000000";

/// Where a ref ends up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tip {
    /// At this commit.
    Commit(String),
    /// At a commit GitHub makes from the write on top of the old tip (`createCommitOnBranch`, a
    /// contents write): a fast-forward by construction.
    Child,
    /// At a merge GitHub makes of this commit (a branch name or an id) into the old tip: a
    /// fast-forward by construction, landing what the commit brings.
    Merge(String),
    /// Deleted.
    Deleted,
}

/// What one write does to one ref: its combined effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefMove {
    pub refname: String,
    /// Where the ref was; `None` when the write creates it.
    pub old: Option<String>,
    pub new: Tip,
    /// Whether `new` descends from `old`: `None` for a new or deleted ref, or not yet known.
    pub fast_forward: Option<bool>,
    /// The net change at the new tip (`A`dded, `M`odified, `D`eleted, with the path).
    pub changed: Vec<(char, String)>,
}

impl RefMove {
    pub(crate) fn is_delete(&self) -> bool {
        self.new == Tip::Deleted
    }

    /// `old` and `new` as git prints them (the zero id for none), for the audit.
    pub(crate) fn ids(&self) -> (String, String) {
        let old = self.old.clone().unwrap_or_else(|| ZERO.to_owned());
        let new = match &self.new {
            Tip::Commit(c) => c.clone(),
            Tip::Child => "(new commit)".to_owned(),
            Tip::Merge(m) => format!("(a merge of {m})"),
            Tip::Deleted => ZERO.to_owned(),
        };
        (old, new)
    }
}

/// What the blobs a write brings or lands hold that a rule refuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Content {
    /// Blobs over `max_file_bytes`: path (or object id when no tree names it), size.
    pub oversized: Vec<(String, u64)>,
    /// Credentials: path (or object id), what was found.
    pub secrets: Vec<(String, Finding)>,
}

impl Content {
    /// The secret scan over `text`, a name or a message rather than a file (a commit or tag
    /// message, a file or ref name); a finding is named by `what`, which must not echo it.
    pub(crate) fn scan_text(&mut self, what: impl FnOnce() -> String, text: &[u8]) {
        if self.secrets.len() >= 64 {
            return;
        }
        let mut s = ghapp_gitproto::secrets::Scanner::new();
        s.feed(text);
        if let Some(f) = s.finish() {
            self.secrets.push((what(), f));
        }
    }
}

/// A name as a refusal may show it: what the secret scan matches replaced.
pub(crate) fn shown(name: &str) -> String {
    format!("{:?}", ghapp_gitproto::secrets::redact(name))
}

/// A file a write adds or changes, with its bytes (decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileAddition {
    pub path: String,
    pub contents: Vec<u8>,
}

/// One write, as every channel describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Write {
    pub refs: Vec<RefMove>,
    pub content: Content,
    /// An atomic push (git words the refusal of the other refs so).
    pub atomic: bool,
}

/// Why a write is refused: the rule, and every ref with its reason (git prints each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub rule: &'static str,
    pub refs: Vec<(String, String)>,
}

impl Refused {
    /// The reason given for the ref that broke the rule (`ref: why`), for the audit.
    pub(crate) fn reason(&self) -> String {
        self.refs
            .iter()
            .find(|(_, why)| !is_bystander(why))
            .map(|(r, why)| format!("{r}: {why}"))
            .unwrap_or_default()
    }

    /// The reason alone, for a channel that names one write (GraphQL, REST).
    pub(crate) fn why(&self) -> String {
        self.refs
            .iter()
            .find(|(_, why)| !is_bystander(why))
            .map(|(r, why)| {
                if r.is_empty() {
                    why.clone()
                } else {
                    format!("{r}: {why}")
                }
            })
            .unwrap_or_else(|| format!("rule {}", self.rule))
    }
}

const BYSTANDER: &str = "another ref in this push is not allowed";

fn is_bystander(why: &str) -> bool {
    why.ends_with(BYSTANDER)
}

/// Sizes as GitHub words them.
pub(crate) fn mib(bytes: u64) -> String {
    let m = bytes as f64 / (1u64 << 20) as f64;
    if bytes.is_multiple_of(1 << 20) {
        format!("{m:.0} MiB")
    } else {
        format!("{m:.1} MiB")
    }
}

/// A whole write refused for what it holds: every ref gets the reason (a write that moves no
/// ref: one unnamed entry).
pub(crate) fn whole(rule: &'static str, why: String, refs: &[String]) -> Refused {
    let why = format!("{why}; rule {rule}");
    if refs.is_empty() {
        return Refused {
            rule,
            refs: vec![(String::new(), why)],
        };
    }
    Refused {
        rule,
        refs: refs.iter().map(|r| (r.clone(), why.clone())).collect(),
    }
}

/// A push's commands as the moves they make, one per ref (in the order each ref first
/// appears), several commands on one ref combined: from the first's old to the last's new.
pub(crate) fn moves(commands: &[Command]) -> Vec<RefMove> {
    let mut out: Vec<RefMove> = Vec::new();
    for c in commands {
        let new = if c.is_delete() {
            Tip::Deleted
        } else {
            Tip::Commit(c.new.clone())
        };
        match out.iter_mut().find(|m| m.refname == c.refname) {
            Some(m) => m.new = new,
            None => out.push(RefMove {
                refname: c.refname.clone(),
                old: (!c.is_create()).then(|| c.old.clone()),
                new,
                fast_forward: None,
                changed: Vec::new(),
            }),
        }
    }
    out
}

/// A commit GitHub makes on `refname` (at `expected_head`, when the write names it) from file
/// changes the write carries whole (`createCommitOnBranch`, a contents write): its net change
/// is those paths, and its content their bytes, read here (sizes, credentials).
pub(crate) fn commit(
    rules: &crate::config::PushRules,
    refname: &str,
    expected_head: Option<&str>,
    additions: &[FileAddition],
    deletions: &[String],
    message: &str,
) -> Write {
    let mut content = Content::default();
    if rules.secret_scan {
        content.scan_text(|| "the commit message".into(), message.as_bytes());
    }
    for FileAddition {
        path,
        contents: bytes,
    } in additions
    {
        if bytes.len() as u64 > rules.max_file_bytes && content.oversized.len() < 64 {
            content.oversized.push((path.clone(), bytes.len() as u64));
        }
        if rules.secret_scan && content.secrets.len() < 64 {
            let mut s = ghapp_gitproto::secrets::Scanner::new();
            s.feed(bytes);
            if let Some(f) = s.finish() {
                content.secrets.push((path.clone(), f));
            }
        }
    }
    let changed = additions
        .iter()
        .map(|a| ('A', a.path.clone()))
        .chain(deletions.iter().map(|p| ('D', p.clone())))
        .collect();
    Write {
        refs: vec![RefMove {
            refname: refname.to_owned(),
            old: Some(expected_head.unwrap_or_default().to_owned()),
            new: Tip::Child,
            fast_forward: Some(true),
            changed,
        }],
        content,
        atomic: true,
    }
}

/// Objects with contents a write brings without moving a ref (REST's git blobs and trees):
/// the content rules alone.
pub(crate) fn objects(rules: &crate::config::PushRules, files: &[FileAddition]) -> Write {
    let mut w = commit(rules, "", None, files, &[], "");
    w.refs.clear();
    w
}

/// Decides a write: the rules in order, the first broken refuses it. Facts not yet known (a
/// push before its pack is read) pass the rules that need them, so the same function decides
/// on the ref names first and on everything once the facts are in.
pub(crate) fn decide(sb: &Sandbox, w: &Write) -> Result<(), Refused> {
    let bystander = if w.atomic {
        format!("atomic push failed: {BYSTANDER}")
    } else {
        format!("push refused: {BYSTANDER}")
    };
    let per_ref = |rule: &'static str, suffix: bool, why: &dyn Fn(&RefMove) -> Option<String>| {
        let reasons: Vec<Option<String>> = w.refs.iter().map(why).collect();
        if reasons.iter().all(Option::is_none) {
            return Ok(());
        }
        Err(Refused {
            rule,
            refs: w
                .refs
                .iter()
                .zip(reasons)
                .map(|(r, why)| {
                    let why = match why {
                        None => bystander.clone(),
                        Some(w) if suffix => format!("{w}; rule {rule}"),
                        Some(w) => w,
                    };
                    (r.refname.clone(), why)
                })
                .collect(),
        })
    };
    let names = |r: &RefMove| {
        if !valid_refname(&r.refname) {
            return Some(format!("{:?} is not a valid ref name", r.refname));
        }
        if !sb.push.allows_ref(&r.refname) {
            return Some(if sb.push.patterns.is_empty() {
                "pushes are not allowed for this sandbox".into()
            } else {
                format!("pushes allowed only to {}", sb.push.patterns.join(", "))
            });
        }
        (r.is_delete() && !sb.cfg.allow_delete)
            .then(|| "deleting refs is not allowed for this sandbox".into())
    };
    let force = |r: &RefMove| {
        (r.fast_forward == Some(false) && !sb.force.allows_ref(&r.refname)).then(|| {
            let (old, new) = r.ids();
            format!(
                "force-push not allowed: {}..{} is not a fast-forward",
                short(&old),
                short(&new)
            )
        })
    };
    let protected = |r: &RefMove| {
        r.changed
            .iter()
            .find(|(_, p)| sb.protects(p))
            .map(|(s, p)| {
                let how = match s {
                    'A' => "added",
                    'D' => "deleted",
                    _ => "changed",
                };
                format!("protected path {p} ({how})")
            })
    };
    per_ref("push", false, &names)?;
    per_ref("force", true, &force)?;
    per_ref("protected_paths", true, &protected)?;
    let names: Vec<String> = w.refs.iter().map(|r| r.refname.clone()).collect();
    if let Some((path, size)) = w.content.oversized.first() {
        return Err(whole(
            "max_file_bytes",
            format!(
                "file {path} is {}, over {}",
                mib(*size),
                mib(sb.cfg.rules.max_file_bytes)
            ),
            &names,
        ));
    }
    if let Some((path, f)) = w.content.secrets.first() {
        return Err(whole(
            "secret_scan",
            format!("possible {} in {path} line {}", f.kind, f.line),
            &names,
        ));
    }
    if sb.cfg.rules.secret_scan {
        // The names a write gives are as public as the files: the refs it moves, the paths it
        // changes.
        let mut named = Content::default();
        for m in &w.refs {
            named.scan_text(
                || format!("the ref name {}", shown(&m.refname)),
                m.refname.as_bytes(),
            );
            for (_, path) in &m.changed {
                named.scan_text(|| format!("the file name {}", shown(path)), path.as_bytes());
            }
        }
        if let Some((what, f)) = named.secrets.first() {
            return Err(whole(
                "secret_scan",
                format!("possible {} in {what}", f.kind),
                &names,
            ));
        }
    }
    Ok(())
}

fn short(oid: &str) -> &str {
    oid.get(..7).unwrap_or(oid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PushRules;
    use crate::sandbox::tests::sandbox;

    fn change(refname: &str, ff: Option<bool>, changed: &[(char, &str)]) -> RefMove {
        RefMove {
            refname: refname.into(),
            old: Some("1".repeat(40)),
            new: Tip::Commit("2".repeat(40)),
            fast_forward: ff,
            changed: changed.iter().map(|(s, p)| (*s, (*p).to_owned())).collect(),
        }
    }

    fn write(refs: Vec<RefMove>, content: Content) -> Write {
        Write {
            refs,
            content,
            atomic: false,
        }
    }

    fn with(rules: PushRules) -> Sandbox {
        let mut cfg = sandbox().cfg;
        cfg.rules = rules;
        Sandbox::new(cfg)
    }

    #[test]
    fn rules_in_order_and_their_words() {
        let sb = sandbox();
        let none = Content::default();
        let x = "refs/heads/agent/x";
        let ok = |refs: Vec<RefMove>, c: &Content| decide(&sb, &write(refs, c.clone()));
        assert_eq!(
            ok(vec![change(x, Some(true), &[('M', "src/lib.rs")])], &none),
            Ok(())
        );
        assert_eq!(
            ok(vec![change(x, None, &[('A', "README.md")])], &none),
            Ok(())
        );
        let r = ok(
            vec![
                change(x, Some(false), &[]),
                change("refs/heads/agent/y", Some(true), &[]),
            ],
            &none,
        )
        .unwrap_err();
        assert_eq!(r.rule, "force");
        assert_eq!(
            r.refs[0].1,
            "force-push not allowed: 1111111..2222222 is not a fast-forward; rule force"
        );
        assert_eq!(
            r.refs[1].1,
            "push refused: another ref in this push is not allowed"
        );
        assert_eq!(r.reason(), format!("{x}: {}", r.refs[0].1));
        for (status, path, how) in [
            ('A', ".github/workflows/ci.yml", "added"),
            ('M', ".github/workflows/sub/x.yaml", "changed"),
            ('D', ".github/workflows/ci.yml", "deleted"),
            ('A', ".GitHub/Workflows/ci.yml", "added"),
        ] {
            let r = ok(
                vec![change(x, Some(true), &[('M', "a"), (status, path)])],
                &none,
            )
            .unwrap_err();
            assert_eq!(
                r.refs[0].1,
                format!("protected path {path} ({how}); rule protected_paths")
            );
        }
        assert_eq!(
            ok(
                vec![change(x, Some(true), &[('A', ".github/dependabot.yml")])],
                &none
            ),
            Ok(())
        );
        let big = Content {
            oversized: vec![("big.bin".into(), 120 << 20)],
            ..Content::default()
        };
        let r = ok(vec![change(x, Some(true), &[])], &big).unwrap_err();
        assert_eq!(
            r.refs[0].1,
            "file big.bin is 120 MiB, over 100 MiB; rule max_file_bytes"
        );
        let secret = Content {
            secrets: vec![(
                "config/app.env".into(),
                Finding {
                    kind: "GitHub token",
                    line: 3,
                },
            )],
            ..Content::default()
        };
        let r = ok(vec![change(x, Some(true), &[])], &secret).unwrap_err();
        assert_eq!(
            r.refs[0].1,
            "possible GitHub token in config/app.env line 3; rule secret_scan"
        );
    }

    #[test]
    fn ref_names_first_whatever_the_channel() {
        let sb = sandbox();
        let main = RefMove {
            refname: "refs/heads/main".into(),
            old: None,
            new: Tip::Child,
            fast_forward: Some(true),
            changed: vec![('A', "README.md".into())],
        };
        let r = decide(&sb, &write(vec![main.clone()], Content::default())).unwrap_err();
        assert_eq!(
            (r.rule, r.why()),
            (
                "push",
                "refs/heads/main: pushes allowed only to refs/heads/agent/*".to_owned()
            )
        );
        let gone = RefMove {
            refname: "refs/heads/agent/x".into(),
            new: Tip::Deleted,
            ..main.clone()
        };
        let r = decide(&sb, &write(vec![gone], Content::default())).unwrap_err();
        assert!(r.why().contains("deleting refs is not allowed"), "{r:?}");
        let bad = RefMove {
            refname: "refs/heads/agent/../main".into(),
            ..main
        };
        let r = decide(&sb, &write(vec![bad], Content::default())).unwrap_err();
        assert!(r.why().contains("not a valid ref name"), "{r:?}");
    }

    #[test]
    fn commands_on_one_ref_are_decided_as_their_combined_effect() {
        let cmd = |old: &str, new: &str, r: &str| Command {
            old: old.repeat(40),
            new: new.repeat(40),
            refname: r.into(),
        };
        let x = "refs/heads/agent/x";
        // A delete and a create of the same ref: one update from the old tip to the new.
        let m = moves(&[
            cmd("1", "0", x),
            cmd("0", "2", x),
            cmd("0", "3", "refs/heads/agent/y"),
        ]);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].old.as_deref(), Some("1".repeat(40).as_str()));
        assert_eq!(m[0].new, Tip::Commit("2".repeat(40)));
        assert!(!m[0].is_delete());
        assert_eq!(
            (m[1].old.clone(), m[1].refname.as_str()),
            (None, "refs/heads/agent/y")
        );
        // With allow_delete and no force, the rewrite is still a rewrite.
        let mut cfg = sandbox().cfg;
        cfg.allow_delete = true;
        let sb = Sandbox::new(cfg);
        let mut rewrite = m[0].clone();
        rewrite.fast_forward = Some(false);
        let r = decide(&sb, &write(vec![rewrite], Content::default())).unwrap_err();
        assert_eq!(r.rule, "force");
        // A delete alone is a delete.
        let d = moves(&[cmd("1", "0", x)]);
        assert!(d[0].is_delete());
        assert_eq!(decide(&sb, &write(d, Content::default())), Ok(()));
    }

    #[test]
    fn a_commit_made_of_file_changes_is_described_whole() {
        let sb = sandbox();
        let token = format!("ghp_{}", "a1B2".repeat(9));
        let w = commit(
            &sb.cfg.rules,
            "refs/heads/agent/x",
            Some("abcd"),
            &[
                FileAddition {
                    path: "README.md".into(),
                    contents: b"hi\n".to_vec(),
                },
                FileAddition {
                    path: "app.env".into(),
                    contents: format!("X=1\nTOKEN={token}\n").into_bytes(),
                },
            ],
            &[".github/workflows/ci.yml".into()],
            "Add the app",
        );
        assert_eq!(w.refs[0].fast_forward, Some(true));
        assert_eq!(w.content.secrets[0].0, "app.env");
        let r = decide(&sb, &w).unwrap_err();
        assert_eq!(
            (r.rule, r.why()),
            (
                "protected_paths",
                "refs/heads/agent/x: protected path .github/workflows/ci.yml (deleted); rule protected_paths"
                    .to_owned()
            )
        );
        let file = FileAddition {
            path: "app.env".into(),
            contents: token.into_bytes(),
        };
        let w = commit(&sb.cfg.rules, "refs/heads/agent/x", None, &[file], &[], "m");
        let r = decide(&sb, &w).unwrap_err();
        assert!(
            r.why().contains("possible GitHub token in app.env line 1"),
            "{r:?}"
        );
    }

    #[test]
    fn force_and_protected_paths_as_configured() {
        let sb = with(PushRules {
            force: vec!["agent/*".into()],
            protected_paths: vec![],
            ..PushRules::default()
        });
        let r = vec![change(
            "refs/heads/agent/x",
            Some(false),
            &[('A', ".github/workflows/ci.yml")],
        )];
        assert_eq!(decide(&sb, &write(r, Content::default())), Ok(()));
        let r = vec![change("refs/heads/main", Some(false), &[])];
        assert_eq!(
            decide(&sb, &write(r, Content::default())).unwrap_err().rule,
            "push"
        );
        assert_eq!(mib(1536 << 10), "1.5 MiB");
    }
}
