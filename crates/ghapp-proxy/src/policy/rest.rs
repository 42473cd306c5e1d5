//! The REST API: reads of the sandbox's repositories, writes from the table, and a pull
//! request's head.

use ghapp_gitproto::receive_pack;
use ghapp_gitproto::repo::RepoName;
use ghapp_gitproto::rest::{self, GitWrite, RestKind, RouteError};
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode};

use super::{Action, BodyPlan, Plan, Scheme, Verdict, answer, encoded, upstream_url};
use crate::audit::Service;
use crate::respond::Refusal;
use crate::router::Hosts;
use crate::sandbox::Sandbox;

/// A REST request under the API prefix: any read of the sandbox's repositories, writes from the
/// table or the sandbox's `rest` routes; a pull request's creation read for its head.
pub(super) fn rest(
    sb: &Sandbox,
    hosts: &Hosts,
    api_path: &str,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Verdict {
    let refuse = |status, msg: String| answer(Service::Rest, None, Refusal::json(status, msg));
    let route = match rest::route(method.as_str(), api_path, &sb.cfg.rest) {
        Ok(r) => r,
        Err(RouteError::NotAllowed) => {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "{method} {api_path} is not allowed for sandbox {} (policy: only the repository, pull request and comment routes for its repositories, plus its configured rest routes)",
                    sb.name()
                ),
            );
        }
        Err(RouteError::Path(e)) => {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "{method} {api_path} is refused for sandbox {}: {e}",
                    sb.name()
                ),
            );
        }
    };
    let repo = match sb.own_repo(&route.owner, &route.repo) {
        Ok(r) => r,
        Err(why) => return refuse(StatusCode::FORBIDDEN, why),
    };
    let full = Some(repo.to_string());
    let body = if *method == Method::GET || *method == Method::HEAD {
        BodyPlan::None
    } else if let Some(why) = encoded(headers, "a request body") {
        return answer(
            Service::Rest,
            full,
            Refusal::json(StatusCode::UNSUPPORTED_MEDIA_TYPE, why),
        );
    } else if route.kind == RestKind::CreatePull {
        BodyPlan::PullHead
    } else if let RestKind::UpdatePull(n) = route.kind {
        BodyPlan::OwnPull(n)
    } else if let RestKind::MergePull(n) = route.kind {
        BodyPlan::MergePull(n)
    } else if let RestKind::Write(w) = &route.kind {
        BodyPlan::GitWrite(w.clone())
    } else {
        BodyPlan::Whole
    };
    // The body of a checked request is what was checked: no query rides along with it.
    let query = match (&route.kind, query) {
        (RestKind::Plain, Some(q)) => format!("?{q}"),
        _ => String::new(),
    };
    let path = format!("{}{}", hosts.api_prefix, route.path);
    match upstream_url(&hosts.api, &path, &query) {
        Ok(url) => Verdict {
            service: Service::Rest,
            repo: full,
            action: Action::Forward(Plan {
                repo,
                url,
                scheme: Scheme::Bearer,
                body,
            }),
        },
        Err(why) => answer(
            Service::Rest,
            full,
            Refusal::json(StatusCode::BAD_REQUEST, why),
        ),
    }
}

/// The fields of the REST writes to git data and contents the policy reads (GitHub's names);
/// declared fields given twice are refused.
#[derive(serde::Deserialize)]
struct WriteBody {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default, rename = "ref")]
    refname: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    base: Option<String>,
    #[serde(default)]
    head: Option<String>,
    #[serde(default)]
    tree: Option<Vec<TreeEntry>>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(serde::Deserialize)]
struct TreeEntry {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    content: Option<String>,
}

