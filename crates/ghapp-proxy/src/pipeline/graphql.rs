//! `POST /graphql`: a query is sent as it was read (re-printed); a mutation's node ids are
//! resolved through GitHub with the sandbox's token ([`crate::github::GitHub::nodes`]), each
//! allowed mutation read into what it writes ([`crate::policy::mutations`]), and the writes
//! decided as every write is ([`super::writes`]).

use bytes::Bytes;
use hyper::StatusCode;

use super::{Answer, Checked, DataPlane, Req};
use crate::policy::mode::{Kind, Verdict};
use crate::policy::{GraphqlPlan, graphql_body, mutations};
use crate::respond::{Form, Refusal};

impl DataPlane {
    /// A GraphQL body decided: the body to send, and (a mutation) the repository whose
    /// owner's token carries it; or the answer.
    pub(super) async fn graphql(&self, r: &Req, bytes: Bytes) -> Result<Checked, Answer> {
        let sb = r.sb();
        let (checks, body) = match graphql_body(sb, &bytes) {
            Err(refusal) => return Err(r.refuse(refusal)),
            Ok(GraphqlPlan::Query(body)) => {
                return Ok(Checked {
                    body: Bytes::from(body),
                    repo: None,
                    reason: String::new(),
                    mutation: false,
                    review: Vec::new(),
                });
            }
            Ok(GraphqlPlan::Mutation { checks, body }) => (checks, body),
        };
        // A merge is the trust mode's to refuse before anything is asked of GitHub.
        if checks
            .iter()
            .any(|(_, c)| matches!(c, mutations::Check::OnPull { merge: true, .. }))
            && let Verdict::Refuse(why) = self.verdict(sb, &Kind::Merge)
        {
            return Err(r.refuse(Refusal::graphql(
                StatusCode::FORBIDDEN,
                format!(
                    "sandbox {}: mutation {} is not allowed: {why}",
                    sb.name(),
                    mutations::MERGE
                ),
            )));
        }
        let ids: Vec<&str> = checks.iter().flat_map(|(_, c)| c.ids()).collect();
        let nodes = match self.github.nodes(sb, &ids).await {
            Ok(n) => n,
            Err(e) => {
                return Err(r.refuse(Refusal {
                    form: Form::Graphql,
                    ..e
                }));
            }
        };
        let (repo, planned) = match mutations::decide(sb, &checks, &nodes) {
            Ok(x) => x,
            Err(why) => {
                return Err(r.refuse(Refusal::graphql(
                    StatusCode::FORBIDDEN,
                    format!("sandbox {}: {why}", sb.name()),
                )));
            }
        };
        let decided = self.decide_writes(sb, &repo, &planned, Form::Graphql).await;
        let review = self.answer_writes(r, &repo, decided, Form::Graphql).await?;
        let names: Vec<&str> = checks.iter().map(|(n, _)| n.as_str()).collect();
        Ok(Checked {
            body: Bytes::from(body),
            repo: Some(repo),
            reason: format!("mutation {}", names.join(",")),
            mutation: true,
            review,
        })
    }
}
