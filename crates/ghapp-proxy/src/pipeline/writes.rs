//! Writes that come through the API (GraphQL mutations, REST routes), decided as a push is:
//! each described ([`crate::policy::write::Write`]: ref moves from the mirror, a commit from
//! its file changes), the rules applied ([`crate::policy::write::decide`]), then the trust mode
//! on each ([`crate::policy::mode`]). One request's writes are decided together: the first
//! refusal refuses the request; held pull requests and proposals are recorded, and the request
//! is not sent.

use ghapp_gitproto::repo::RepoName;
use hyper::StatusCode;
use serde_json::json;

use super::modes::{Ask, pull_detail};
use super::{Answer, DataPlane, Req};
use crate::inspect::observe::Described;
use crate::policy::mode::{Kind, PullHead, Verdict};
use crate::policy::mutations::Planned;
use crate::policy::write::{self, RefMove, Tip, Write};
use crate::respond::{Form, Refusal};
use crate::sandbox::Sandbox;

/// What the writes of one request came to.
pub(super) enum Decided {
    Forward,
    Refused(Refusal),
    /// Pull requests to hold for a person, each with why.
    Held(Vec<(Ask, String)>),
    /// What to record as proposals (observe mode): kind, description, how to name it.
    Proposed(Vec<(&'static str, Described, String)>),
    /// Sent, as drafts: the heads of the pull requests whose reviewers are requested once
    /// GitHub has opened them (the review flavour).
    Review(Vec<String>),
}

impl DataPlane {
    /// Decides the writes (`name`: what the request calls each) of one request on `repo`.
    pub(super) async fn decide_writes(
        &self,
        sb: &Sandbox,
        repo: &RepoName,
        writes: &[(String, Planned)],
        form: Form,
    ) -> Decided {
        let refuse = |status, why: String| {
            Decided::Refused(Refusal {
                form,
                ..Refusal::text(status, format!("sandbox {}: {why}", sb.name()))
            })
        };
        let mut held = Vec::new();
        let mut proposed = Vec::new();
        let mut review = Vec::new();
        for (name, p) in writes {
            // The rules, on what the write lands.
            let described = match self.describe(sb, repo, p).await {
                Ok(w) => w,
                Err(why) => {
                    return refuse(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("cannot inspect {name}: {why}"),
                    );
                }
            };
            if let Some(w) = &described
                && let Err(refused) = write::decide(sb, w)
            {
                return refuse(StatusCode::FORBIDDEN, format!("{name}: {}", refused.why()));
            }
            // The trust mode.
            let kind = match self.kind(sb, repo, p).await {
                Ok(k) => k,
                Err(r) => return Decided::Refused(Refusal { form, ..r }),
            };
            match self.verdict(sb, &kind) {
                Verdict::Forward => {}
                Verdict::Refuse(why) => {
                    return refuse(StatusCode::FORBIDDEN, format!("{name}: {why}"));
                }
                Verdict::Hold(why) => match p {
                    Planned::CreatePull {
                        head,
                        base,
                        title,
                        body,
                        draft,
                    } => {
                        let ask = Ask {
                            head: head.clone(),
                            base: base.clone(),
                            title: title.clone(),
                            body: body.clone(),
                            draft: *draft,
                        };
                        match ask.checked() {
                            Ok(ask) => held.push((ask, why)),
                            Err(e) => {
                                return refuse(
                                    StatusCode::UNPROCESSABLE_ENTITY,
                                    format!("{name}: {e}"),
                                );
                            }
                        }
                    }
                    _ => return refuse(StatusCode::FORBIDDEN, format!("{name}: {why}")),
                },
                Verdict::Review(why) => match p {
                    // GraphQL's input is sent as it was read: a draft must be asked for.
                    Planned::CreatePull { draft: false, .. } if form == Form::Graphql => {
                        return refuse(
                            StatusCode::FORBIDDEN,
                            format!(
                                "{name}: pull requests of this sandbox open as drafts for its reviewers ({why}): ask for a draft (input.draft: true; gh pr create --draft)"
                            ),
                        );
                    }
                    Planned::CreatePull { head, .. } => review.push(head.clone()),
                    _ => return refuse(StatusCode::FORBIDDEN, format!("{name}: {why}")),
                },
                Verdict::Propose => proposed.push(proposal(name, repo, p, described.as_ref())),
            }
        }
        if !proposed.is_empty() {
            Decided::Proposed(proposed)
        } else if !held.is_empty() {
            Decided::Held(held)
        } else if !review.is_empty() {
            Decided::Review(review)
        } else {
            Decided::Forward
        }
    }

    /// The write a planned mutation makes, for the rules (`None`: it moves no ref).
    async fn describe(
        &self,
        sb: &Sandbox,
        repo: &RepoName,
        p: &Planned,
    ) -> Result<Option<Write>, String> {
        match p {
            Planned::Refs(moves) => {
                // The ref names first: nothing is fetched for a ref the sandbox may not move.
                let names = Write {
                    refs: moves.clone(),
                    ..Write::default()
                };
                if write::decide(sb, &names).is_err() {
                    return Ok(Some(names));
                }
                let mirror = self.mirror_of(sb, repo).await.map_err(|r| r.message)?;
                crate::inspect::ref_moves(&self.git, &mirror, sb, moves.clone())
                    .await
                    .map(Some)
            }
            Planned::Commit {
                refname,
                expected_head,
                additions,
                deletions,
                message,
            } => Ok(Some(write::commit(
                &sb.cfg.rules,
                refname,
                expected_head.as_deref(),
                additions,
                deletions,
                message,
            ))),
            Planned::Blobs(files) => Ok(Some(write::objects(&sb.cfg.rules, files))),
            _ => Ok(None),
        }
    }

    /// Where the inspection fetches `repo` from, with the sandbox's token.
    pub(super) async fn mirror_of(
        &self,
        sb: &Sandbox,
        repo: &RepoName,
    ) -> Result<crate::inspect::Mirror, Refusal> {
        let token = self.tokens.token(sb, repo.owner()).await?;
        Ok(crate::inspect::Mirror {
            host: self.hosts.git.clone(),
            repo: repo.clone(),
            url: format!(
                "https://{}/{}/{}.git",
                self.hosts.git,
                repo.owner(),
                repo.repo()
            ),
            auth: crate::inspect::Auth::basic(token.token.expose()),
        })
    }

    /// What the trust mode needs to know of a planned write.
    async fn kind(&self, sb: &Sandbox, repo: &RepoName, p: &Planned) -> Result<Kind, Refusal> {
        match p {
            Planned::Refs(moves) => {
                for m in moves {
                    let new = match &m.new {
                        Tip::Commit(c) => Some(c.as_str()),
                        _ => None,
                    };
                    let kind = self.head_kind(sb, repo, m, new, &[], &[]).await?;
                    if kind != (Kind::Refs { pull: None }) {
                        return Ok(kind);
                    }
                }
                Ok(Kind::Refs { pull: None })
            }
            Planned::Commit {
                refname,
                expected_head,
                additions,
                deletions,
                ..
            } => {
                let m = RefMove {
                    refname: refname.clone(),
                    old: expected_head.clone(),
                    new: Tip::Child,
                    fast_forward: Some(true),
                    changed: Vec::new(),
                };
                let head = expected_head
                    .as_deref()
                    .or(refname.strip_prefix("refs/heads/"));
                self.head_kind(sb, repo, &m, head, additions, deletions)
                    .await
            }
            Planned::CreatePull {
                head,
                base,
                title,
                body,
                draft,
            } => {
                let ask = Ask {
                    head: head.clone(),
                    base: base.clone(),
                    title: title.clone(),
                    body: body.clone(),
                    draft: *draft,
                };
                self.create_kind(sb, repo, &ask).await
            }
            Planned::Rebase { number, head, base } => {
                self.rebase_kind(sb, repo, *number, head, base).await
            }
            Planned::Merge => Ok(Kind::Merge),
            Planned::Ready { number } => Ok(Kind::Ready { number: *number }),
            Planned::Blobs(_) | Planned::Other => Ok(Kind::Other),
        }
    }

    /// A ref move as the mode sees it: whether it moves the head of a held or open pull
    /// request, and (an open one, assisted) the change that pull request would then show:
    /// GitHub's compare of its base with `new` (a commit GitHub has), plus the file changes a
    /// commit made from them adds.
    async fn head_kind(
        &self,
        sb: &Sandbox,
        repo: &RepoName,
        m: &RefMove,
        new: Option<&str>,
        additions: &[write::FileAddition],
        deletions: &[String],
    ) -> Result<Kind, Refusal> {
        let Some((head, base)) = self.pull_head(sb, repo, &m.refname).await? else {
            return Ok(Kind::Refs { pull: None });
        };
        let head = match head {
            PullHead::Open { number, .. } if sb.cfg.mode == crate::config::Mode::Assisted => {
                let grown = match new {
                    Some(new) => self
                        .github
                        .compare(sb, repo, &base, new)
                        .await?
                        .measure()
                        .grown(additions, deletions),
                    None => crate::policy::mode::Measure::default(),
                };
                PullHead::Open { number, grown }
            }
            other => other,
        };
        Ok(Kind::Refs { pull: Some(head) })
    }

    /// The answer to one request's decided writes, or `Ok` to send it (with the heads of the
    /// pull requests it opens as drafts for review).
    pub(super) async fn answer_writes(
        &self,
        r: &Req,
        repo: &RepoName,
        decided: Decided,
        form: Form,
    ) -> Result<Vec<String>, Answer> {
        match decided {
            Decided::Forward => Ok(Vec::new()),
            Decided::Review(heads) => Ok(heads),
            Decided::Refused(refusal) => {
                let (resp, mut o) = r.refuse(refusal);
                o.repo = Some(repo.to_string());
                Err((resp, o))
            }
            Decided::Held(asks) => Err(crate::audit::telemetry::child(
                &self.audit.telemetry,
                "ghapp.approval",
                self.hold(r, repo, asks, form),
            )
            .await),
            Decided::Proposed(what) => Err(self.propose(r, repo, what, form).await),
        }
    }
}

/// What an observe-mode sandbox's write is recorded as.
fn proposal(
    name: &str,
    repo: &RepoName,
    p: &Planned,
    w: Option<&Write>,
) -> (&'static str, Described, String) {
    match p {
        Planned::CreatePull {
            head,
            base,
            title,
            body,
            draft,
        } => {
            let ask = Ask {
                head: head.clone(),
                base: base.clone(),
                title: title.clone(),
                body: body.clone(),
                draft: *draft,
            };
            let words = format!("the pull request {head} -> {base} in {repo}");
            ("pull_request", pull_detail(&ask), words)
        }
        _ => {
            let refs: Vec<_> = w
                .map(|w| w.refs.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|m| {
                    let (old, new) = m.ids();
                    json!({"ref": m.refname, "old": old, "new": new,
                           "paths": m.changed.iter().map(|(s, p)| json!({"status": s.to_string(), "path": p})).collect::<Vec<_>>()})
                })
                .collect();
            let d = Described::only(json!({ "write": name, "refs": refs }));
            ("write", d, format!("the write {name}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::github::fake::FakeHub;
    use crate::github::{Compare, Pull};
    use crate::policy::write::FileAddition;

    fn repo() -> RepoName {
        RepoName::parse("Octo-Org/Widgets").unwrap()
    }

    fn create(head: &str) -> (String, Planned) {
        (
            "createPullRequest".into(),
            Planned::CreatePull {
                head: head.into(),
                base: "main".into(),
                title: format!("open {head}"),
                body: String::new(),
                draft: false,
            },
        )
    }

    fn compare(files: usize, lines: u64) -> Compare {
        Compare {
            commits: 1,
            additions: lines,
            deletions: 0,
            paths: (0..files).map(|i| format!("f{i}.rs")).collect(),
            ..Compare::default()
        }
    }

    /// A fake GitHub where `agent/small` is a 1-file change, `agent/big` a 6-file, 180-line
    /// one, and `agent/open` is the head of open pull request 7 onto `main`.
    fn hub() -> FakeHub {
        let mut h = FakeHub::default();
        h.compares
            .insert("main...agent/small".into(), compare(1, 3));
        h.compares
            .insert("main...agent/big".into(), compare(6, 180));
        h.compares
            .insert("release...agent/open".into(), compare(9, 900));
        h.pulls.push((
            repo(),
            Pull {
                number: 7,
                head: "agent/open".into(),
                head_repo: Some(repo()),
                base: "main".into(),
                state: "open".into(),
                ..Pull::default()
            },
        ));
        h
    }

    async fn decided(mode: &str, writes: &[(String, Planned)]) -> (Decided, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let gh = Arc::new(hub());
        let (plane, sb) = super::super::tests::plane(mode, gh.clone(), dir.path());
        let d = plane
            .decide_writes(&sb, &repo(), writes, Form::Graphql)
            .await;
        let asked = gh.asked.lock().unwrap().clone();
        (d, asked)
    }

    fn held(d: &Decided) -> Vec<String> {
        match d {
            Decided::Held(asks) => asks.iter().map(|(a, _)| a.head.clone()).collect(),
            _ => Vec::new(),
        }
    }

    #[tokio::test]
    async fn every_pull_request_of_a_request_is_measured() {
        // Finding: with several in one request, only the first was measured.
        let (d, asked) = decided("assisted", &[create("agent/small"), create("agent/big")]).await;
        assert_eq!(held(&d), ["agent/big"]);
        assert!(
            asked.contains(&"compare main...agent/big".to_owned()),
            "{asked:?}"
        );
        let (d, _) = decided("assisted", &[create("agent/big"), create("agent/small")]).await;
        assert_eq!(held(&d), ["agent/big"]);
        let (d, _) = decided("learning", &[create("agent/small"), create("agent/big")]).await;
        assert_eq!(held(&d), ["agent/small", "agent/big"]);
        // Autonomous asks GitHub nothing.
        let (d, asked) = decided("autonomous", &[create("agent/big")]).await;
        assert!(matches!(d, Decided::Forward), "{asked:?}");
        assert!(asked.is_empty(), "{asked:?}");
    }

    #[tokio::test]
    async fn a_base_change_is_measured_again() {
        let rebase = |base: &str| {
            (
                "updatePullRequest".to_owned(),
                Planned::Rebase {
                    number: 7,
                    head: "agent/open".into(),
                    base: base.into(),
                },
            )
        };
        let (d, asked) = decided("assisted", &[rebase("release")]).await;
        let Decided::Refused(r) = d else {
            panic!("{asked:?}")
        };
        assert!(
            r.message
                .contains("the new base makes pull request #7 significant (9 files, over 5)"),
            "{}",
            r.message
        );
        let (d, _) = decided("learning", &[rebase("release")]).await;
        assert!(matches!(d, Decided::Refused(_)));
        let (d, _) = decided("autonomous", &[rebase("release")]).await;
        assert!(matches!(d, Decided::Forward));
    }

    #[tokio::test]
    async fn commits_through_the_api_meet_the_push_rules_and_the_mode() {
        let commit = |path: &str, text: &str, branch: &str| {
            (
                "createCommitOnBranch".to_owned(),
                Planned::Commit {
                    refname: format!("refs/heads/{branch}"),
                    expected_head: Some("abcd".into()),
                    additions: vec![FileAddition {
                        path: path.into(),
                        contents: text.as_bytes().to_vec(),
                    }],
                    deletions: Vec::new(),
                    message: "Add a file".into(),
                },
            )
        };
        // The rules, before anything is asked of GitHub.
        let (d, asked) = decided(
            "autonomous",
            &[commit(".github/workflows/ci.yml", "on: push", "agent/x")],
        )
        .await;
        let Decided::Refused(r) = d else { panic!() };
        assert!(
            r.message
                .contains("protected path .github/workflows/ci.yml (added); rule protected_paths"),
            "{}",
            r.message
        );
        assert!(asked.is_empty(), "{asked:?}");
        // Observe mode records it.
        let (d, _) = decided("observe", &[commit("README.md", "hi", "agent/x")]).await;
        assert!(matches!(d, Decided::Proposed(ref p) if p[0].0 == "write"));
        // Learning: the head of an open pull request is not to be moved.
        let (d, _) = decided("learning", &[commit("README.md", "hi", "agent/open")]).await;
        let Decided::Refused(r) = d else { panic!() };
        assert!(
            r.message.contains("it is the head of pull request #7"),
            "{}",
            r.message
        );
        // Assisted: it may, while the pull request stays small.
        let (d, asked) = decided("assisted", &[commit("README.md", "hi", "agent/open")]).await;
        assert!(matches!(d, Decided::Forward), "{asked:?}");
        assert!(asked.contains(&"open pulls agent/open".to_owned()));
    }
}
