//! The trust mode's word on a write that the rules allow: forward it, refuse it, hold it for a
//! person, or record it as a proposal. The mode is read here and nowhere else; what the
//! pipeline measured (the size of a pull request's change, whether a ref is the head of a
//! held or open pull request) comes in as values, so the whole table is tested below.
//!
//! | write | observe | learning | assisted | autonomous |
//! |---|---|---|---|---|
//! | a ref (push, ref mutation, commit through the API) | proposal | forward | forward | forward |
//! | a ref that is the head of a held pull request | proposal | refused | refused | forward |
//! | a ref that is the head of an open pull request | proposal | refused | refused if it makes the pull request significant | forward |
//! | create a pull request | proposal | held | held if significant | forward |
//! | change a pull request's base | refused | refused | refused if significant | forward |
//! | merge a pull request | refused | refused | refused | forward with `allow_merge` |
//! | anything else (comments, titles, LFS) | refused | forward | forward | forward |
//!
//! With `reviewers` (the GitHub review flavour of learning and assisted), a person reviews at
//! GitHub instead: a pull request that would be held is opened as a draft with the reviewers
//! requested ([`Verdict::Review`]); marking it ready for review is refused (the person does
//! that), as merging is; pushes to its head and changes of its base are forwarded (the person
//! sees them at GitHub before approving).

use crate::config::{Mode, Significant};

/// What a write is, for the mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Moves refs.
    Refs {
        /// The ref is the head of a pull request that is held or open.
        pull: Option<PullHead>,
    },
    CreatePull {
        measured: Measure,
    },
    /// A pull request's base changed (or to be changed) to `base`.
    Rebase {
        number: u64,
        measured: Measure,
    },
    Merge,
    /// Pull request `number` marked ready for review.
    Ready {
        number: u64,
    },
    /// A write that moves no ref and opens nothing (a comment, a title, an LFS upload).
    Other,
}

/// A pull request whose head a write moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PullHead {
    /// Held for approval `id`, as reviewed at `reviewed` (the head commit shown).
    Held { id: i64, reviewed: String },
    /// Open at GitHub as `number`; `grown` is the change it would show once the write lands.
    Open { number: u64, grown: Measure },
}

/// The size of a change as GitHub's compare (or git, for a change not yet at GitHub) shows
/// it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Measure {
    pub files: u64,
    /// Lines added and deleted.
    pub lines: u64,
    pub paths: Vec<String>,
}

impl Measure {
    /// This change with file changes added on top (a commit GitHub makes from them): their
    /// paths counted once, their added lines counted; deleted lines are not known here, so the
    /// result is a lower bound.
    pub(crate) fn grown(
        mut self,
        additions: &[super::write::FileAddition],
        deletions: &[String],
    ) -> Measure {
        for p in additions.iter().map(|a| &a.path).chain(deletions) {
            if !self.paths.contains(p) {
                self.paths.push(p.clone());
                self.files += 1;
            }
        }
        self.lines += additions
            .iter()
            .map(|a| {
                let b = &a.contents;
                let n = b.iter().filter(|c| **c == b'\n').count() as u64;
                n + u64::from(!b.is_empty() && !b.ends_with(b"\n"))
            })
            .sum::<u64>();
        self
    }
}

/// The mode's word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Forward,
    Refuse(String),
    Hold(String),
    /// Open it as a draft with the sandbox's reviewers requested (the review flavour).
    Review(String),
    Propose,
}

/// What makes a change significant for a sandbox: more files or lines than `limits` allow,
/// or a path `paths` matches. `None` when it is not.
pub(crate) fn significant(
    limits: &Significant,
    paths: &globset::GlobSet,
    m: &Measure,
) -> Option<String> {
    if m.files > limits.files {
        return Some(format!("{} files, over {}", m.files, limits.files));
    }
    if m.lines > limits.lines {
        return Some(format!("{} changed lines, over {}", m.lines, limits.lines));
    }
    m.paths
        .iter()
        .find(|p| paths.is_match(p))
        .map(|p| format!("{p} is a significant path"))
}

