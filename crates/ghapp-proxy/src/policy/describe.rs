//! What `GET /policy` answers: a sandbox's rules, as JSON and as text.

use crate::admin_api::{BudgetRules, GraphqlRules, LfsRules, PushRules, RestRules, Rules};
use crate::config::BudgetConfig;
use crate::sandbox::Sandbox;

/// What a sandbox may do, as `GET /policy` on the proxy's address answers it (JSON), so an
/// agent can learn the rules before it tries; the admin API shows the same. `used`: what it
/// has spent now.
pub(crate) fn describe(
    sb: &Sandbox,
    egress_denied: bool,
    budget: &BudgetConfig,
    used: crate::budget::Used,
) -> Rules {
    let mut writes = vec![
        "POST /repos/{owner}/{repo}/pulls (head: a branch the sandbox may push)".to_owned(),
        "PATCH /repos/{owner}/{repo}/pulls/{number}".to_owned(),
        "POST /repos/{owner}/{repo}/issues/{number}/comments".to_owned(),
        "POST /repos/{owner}/{repo}/pulls/{number}/comments".to_owned(),
    ];
    writes.extend(sb.cfg.rest.iter().map(|(m, p)| format!("{m} {p}")));
    Rules {
        sandbox: sb.name().to_owned(),
        mode: sb.cfg.mode.as_str().to_owned(),
        reviewers: sb.cfg.reviewers.clone(),
        merge: sb.may_merge(),
        repositories: sb.cfg.repos.iter().map(ToString::to_string).collect(),
        push: PushRules {
            refs: sb.push.patterns.clone(),
            delete: sb.push.allow_delete,
            inspected: sb.cfg.rules.inspect,
            force: sb.force.patterns.clone(),
            protected_paths: sb.cfg.rules.protected_paths.clone(),
            max_file_bytes: sb.cfg.rules.max_file_bytes,
            max_push_bytes: sb.cfg.rules.max_push_bytes,
            secret_scan: sb.cfg.rules.secret_scan,
        },
        rest: RestRules {
            reads: "any GET or HEAD under the repositories".into(),
            writes,
        },
        graphql: GraphqlRules {
            queries: true,
            mutations: super::mutations::ALLOWED
                .iter()
                .filter(|m| **m != super::mutations::MERGE || sb.may_merge())
                .map(|m| (*m).to_owned())
                .collect(),
        },
        lfs: LfsRules {
            download: true,
            upload: sb.may_push(),
            locks: sb.may_push(),
        },
        egress: if egress_denied {
            "deny".into()
        } else {
            "tunnel (to allowed, non-internal addresses)".into()
        },
        budget: BudgetRules {
            weight: sb.cfg.weight,
            content_per_minute: budget.content_per_minute,
            content_per_hour: budget.content_per_hour,
            share_per_minute_alone: crate::budget::share(
                budget.content_per_minute,
                sb.cfg.weight,
                sb.cfg.weight,
            ),
            used_this_minute: used.content_minute,
            used_this_hour: used.content_hour,
            graphql_points_per_minute: budget.graphql_points_per_minute,
            graphql_points_this_minute: used.points_minute,
        },
    }
}