/// A REST write to git data or contents as what it writes: a contents write is a commit made
/// on its branch; a ref created, moved or deleted is a ref move onto commits GitHub has; a
/// merge moves its base; blobs and trees carry contents. Bodies are read as GitHub reads
/// them; a contents write must name its branch (the write is decided on it).
pub(crate) fn git_write(w: &GitWrite, body: &[u8]) -> Result<super::mutations::Planned, String> {
    use super::mutations::Planned;
    use super::write::{FileAddition, RefMove, Tip};
    use base64::Engine;
    let b: WriteBody = if body.is_empty() {
        serde_json::from_slice(b"{}").map_err(|e| e.to_string())?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| format!("the body is not the JSON GitHub expects: {e}"))?
    };
    let decode = |text: &str, encoding: Option<&str>| match encoding {
        None | Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(text.replace(['\n', '\r'], ""))
            .map_err(|_| "the content is not base64".to_owned()),
        Some("utf-8" | "utf8") => Ok(text.as_bytes().to_vec()),
        Some(other) => Err(format!("the encoding {other:?} is not utf-8 or base64")),
    };
    let refname = |name: &str| {
        if name.starts_with("refs/") {
            name.to_owned()
        } else {
            format!("refs/{name}")
        }
    };
    let moving = |name: String, old: Option<String>, new: Tip| RefMove {
        refname: name,
        old,
        new,
        fast_forward: None,
        changed: Vec::new(),
    };
    Ok(match w {
        GitWrite::Contents { path, delete } => {
            let Some(branch) = b.branch else {
                return Err(
                    "name the branch (\"branch\"): the proxy decides a contents write on the branch it changes"
                        .into(),
                );
            };
            let (additions, deletions) = if *delete {
                (Vec::new(), vec![path.clone()])
            } else {
                let Some(content) = b.content else {
                    return Err("a contents write needs \"content\"".into());
                };
                let file = FileAddition {
                    path: path.clone(),
                    contents: decode(&content, None)?,
                };
                (vec![file], Vec::new())
            };
            Planned::Commit {
                refname: format!("refs/heads/{branch}"),
                expected_head: None,
                additions,
                deletions,
                message: b.message.unwrap_or_default(),
            }
        }
        GitWrite::CreateRef => {
            let (Some(name), Some(sha)) = (b.refname, b.sha) else {
                return Err("creating a ref needs \"ref\" and \"sha\"".into());
            };
            if !name.starts_with("refs/") {
                return Err(format!("{name:?} is not a full ref name (refs/...)"));
            }
            Planned::Refs(vec![moving(name, None, Tip::Commit(sha))])
        }
        GitWrite::Ref { name, delete: true } => Planned::Refs(vec![moving(
            refname(name),
            Some(String::new()),
            Tip::Deleted,
        )]),
        GitWrite::Ref { name, .. } => {
            let Some(sha) = b.sha else {
                return Err("updating a ref needs \"sha\"".into());
            };
            Planned::Refs(vec![moving(
                refname(name),
                Some(String::new()),
                Tip::Commit(sha),
            )])
        }
        GitWrite::Merge => {
            let (Some(base), Some(head)) = (b.base, b.head) else {
                return Err("a merge needs \"base\" and \"head\"".into());
            };
            Planned::Refs(vec![moving(
                format!("refs/heads/{base}"),
                Some(String::new()),
                Tip::Merge(head),
            )])
        }
        GitWrite::Objects => {
            let mut files = Vec::new();
            if let Some(content) = b.content {
                files.push(FileAddition {
                    path: "(a blob)".into(),
                    contents: decode(&content, b.encoding.as_deref())?,
                });
            }
            for e in b.tree.into_iter().flatten() {
                if let Some(content) = e.content {
                    files.push(FileAddition {
                        path: e.path.unwrap_or_default(),
                        contents: content.into_bytes(),
                    });
                }
            }
            Planned::Blobs(files)
        }
        // A commit or tag object: its message meets the secret scan now (its tree and parents
        // are decided when a ref moves onto it).
        GitWrite::Commits => Planned::Blobs(vec![FileAddition {
            path: "the message".into(),
            contents: b.message.unwrap_or_default().into_bytes(),
        }]),
    })
}

/// The fields of `POST .../pulls` the policy reads. Declared fields are refused when given
/// twice (`{"head":"agent/x","head":"main"}` cannot pass one and send the other).
#[derive(serde::Deserialize)]
struct PullBody {
    #[serde(default)]
    head: Option<String>,
    #[serde(default)]
    head_repo: Option<String>,
}

/// `POST .../pulls`: `head` must be a branch the sandbox may push, in the same repository.
pub(crate) fn pull_head(sb: &Sandbox, repo: &RepoName, body: &[u8]) -> Result<(), Refusal> {
    let refuse = |msg: String| Err(Refusal::json(StatusCode::FORBIDDEN, msg));
    let v: PullBody = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return refuse(format!(
                "the pull request body is not the JSON GitHub expects: {e}"
            ));
        }
    };
    if let Some(hr) = v.head_repo.as_deref()
        && !hr.eq_ignore_ascii_case(repo.repo())
        && RepoName::parse(hr).as_ref() != Some(repo)
    {
        return refuse(format!(
            "pull request head_repo {hr:?} is another repository; sandbox {} may open pull requests only from its own branches",
            sb.name()
        ));
    }
    pull_head_branch(sb, repo, v.head.as_deref().unwrap_or_default()).or_else(refuse)
}