/// The mode's verdict on `kind`, for a sandbox in `mode` (`may_merge`: `allow_merge`;
/// `review`: it has reviewers, the GitHub review flavour; `significance` words why a measured
/// change is significant, if it is).
pub(crate) fn verdict(
    mode: Mode,
    may_merge: bool,
    review: bool,
    kind: &Kind,
    significance: &dyn Fn(&Measure) -> Option<String>,
) -> Verdict {
    use Verdict::{Forward, Hold, Propose, Refuse, Review};
    let reviewed = review && matches!(mode, Mode::Learning | Mode::Assisted);
    if reviewed {
        match kind {
            Kind::Ready { number } => {
                return Refuse(format!(
                    "pull request #{number} waits for its reviewers: a person marks it ready for review at GitHub"
                ));
            }
            Kind::CreatePull { measured } => {
                return match (mode, significance(measured)) {
                    (Mode::Learning, _) => Review("is in learning mode".into()),
                    (_, Some(why)) => Review(format!(
                        "is in assisted mode and the change is significant ({why})"
                    )),
                    (_, None) => Forward,
                };
            }
            Kind::Refs {
                pull: Some(PullHead::Open { .. }),
            }
            | Kind::Rebase { .. } => return Forward,
            _ => {}
        }
    }
    match (mode, kind) {
        (Mode::Autonomous, Kind::Merge) if !may_merge => Refuse(
            "merging is for autonomous sandboxes with allow_merge = true".into(),
        ),
        (Mode::Autonomous, _) => Forward,
        (Mode::Observe, Kind::Refs { .. } | Kind::CreatePull { .. }) => Propose,
        (Mode::Observe, _) => Refuse(
            "observe mode records pushes and pull requests as proposals; other writes are refused"
                .into(),
        ),
        (_, Kind::Merge) => Refuse(
            "merging is for autonomous sandboxes with allow_merge = true; in this mode a person merges"
                .into(),
        ),
        (_, Kind::Refs { pull: None } | Kind::Other | Kind::Ready { .. }) => Forward,
        (_, Kind::Refs { pull: Some(PullHead::Held { id, reviewed }) }) => Refuse(format!(
            "its pull request is held for approval {id} as reviewed at {}: push nothing more to it until it is decided, or push to a new branch",
            short(reviewed)
        )),
        (Mode::Learning, Kind::Refs { pull: Some(PullHead::Open { number, .. }) }) => {
            Refuse(format!(
                "it is the head of pull request #{number}, approved as it was reviewed (learning mode): push new work to a new branch and open a pull request for it"
            ))
        }
        (_, Kind::Refs { pull: Some(PullHead::Open { number, grown }) }) => {
            match significance(grown) {
                Some(why) => Refuse(format!(
                    "it would make pull request #{number} significant ({why}): push it to a new branch and open a pull request, which is held for approval"
                )),
                None => Forward,
            }
        }
        (Mode::Learning, Kind::CreatePull { .. }) => Hold("is in learning mode".into()),
        (_, Kind::CreatePull { measured }) => match significance(measured) {
            Some(why) => Hold(format!(
                "is in assisted mode and the change is significant ({why})"
            )),
            None => Forward,
        },
        (Mode::Learning, Kind::Rebase { number, .. }) => Refuse(format!(
            "the base of pull request #{number} was approved as it is (learning mode): open a new pull request against the other base"
        )),
        (_, Kind::Rebase { number, measured }) => match significance(measured) {
            Some(why) => Refuse(format!(
                "the new base makes pull request #{number} significant ({why}): open a new pull request, which is held for approval"
            )),
            None => Forward,
        },
    }
}

/// [`verdict`] for sandbox `sb`, as its configuration says.
pub(crate) fn of_sandbox(sb: &crate::sandbox::Sandbox, kind: &Kind) -> Verdict {
    verdict(
        sb.cfg.mode,
        sb.may_merge(),
        !sb.cfg.reviewers.is_empty(),
        kind,
        &|m: &Measure| significant(&sb.cfg.significant, &sb.significant, m),
    )
}

