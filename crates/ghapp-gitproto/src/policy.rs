//! Push policy decisions: which ref updates a sandbox may make. Pure; the proxy wires it up.

use crate::receive_pack::{Command, Commands};

/// A sandbox's push rules.
#[derive(Debug, Clone, Default)]
pub struct PushPolicy {
    /// Glob patterns over full ref names; `*` matches any run of characters, `/` included.
    /// A pattern without `refs/` is taken under `refs/heads/`.
    pub patterns: Vec<String>,
    pub allow_delete: bool,
}

/// The verdict on a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Every command with its reason (`ng` lines); the push is refused whole.
    Deny(Vec<(String, String)>),
}

impl PushPolicy {
    pub fn new(patterns: impl IntoIterator<Item = String>, allow_delete: bool) -> Self {
        Self {
            patterns: patterns.into_iter().map(|p| normalize(&p)).collect(),
            allow_delete,
        }
    }

    /// Whether `refname` matches a push pattern.
    pub fn allows_ref(&self, refname: &str) -> bool {
        self.patterns.iter().any(|p| glob(p, refname))
    }

    /// Why one command is refused, if it is.
    pub fn refuse(&self, c: &Command) -> Option<String> {
        if !self.allows_ref(&c.refname) {
            return Some(if self.patterns.is_empty() {
                "pushes are not allowed for this sandbox".into()
            } else {
                format!("pushes allowed only to {}", self.patterns.join(", "))
            });
        }
        if c.is_delete() && !self.allow_delete {
            return Some("deleting refs is not allowed for this sandbox".into());
        }
        None
    }

    /// Decides a whole push. Any refused command refuses the push: the proxy cannot forward half
    /// a pack, and `--atomic` asks for exactly this.
    pub fn decide(&self, cmds: &Commands) -> Decision {
        let refused: Vec<Option<String>> = cmds.commands.iter().map(|c| self.refuse(c)).collect();
        if refused.iter().all(Option::is_none) {
            return Decision::Allow;
        }
        let atomic = cmds.has_capability("atomic");
        Decision::Deny(
            cmds.commands
                .iter()
                .zip(refused)
                .map(|(c, r)| {
                    let reason = r.unwrap_or_else(|| {
                        if atomic {
                            "atomic push failed: another ref in this push is not allowed".into()
                        } else {
                            "push refused: another ref in this push is not allowed".into()
                        }
                    });
                    (c.refname.clone(), reason)
                })
                .collect(),
        )
    }
}

fn normalize(p: &str) -> String {
    if p.starts_with("refs/") {
        p.to_owned()
    } else {
        format!("refs/heads/{p}")
    }
}

/// `*` matches any run of characters (`/` included); everything else literally.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn cmd(old: &str, r: &str) -> Command {
        Command {
            old: old.into(),
            new: if old == Z { A.into() } else { Z.into() },
            refname: r.into(),
        }
    }

    #[test]
    fn globs() {
        let cases = [
            ("refs/heads/agent/*", "refs/heads/agent/x", true),
            ("refs/heads/agent/*", "refs/heads/agent/x/y", true),
            ("refs/heads/agent/*", "refs/heads/agentx", false),
            ("refs/heads/agent/*", "refs/heads/main", false),
            ("refs/heads/main", "refs/heads/main", true),
            ("refs/heads/main", "refs/heads/main2", false),
            ("refs/*/feature-*", "refs/heads/feature-1", true),
            ("*", "anything", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(glob(p, s), want, "{p} {s}");
        }
    }

    #[test]
    fn decisions() {
        let pol = PushPolicy::new(["agent/*".to_string()], false);
        let push = |cmds: Vec<Command>, caps: &[&str]| Commands {
            commands: cmds,
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(
            pol.decide(&push(vec![cmd(Z, "refs/heads/agent/x")], &[])),
            Decision::Allow
        );
        match pol.decide(&push(vec![cmd(Z, "refs/heads/main")], &[])) {
            Decision::Deny(v) => assert_eq!(
                v,
                vec![(
                    "refs/heads/main".into(),
                    "pushes allowed only to refs/heads/agent/*".into()
                )]
            ),
            d => panic!("{d:?}"),
        }
        // Delete refused unless allowed.
        let del = Command {
            old: A.into(),
            new: Z.into(),
            refname: "refs/heads/agent/x".into(),
        };
        assert!(matches!(
            pol.decide(&push(vec![del.clone()], &[])),
            Decision::Deny(_)
        ));
        let pol2 = PushPolicy::new(["agent/*".to_string()], true);
        assert_eq!(pol2.decide(&push(vec![del], &[])), Decision::Allow);
        // Mixed atomic push: refused whole, the allowed ref says why.
        match pol.decide(&push(
            vec![cmd(Z, "refs/heads/agent/x"), cmd(Z, "refs/heads/main")],
            &["atomic"],
        )) {
            Decision::Deny(v) => {
                assert_eq!(v.len(), 2);
                assert!(v[0].1.contains("atomic push failed"));
            }
            d => panic!("{d:?}"),
        }
        // The probe has no command: allowed.
        assert_eq!(pol.decide(&Commands::default()), Decision::Allow);
        // No patterns: nothing may be pushed.
        let none = PushPolicy::default();
        assert!(matches!(
            none.decide(&push(vec![cmd(Z, "refs/heads/agent/x")], &[])),
            Decision::Deny(_)
        ));
    }

    proptest! {
        #[test]
        fn star_matches_everything_and_literal_matches_itself(s in "[a-z/]{0,30}") {
            prop_assert!(glob("*", &s));
            prop_assert!(glob(&s, &s));
            let prefixed = format!("refs/heads/agent/{s}");
            prop_assert!(glob("refs/heads/agent/*", &prefixed));
        }
    }
}
