//! What `GET /policy` answers: a sandbox's rules, as JSON and as text.

use crate::sandbox::Sandbox;

/// What a sandbox may do, as `GET /policy` on the proxy's address answers it (JSON), so an
/// agent can learn the rules before it tries.
pub(crate) fn describe(sb: &Sandbox, egress_denied: bool) -> serde_json::Value {
    let mut writes = vec![
        "POST /repos/{owner}/{repo}/pulls (head: a branch the sandbox may push)".to_owned(),
        "PATCH /repos/{owner}/{repo}/pulls/{number}".to_owned(),
        "POST /repos/{owner}/{repo}/issues/{number}/comments".to_owned(),
        "POST /repos/{owner}/{repo}/pulls/{number}/comments".to_owned(),
    ];
    writes.extend(sb.cfg.rest.iter().map(|(m, p)| format!("{m} {p}")));
    serde_json::json!({
        "sandbox": sb.name(),
        "mode": sb.cfg.mode.as_str(),
        "merge": sb.may_merge(),
        "repositories": sb.cfg.repos.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "push": {
            "refs": sb.push.patterns,
            "delete": sb.push.allow_delete,
            "inspected": sb.cfg.rules.inspect,
            "force": sb.force.patterns,
            "protected_paths": sb.cfg.rules.protected_paths,
            "max_file_bytes": sb.cfg.rules.max_file_bytes,
            "max_push_bytes": sb.cfg.rules.max_push_bytes,
            "secret_scan": sb.cfg.rules.secret_scan,
        },
        "rest": {
            "reads": "any GET or HEAD under the repositories",
            "writes": writes,
        },
        "graphql": {
            "queries": true,
            "mutations": super::mutations::ALLOWED
                .iter()
                .filter(|m| **m != super::mutations::MERGE || sb.may_merge())
                .collect::<Vec<_>>(),
        },
        "lfs": {
            "download": true,
            "upload": sb.may_push(),
            "locks": sb.may_push(),
        },
        "egress": if egress_denied { "deny" } else { "tunnel (to allowed, non-internal addresses)" },
    })
}

/// [`describe`] as text, one rule a line, for `curl`.
pub(crate) fn describe_text(v: &serde_json::Value) -> String {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, x, out);
                }
            }
            serde_json::Value::Array(a) if a.is_empty() => {
                out.push_str(&format!("{prefix}: (none)\n"))
            }
            serde_json::Value::Array(a) => {
                for x in a {
                    out.push_str(&format!(
                        "{prefix}: {}\n",
                        x.as_str().map_or_else(|| x.to_string(), str::to_owned)
                    ));
                }
            }
            serde_json::Value::String(s) => out.push_str(&format!("{prefix}: {s}\n")),
            other => out.push_str(&format!("{prefix}: {other}\n")),
        }
    }
    let mut out = String::new();
    walk("", v, &mut out);
    out
}
