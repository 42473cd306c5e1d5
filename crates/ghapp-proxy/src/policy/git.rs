//! Git's smart HTTP: which routes pass, and a push decided on its command section.

use ghapp_gitproto::receive_pack::{self, Commands};
use ghapp_gitproto::route::{Endpoint, GitRoute};
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode};

use super::{Action, BodyPlan, Plan, Scheme, Verdict, answer, encoded, upstream_url};
use crate::audit::Service;
use crate::respond::Refusal;
use crate::router::Hosts;
use crate::sandbox::Sandbox;

/// A git smart-HTTP request: git's methods only, the sandbox's repositories, the upstream path
/// built from the parsed route; a push's body read for its command section ([`push`]).
pub(super) fn git(
    sb: &Sandbox,
    hosts: &Hosts,
    route: &GitRoute,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Verdict {
    let service = match route.service(query.unwrap_or("")) {
        Some("git-receive-pack") => Service::GitReceivePack,
        Some(_) => Service::GitUploadPack,
        None => Service::Git,
    };
    if !route.method_allowed(method.as_str()) {
        return answer(
            service,
            None,
            Refusal::text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "{method} is not a git smart-HTTP method for {}: git's smart HTTP uses only GET info/refs, POST git-upload-pack and POST git-receive-pack",
                    route.upstream_path()
                ),
            ),
        );
    }
    let query = match route.endpoint {
        Endpoint::InfoRefs => match route.service(query.unwrap_or("")) {
            Some(s) => format!("?service={s}"),
            None => {
                return answer(
                    service,
                    None,
                    Refusal::text(
                        StatusCode::FORBIDDEN,
                        "only git's smart HTTP passes (info/refs?service=git-upload-pack or git-receive-pack)",
                    ),
                );
            }
        },
        _ => String::new(),
    };
    let repo = match sb.own_repo(&route.owner, &route.repo) {
        Ok(r) => r,
        Err(why) => return answer(service, None, Refusal::text(StatusCode::FORBIDDEN, why)),
    };
    let full = Some(repo.to_string());
    let body = match route.endpoint {
        Endpoint::InfoRefs => BodyPlan::None,
        Endpoint::UploadPack => BodyPlan::Stream,
        Endpoint::ReceivePack => {
            if let Some(why) = encoded(headers, "a push body") {
                return answer(
                    service,
                    full,
                    Refusal::text(StatusCode::UNSUPPORTED_MEDIA_TYPE, why),
                );
            }
            BodyPlan::Push
        }
    };
    match upstream_url(&hosts.git, &route.upstream_path(), &query) {
        Ok(url) => Verdict {
            service,
            repo: full,
            action: Action::Forward(Plan {
                repo,
                url,
                scheme: Scheme::Basic,
                body,
            }),
        },
        Err(why) => answer(service, full, Refusal::text(StatusCode::BAD_REQUEST, why)),
    }
}

/// A refused push: the reason (for the audit) and git's report-status answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PushRefusal {
    pub reason: String,
    pub report: Vec<u8>,
}

/// git's report-status refusing every ref of a push as `refused` says, the message in the side
/// band pointing to the sandbox's rules.
pub(crate) fn push_refusal(
    sb: &Sandbox,
    cmds: &Commands,
    refused: &super::write::Refused,
) -> PushRefusal {
    let reason = refused.reason();
    let msg = format!(
        "ghapp proxy: push refused by sandbox {} policy: {reason} {}",
        sb.name(),
        crate::respond::POLICY_HINT
    );
    PushRefusal {
        report: receive_pack::reject_report(&refused.refs, cmds.sideband(), &msg),
        reason,
    }
}

impl PushRefusal {
    /// git's report-status refusing every ref of `cmds` with `why`, `message` in the side
    /// band and the audit.
    pub(crate) fn every_ref(cmds: &Commands, why: &str, message: String) -> PushRefusal {
        let refused: Vec<(String, String)> = cmds
            .commands
            .iter()
            .map(|c| (c.refname.clone(), why.to_owned()))
            .collect();
        PushRefusal {
            report: receive_pack::reject_report(&refused, cmds.sideband(), &message),
            reason: message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::verdict;
    use crate::sandbox::tests::sandbox;
    use ghapp_core::config::GitHubHost;

    #[test]
    fn git_requests() {
        let h = Hosts::new(
            &GitHubHost::new(Some("https://api.github.com"), Some("github.com")).unwrap(),
        );
        let g = "github.com:443";
        let cases = [
            (
                "GET",
                "/octo-org/widgets/info/refs?service=git-upload-pack",
                "forward https://github.com/octo-org/widgets.git/info/refs?service=git-upload-pack None Octo-Org",
            ),
            (
                "GET",
                "/octo-org/widgets.git/info/refs?service=git-receive-pack&x=1",
                "forward https://github.com/octo-org/widgets.git/info/refs?service=git-receive-pack None Octo-Org",
            ),
            (
                "POST",
                "/octo-org/widgets.git/git-upload-pack?x",
                "forward https://github.com/octo-org/widgets.git/git-upload-pack Stream Octo-Org",
            ),
            (
                "POST",
                "/octo-org/widgets.git/git-receive-pack",
                "forward https://github.com/octo-org/widgets.git/git-receive-pack Push Octo-Org",
            ),
            ("PUT", "/octo-org/widgets.git/git-receive-pack", "405"),
            ("post", "/octo-org/widgets.git/git-receive-pack", "405"),
            ("GET", "/octo-org/widgets.git/git-receive-pack", "405"),
            ("GET", "/octo-org/widgets.git/info/refs", "403"),
            (
                "GET",
                "/octo-org/gadgets.git/info/refs?service=git-upload-pack",
                "403",
            ),
            ("GET", "/octo-org/widgets.git/HEAD", "403"),
        ];
        for (m, t, want) in cases {
            assert_eq!(verdict(&h, m, g, t, &[]), want, "{m} {t}");
        }
        assert_eq!(
            verdict(
                &h,
                "POST",
                g,
                "/octo-org/widgets.git/git-receive-pack",
                &[("content-encoding", "gzip")]
            ),
            "415"
        );
    }

    #[test]
    fn pushes() {
        let sb = sandbox();
        let cmds = |r: &str| {
            receive_pack::parse(
                &{
                    let line = format!(
                        "{} {} {r}\0report-status side-band-64k\n",
                        "0".repeat(40),
                        "1".repeat(40)
                    );
                    let mut v = format!("{:04x}", line.len() + 4).into_bytes();
                    v.extend_from_slice(line.as_bytes());
                    v.extend_from_slice(b"0000");
                    v
                },
                1 << 20,
            )
            .unwrap()
            .unwrap()
        };
        let decide = |c: &Commands| {
            let w = super::super::write::Write {
                refs: super::super::write::moves(&c.commands),
                ..Default::default()
            };
            super::super::write::decide(&sb, &w)
        };
        assert_eq!(decide(&cmds("refs/heads/agent/x")), Ok(()));
        let c = cmds("refs/heads/main");
        let r = push_refusal(&sb, &c, &decide(&c).unwrap_err());
        assert!(
            r.reason
                .contains("pushes allowed only to refs/heads/agent/*"),
            "{}",
            r.reason
        );
        assert!(String::from_utf8_lossy(&r.report).contains("ng refs/heads/main"));
    }
}
