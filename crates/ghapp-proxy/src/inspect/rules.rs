//! The push rules decided on what inspection found: pure, table-tested.

use ghapp_gitproto::secrets::Finding;

use crate::sandbox::Sandbox;

/// What one ref update does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefChange {
    pub refname: String,
    pub old: String,
    pub new: String,
    /// `None` for a new ref; whether `old` is an ancestor of `new` otherwise.
    pub fast_forward: Option<bool>,
    /// The net change (`A`dded, `M`odified, `D`eleted, with the path).
    pub changed: Vec<(char, String)>,
}

/// What the pushed objects hold that a rule refuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Content {
    /// Objects over `max_file_bytes`: path (or object id when no pushed tree names it), size.
    pub oversized: Vec<(String, u64)>,
    /// Credentials: path (or object id), what was found.
    pub secrets: Vec<(String, Finding)>,
}

/// Why a push is refused: the rule, and every ref with its reason (git prints each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub rule: &'static str,
    pub refs: Vec<(String, String)>,
}

impl Refused {
    /// The reason git shows for the ref that broke the rule, for the audit.
    pub(crate) fn reason(&self) -> String {
        self.refs
            .iter()
            .find(|(_, why)| !why.starts_with("push refused: another ref"))
            .map(|(r, why)| format!("{r}: {why}"))
            .unwrap_or_default()
    }
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

/// A whole push refused for what its pack holds: every ref gets the reason.
pub(crate) fn whole(rule: &'static str, why: String, refs: &[String]) -> Refused {
    Refused {
        rule,
        refs: refs
            .iter()
            .map(|r| (r.clone(), format!("{why}; rule {rule}")))
            .collect(),
    }
}

/// The rules in order (force, protected paths, file size, secrets); the first broken refuses
/// the push.
pub(crate) fn decide(sb: &Sandbox, refs: &[RefChange], content: &Content) -> Result<(), Refused> {
    let per_ref = |rule: &'static str, why: &dyn Fn(&RefChange) -> Option<String>| {
        let reasons: Vec<Option<String>> = refs.iter().map(why).collect();
        if reasons.iter().all(Option::is_none) {
            return None;
        }
        Some(Refused {
            rule,
            refs: refs
                .iter()
                .zip(reasons)
                .map(|(r, why)| {
                    let why = why.map_or_else(
                        || "push refused: another ref in this push is not allowed".to_owned(),
                        |w| format!("{w}; rule {rule}"),
                    );
                    (r.refname.clone(), why)
                })
                .collect(),
        })
    };
    let force = |r: &RefChange| {
        (r.fast_forward == Some(false) && !sb.force.allows_ref(&r.refname)).then(|| {
            format!(
                "force-push not allowed: {}..{} is not a fast-forward",
                short(&r.old),
                short(&r.new)
            )
        })
    };
    let protected = |r: &RefChange| {
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
    if let Some(r) = per_ref("force", &force) {
        return Err(r);
    }
    if let Some(r) = per_ref("protected_paths", &protected) {
        return Err(r);
    }
    let names: Vec<String> = refs.iter().map(|r| r.refname.clone()).collect();
    if let Some((path, size)) = content.oversized.first() {
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
    if let Some((path, f)) = content.secrets.first() {
        return Err(whole(
            "secret_scan",
            format!("possible {} in {path} line {}", f.kind, f.line),
            &names,
        ));
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

    fn change(refname: &str, ff: Option<bool>, changed: &[(char, &str)]) -> RefChange {
        RefChange {
            refname: refname.into(),
            old: "1".repeat(40),
            new: "2".repeat(40),
            fast_forward: ff,
            changed: changed.iter().map(|(s, p)| (*s, (*p).to_owned())).collect(),
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
        let ok = |refs: &[RefChange], c: &Content| decide(&sb, refs, c);
        assert_eq!(
            ok(&[change(x, Some(true), &[('M', "src/lib.rs")])], &none),
            Ok(())
        );
        assert_eq!(ok(&[change(x, None, &[('A', "README.md")])], &none), Ok(()));
        let r = ok(
            &[
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
                &[change(x, Some(true), &[('M', "a"), (status, path)])],
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
                &[change(x, Some(true), &[('A', ".github/dependabot.yml")])],
                &none
            ),
            Ok(())
        );
        let big = Content {
            oversized: vec![("big.bin".into(), 120 << 20)],
            ..Content::default()
        };
        let r = ok(&[change(x, Some(true), &[])], &big).unwrap_err();
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
        let r = ok(&[change(x, Some(true), &[])], &secret).unwrap_err();
        assert_eq!(
            r.refs[0].1,
            "possible GitHub token in config/app.env line 3; rule secret_scan"
        );
    }

    #[test]
    fn force_and_protected_paths_as_configured() {
        let sb = with(PushRules {
            force: vec!["agent/*".into()],
            protected_paths: vec![],
            ..PushRules::default()
        });
        let r = [change(
            "refs/heads/agent/x",
            Some(false),
            &[('A', ".github/workflows/ci.yml")],
        )];
        assert_eq!(decide(&sb, &r, &Content::default()), Ok(()));
        let r = [change("refs/heads/main", Some(false), &[])];
        assert_eq!(
            decide(&sb, &r, &Content::default()).unwrap_err().rule,
            "force"
        );
        assert_eq!(mib(1536 << 10), "1.5 MiB");
    }
}