fn short(oid: &str) -> &str {
    oid.get(..7).unwrap_or(oid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(m: &Measure) -> Option<String> {
        (m.files > 5).then(|| format!("{} files, over 5", m.files))
    }

    fn measure(files: u64) -> Measure {
        Measure {
            files,
            ..Measure::default()
        }
    }

    /// The table in the module's documentation, row by row: mode × kind of write × size.
    #[test]
    fn the_mode_table() {
        let held = Kind::Refs {
            pull: Some(PullHead::Held {
                id: 3,
                reviewed: "abcdef0123".into(),
            }),
        };
        let open = |files| Kind::Refs {
            pull: Some(PullHead::Open {
                number: 7,
                grown: measure(files),
            }),
        };
        let create = |files| Kind::CreatePull {
            measured: measure(files),
        };
        let rebase = |files| Kind::Rebase {
            number: 7,
            measured: measure(files),
        };
        let refs = Kind::Refs { pull: None };
        let ready = Kind::Ready { number: 7 };
        // (kind, then observe, learning, assisted, autonomous: as held, and with reviewers);
        // F forward, R refuse, H hold, V review (a draft, reviewers requested), P propose.
        let rows: Vec<(&str, Kind, [char; 4], [char; 4])> = vec![
            ("a ref", refs, ['P', 'F', 'F', 'F'], ['P', 'F', 'F', 'F']),
            (
                "a held head",
                held,
                ['P', 'R', 'R', 'F'],
                ['P', 'R', 'R', 'F'],
            ),
            (
                "an open head, small",
                open(1),
                ['P', 'R', 'F', 'F'],
                ['P', 'F', 'F', 'F'],
            ),
            (
                "an open head, grown",
                open(9),
                ['P', 'R', 'R', 'F'],
                ['P', 'F', 'F', 'F'],
            ),
            (
                "create, small",
                create(1),
                ['P', 'H', 'F', 'F'],
                ['P', 'V', 'F', 'F'],
            ),
            (
                "create, big",
                create(9),
                ['P', 'H', 'H', 'F'],
                ['P', 'V', 'V', 'F'],
            ),
            (
                "rebase, small",
                rebase(1),
                ['R', 'R', 'F', 'F'],
                ['R', 'F', 'F', 'F'],
            ),
            (
                "rebase, big",
                rebase(9),
                ['R', 'R', 'R', 'F'],
                ['R', 'F', 'F', 'F'],
            ),
            (
                "merge",
                Kind::Merge,
                ['R', 'R', 'R', 'R'],
                ['R', 'R', 'R', 'R'],
            ),
            ("ready", ready, ['R', 'F', 'F', 'F'], ['R', 'R', 'R', 'F']),
            (
                "other",
                Kind::Other,
                ['R', 'F', 'F', 'F'],
                ['R', 'F', 'F', 'F'],
            ),
        ];
        let modes = [
            Mode::Observe,
            Mode::Learning,
            Mode::Assisted,
            Mode::Autonomous,
        ];
        for (what, kind, held, reviewed) in rows {
            for (review, want) in [(false, held), (true, reviewed)] {
                for (mode, w) in modes.iter().zip(want) {
                    let got = match verdict(*mode, false, review, &kind, &big) {
                        Verdict::Forward => 'F',
                        Verdict::Refuse(_) => 'R',
                        Verdict::Hold(_) => 'H',
                        Verdict::Review(_) => 'V',
                        Verdict::Propose => 'P',
                    };
                    assert_eq!(got, w, "{what} in {mode:?}, reviewers: {review}");
                }
            }
        }
        assert_eq!(
            verdict(Mode::Autonomous, true, false, &Kind::Merge, &big),
            Verdict::Forward
        );
        assert_eq!(
            verdict(Mode::Assisted, true, false, &Kind::Merge, &big),
            Verdict::Refuse(
                "merging is for autonomous sandboxes with allow_merge = true; in this mode a person merges".into()
            ),
            "allow_merge counts in autonomous mode only"
        );
    }

    #[test]
    fn file_changes_grow_a_measure() {
        let m = Measure {
            files: 1,
            lines: 3,
            paths: vec!["a".into()],
        }
        .grown(
            &[
                super::super::write::FileAddition {
                    path: "a".into(),
                    contents: b"x\ny\n".to_vec(),
                },
                super::super::write::FileAddition {
                    path: "b".into(),
                    contents: b"z".to_vec(),
                },
            ],
            &["c".into()],
        );
        assert_eq!((m.files, m.lines), (3, 6));
    }

    #[test]
    fn what_makes_a_change_significant() {
        let limits = Significant {
            files: 5,
            lines: 100,
            paths: vec![],
        };
        let mut set = globset::GlobSetBuilder::new();
        set.add(globset::Glob::new("migrations/**").unwrap());
        let set = set.build().unwrap();
        let m = |files, lines, paths: &[&str]| Measure {
            files,
            lines,
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        };
        assert_eq!(significant(&limits, &set, &m(5, 100, &["a.rs"])), None);
        assert_eq!(
            significant(&limits, &set, &m(6, 1, &[])).as_deref(),
            Some("6 files, over 5")
        );
        assert_eq!(
            significant(&limits, &set, &m(1, 180, &[])).as_deref(),
            Some("180 changed lines, over 100")
        );
        assert_eq!(
            significant(&limits, &set, &m(1, 1, &["migrations/1.sql"])).as_deref(),
            Some("migrations/1.sql is a significant path")
        );
    }
}
