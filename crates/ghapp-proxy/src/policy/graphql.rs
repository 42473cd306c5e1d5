//! GraphQL (`POST /graphql`): the route, and a body read into a query or the allowed
//! mutations' checks ([`super::mutations`]).

use ghapp_gitproto::graphql;
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode};

use super::{Action, BodyPlan, Plan, Scheme, Verdict, answer, encoded, upstream_url};
use crate::audit::Service;
use crate::respond::Refusal;
use crate::router::Hosts;
use crate::sandbox::Sandbox;

/// `POST /graphql`: read whole and decided on what it would run ([`graphql_body`]); the token
/// is the installation's of the sandbox's first owner.
pub(super) fn graphql(
    sb: &Sandbox,
    hosts: &Hosts,
    method: &Method,
    headers: &HeaderMap,
) -> Verdict {
    let refuse =
        |status, msg: String| answer(Service::Graphql, None, Refusal::graphql(status, msg));
    if *method != Method::POST {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("sandbox {}: GraphQL takes POST, not {method}", sb.name()),
        );
    }
    if let Some(why) = encoded(headers, "a GraphQL body") {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, why);
    }
    let Some(repo) = sb.cfg.repos.first().cloned() else {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("sandbox {} has no repositories", sb.name()),
        );
    };
    match upstream_url(&hosts.api, &hosts.graphql, "") {
        Ok(url) => Verdict {
            service: Service::Graphql,
            repo: None,
            action: Action::Forward(Plan {
                repo,
                url,
                scheme: Scheme::Bearer,
                body: BodyPlan::Graphql,
            }),
        },
        Err(why) => refuse(StatusCode::BAD_REQUEST, why),
    }
}

/// What a GraphQL body asks, once read.
#[derive(Debug)]
pub(crate) enum GraphqlPlan {
    /// A query (the token reaches only the sandbox's repositories), and the body to send: the
    /// query re-printed as it was read.
    Query(Vec<u8>),
    /// Allowed mutations, to be decided on their resolved node ids
    /// ([`super::mutations::decide`]), and the body to send if they pass.
    Mutation {
        checks: Vec<(String, super::mutations::Check)>,
        body: Vec<u8>,
    },
}

/// A GraphQL body: queries pass; subscriptions and mutations off the allow-list are refused,
/// each naming the sandbox and the rule, in GraphQL's error shape so gh and Octokit print it.
pub(crate) fn graphql_body(sb: &Sandbox, body: &[u8]) -> Result<GraphqlPlan, Refusal> {
    let refuse = |msg: String| {
        Err(Refusal::graphql(
            StatusCode::FORBIDDEN,
            format!("sandbox {}: {msg}", sb.name()),
        ))
    };
    match graphql::classify(body) {
        Ok(graphql::Operation::Query { body }) => Ok(GraphqlPlan::Query(body)),
        Ok(graphql::Operation::Subscription) => refuse(
            "GraphQL subscriptions are refused (policy: queries and allowed mutations only)".into(),
        ),
        Ok(graphql::Operation::Mutation(m)) => {
            let mut checks = Vec::new();
            for call in &m.calls {
                match super::mutations::check(call) {
                    Ok(c) => checks.push((call.name.clone(), c)),
                    Err(why) => return refuse(why),
                }
            }
            let ids: usize = checks.iter().map(|(_, c)| c.ids().len()).sum();
            if ids > super::mutations::MAX_IDS {
                return refuse(format!(
                    "the mutation names {ids} nodes, more than the {} one request may",
                    super::mutations::MAX_IDS
                ));
            }
            Ok(GraphqlPlan::Mutation {
                checks,
                body: m.body,
            })
        }
        Err(e) => refuse(e.to_string()),
    }
}