/// A pull request's head (`BRANCH` or `OWNER:BRANCH`, REST's `head` and GraphQL's
/// `headRefName`): a branch of `repo` the sandbox may push.
pub(crate) fn pull_head_branch(sb: &Sandbox, repo: &RepoName, head: &str) -> Result<(), String> {
    let branch = match head.split_once(':') {
        Some((o, b)) if o.eq_ignore_ascii_case(repo.owner()) => b,
        Some((o, _)) => {
            return Err(format!(
                "pull request head {head:?} is in {o}'s fork; sandbox {} may open pull requests only from its own branches",
                sb.name()
            ));
        }
        None => head,
    };
    let refname = format!("refs/heads/{branch}");
    if branch.is_empty() || !receive_pack::valid_refname(&refname) || !sb.push.allows_ref(&refname)
    {
        return Err(format!(
            "pull request head {head:?} is not allowed for sandbox {} (policy: heads must match {})",
            sb.name(),
            sb.push.patterns.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::verdict;
    use crate::sandbox::tests::sandbox;
    use ghapp_core::config::GitHubHost;

    #[test]
    fn rest_requests() {
        let h =
            Hosts::new(&GitHubHost::new(Some("https://h:8443/api/v3"), Some("h:8443")).unwrap());
        let a = "h:8443";
        let cases = [
            (
                "GET",
                "/api/v3/repos/octo-org/widgets?x=1",
                "forward https://h:8443/api/v3/repos/octo-org/widgets?x=1 None Octo-Org",
            ),
            (
                "POST",
                "/api/v3/repos/octo-org/widgets/pulls?head=main",
                "forward https://h:8443/api/v3/repos/octo-org/widgets/pulls PullHead Octo-Org",
            ),
            (
                "POST",
                "/api/v3/repos/octo-org/widgets/%70ulls",
                "forward https://h:8443/api/v3/repos/octo-org/widgets/pulls PullHead Octo-Org",
            ),
            (
                "POST",
                "/api/v3/repos/octo-org/widgets/issues/3/comments",
                "forward https://h:8443/api/v3/repos/octo-org/widgets/issues/3/comments Whole Octo-Org",
            ),
            (
                "POST",
                "/api/v3/repos/octo-org/widgets/statuses/abc",
                "forward https://h:8443/api/v3/repos/octo-org/widgets/statuses/abc Whole Octo-Org",
            ),
            (
                "POST",
                "/api/v3/repos/octo-org/widgets/statuses/..%2fmerges",
                "403",
            ),
            (
                "GET",
                "/api/v3/repos/octo-org/widgets/branches/agent%2Fx",
                "forward https://h:8443/api/v3/repos/octo-org/widgets/branches/agent/x None Octo-Org",
            ),
            ("DELETE", "/api/v3/repos/octo-org/widgets", "403"),
            ("GET", "/api/v3/repos/octo-org/gadgets", "403"),
            ("POST", "/api/v3/graphql", "403"),
        ];
        for (m, t, want) in cases {
            assert_eq!(verdict(&h, m, a, t, &[]), want, "{m} {t}");
        }
        assert_eq!(
            verdict(
                &h,
                "POST",
                a,
                "/api/v3/repos/octo-org/widgets/pulls",
                &[("content-encoding", "br")]
            ),
            "415"
        );
    }

    #[test]
    fn rest_writes_are_described_as_writes() {
        use super::super::mutations::Planned;
        use super::super::write::Tip;
        let contents = |delete| GitWrite::Contents {
            path: ".github/workflows/ci.yml".into(),
            delete,
        };
        let Planned::Commit {
            refname, additions, ..
        } = git_write(
            &contents(false),
            br#"{"message":"m","content":"b246IHB1c2gK","branch":"agent/x"}"#,
        )
        .unwrap()
        else {
            panic!()
        };
        assert_eq!(refname, "refs/heads/agent/x");
        assert_eq!(additions[0].contents, b"on: push\n");
        assert!(
            git_write(&contents(false), br#"{"message":"m","content":"eA=="}"#)
                .unwrap_err()
                .contains("name the branch")
        );
        let Planned::Commit { deletions, .. } = git_write(
            &contents(true),
            br#"{"message":"m","sha":"abc","branch":"agent/x"}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(deletions, [".github/workflows/ci.yml"]);
        let Planned::Refs(m) = git_write(
            &GitWrite::Ref {
                name: "heads/agent/x".into(),
                delete: false,
            },
            br#"{"sha":"abcd","force":true}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (m[0].refname.as_str(), m[0].new.clone()),
            ("refs/heads/agent/x", Tip::Commit("abcd".into()))
        );
        let Planned::Refs(m) =
            git_write(&GitWrite::Merge, br#"{"base":"main","head":"agent/x"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(m[0].new, Tip::Merge("agent/x".into()));
        let Planned::Blobs(b) = git_write(
            &GitWrite::Objects,
            br#"{"tree":[{"path":"a.env","mode":"100644","type":"blob","content":"x"}]}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(b[0].path, "a.env");
        assert!(git_write(&GitWrite::CreateRef, br#"{"ref":"heads/x","sha":"a"}"#).is_err());
        assert!(
            git_write(
                &GitWrite::CreateRef,
                br#"{"ref":"refs/heads/x","ref":"refs/heads/y","sha":"a"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn pull_heads() {
        let sb = sandbox();
        let repo = RepoName::parse("Octo-Org/Widgets").unwrap();
        let ok = |b: &str| pull_head(&sb, &repo, b.as_bytes());
        assert!(ok(r#"{"head":"agent/x","base":"main"}"#).is_ok());
        assert!(ok(r#"{"head":"octo-org:agent/x"}"#).is_ok());
        assert!(ok(r#"{"head":"agent/x","head_repo":"widgets"}"#).is_ok());
        for bad in [
            r#"{"head":"main"}"#,
            r#"{"head":"evil:agent/x"}"#,
            r#"{"head":"agent/x","head":"main"}"#,
            r#"{"head":"agent/x","head_repo":"other"}"#,
            r#"{"head":"agent/../main"}"#,
            r#"{"head":7}"#,
            r#"not json"#,
            r#"{}"#,
        ] {
            let r = ok(bad).unwrap_err();
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{bad}");
        }
    }
}
