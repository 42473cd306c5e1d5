//! A repository's CODEOWNERS, read as GitHub reads it: each line a pattern (gitignore's
//! syntax, `#` comments) and its owners (`@user`, `@org/team`, or an email, which GitHub maps
//! to a user and the proxy cannot: left out); for a path, the last matching line wins, and a
//! line with no owners leaves the path without any. Pure: the file and the changed paths come
//! from GitHub through the caller.

use globset::{Glob, GlobBuilder, GlobMatcher};

/// Where GitHub looks for the file, in its order.
pub(crate) const PLACES: [&str; 3] = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

/// GitHub ignores a CODEOWNERS file over 3 MB.
pub(crate) const MAX_BYTES: usize = 3 << 20;

/// The most rules read (GitHub's files are far shorter).
const MAX_RULES: usize = 10_000;

/// One line: where it applies, and who owns it.
#[derive(Debug)]
pub(crate) struct Rule {
    matchers: Vec<GlobMatcher>,
    owners: Vec<String>,
}

/// The rules of `text`, in order; lines that are not a pattern GitHub accepts are skipped (as
/// GitHub skips them, marking them as errors in its view of the file).
pub(crate) fn parse(text: &str) -> Vec<Rule> {
    if text.len() > MAX_BYTES {
        return Vec::new();
    }
    text.lines()
        .filter_map(|line| {
            let line = line.split(" #").next().unwrap_or(line).trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut words = line.split_whitespace();
            let pattern = words.next()?;
            let owners = words
                .filter(|w| w.starts_with('@') && w.len() > 1)
                .map(|w| w[1..].to_owned())
                .collect();
            Some(Rule {
                matchers: globs(pattern)?,
                owners,
            })
        })
        .take(MAX_RULES)
        .collect()
}

/// gitignore's pattern as globs over repository paths: `/x` anchored at the root, `x` (no
/// slash inside) anywhere, `x/` a directory, and a match on a directory covers what is in it.
fn globs(pattern: &str) -> Option<Vec<GlobMatcher>> {
    if pattern.starts_with('!') || pattern.contains("\\") || pattern.contains('[') {
        // Negation and character classes are not in GitHub's CODEOWNERS syntax.
        return None;
    }
    let dir = pattern.ends_with('/');
    let p = pattern.trim_end_matches('/');
    let anchored = p.starts_with('/') || p.contains('/');
    let p = p.trim_start_matches('/');
    if p.is_empty() {
        return if pattern == "/" { None } else { Some(vec![]) };
    }
    let base = if anchored {
        p.to_owned()
    } else {
        format!("**/{p}")
    };
    let mut out = vec![format!("{base}/**")];
    if !dir {
        out.push(base);
    }
    out.iter()
        .map(|g| {
            GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .ok()
                .map(|g: Glob| g.compile_matcher())
        })
        .collect()
}

/// The owners of `paths` under `rules`: users (logins) and teams (`org/slug`), each once.
pub(crate) fn owners(rules: &[Rule], paths: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut users, mut teams) = (Vec::new(), Vec::new());
    for path in paths {
        let Some(rule) = rules
            .iter()
            .rev()
            .find(|r| r.matchers.iter().any(|m| m.is_match(path)))
        else {
            continue;
        };
        for o in &rule.owners {
            let list = if o.contains('/') {
                &mut teams
            } else {
                &mut users
            };
            if !list.contains(o) {
                list.push(o.clone());
            }
        }
    }
    (users, teams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_matching_line_wins_as_on_github() {
        let rules = parse(
            "# owners\n\
             *       @octocat\n\
             *.rs    @rustacean @octo-org/rust # a comment\n\
             /docs/  @octo-org/writers\n\
             build/  @builder\n\
             apps/github @hubber\n\
             /scripts/generated.sh\n\
             !negated @nobody\n\
             someone@example.com.txt devs@example.com\n",
        );
        let of = |p: &str| owners(&rules, &[p.to_owned()]);
        let v = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(of("README.md"), (v(&["octocat"]), v(&[])));
        assert_eq!(of("src/lib.rs"), (v(&["rustacean"]), v(&["octo-org/rust"])));
        assert_eq!(of("docs/guide/a.md"), (v(&[]), v(&["octo-org/writers"])));
        assert_eq!(of("src/docs/a.md"), (v(&["octocat"]), v(&[])), "anchored");
        assert_eq!(of("x/build/out.o"), (v(&["builder"]), v(&[])), "anywhere");
        assert_eq!(of("apps/github/x.js"), (v(&["hubber"]), v(&[])));
        assert_eq!(of("scripts/generated.sh"), (v(&[]), v(&[])), "no owners");
        // Several paths: each owner once.
        let (users, teams) = owners(&rules, &["a.rs".into(), "b.rs".into(), "README.md".into()]);
        assert_eq!(
            (users, teams),
            (v(&["rustacean", "octocat"]), v(&["octo-org/rust"]))
        );
        assert!(parse(&"x".repeat(MAX_BYTES + 1)).is_empty());
    }
}
