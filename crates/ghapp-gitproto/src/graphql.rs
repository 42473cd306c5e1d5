//! A GraphQL request to GitHub (`POST /graphql`), read once as the proxy decides it: the body
//! bounded and parsed with a real GraphQL parser, the operation chosen by `operationName`,
//! fragments and variables resolved. What comes out is what GitHub would execute: a query, a
//! subscription, or the mutation fields with their arguments (aliases kept apart from names).
//!
//! What is forwarded is what was decided on: the chosen operation and the fragments it uses,
//! printed again from the parsed document ([`Mutation::body`], `Operation::Query::body`), and
//! that text parsed once more and checked to decide the same (still a query; the same mutation
//! calls). Anything the parser read differently from GitHub (a key given twice in an input
//! object, which the parser keeps once; another operation in the document; a text GitHub would
//! read as another kind of operation) never reaches GitHub as written.
//!
//! Conservative where GitHub could skip something: a mutation field under `@skip` or
//! `@include` is still listed, so a policy that checks every listed field checks a superset of
//! what runs.
//!
//! # Security
//! The parser recurses; a hostile body could nest brackets until the stack runs out. The text is
//! scanned first and refused past [`MAX_DEPTH`] levels of `{`, `[` or `(` (strings and comments
//! skipped), and fragment spreads are followed at most [`MAX_DEPTH`] deep, so neither parsing
//! nor resolving can overflow.

use std::collections::{HashMap, HashSet};

use graphql_parser::query::{
    Definition, Document, FragmentDefinition, OperationDefinition, Selection, SelectionSet,
    TypeCondition, Value,
};
use serde_json::{Map, Value as Json};

/// The largest request body read (GitHub's own queries from gh are a few KiB).
pub const MAX_BODY: usize = 256 * 1024;
/// The deepest nesting of `{`, `[` and `(` accepted, and of fragment spreads.
pub const MAX_DEPTH: usize = 64;
/// The most mutation fields one request may run, counted through its fragments before any is
/// expanded (a fragment spread twice counts twice, as GitHub would run it twice).
pub const MAX_FIELDS: u64 = 64;

/// Why a body is not a GraphQL request the proxy can decide on. Each is refused, never
/// forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphqlError {
    #[error("the GraphQL body is larger than {} KiB", MAX_BODY / 1024)]
    TooLarge,
    #[error("the GraphQL body is not a JSON object with a \"query\" string: {0}")]
    NotJson(String),
    #[error("the GraphQL document nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error(
        "the GraphQL mutation runs more than {MAX_FIELDS} fields (counted through its fragments)"
    )]
    TooMany,
    #[error("the GraphQL document does not parse: {0}")]
    Syntax(String),
    #[error("{0}")]
    Operation(String),
}

/// What the request asks GitHub to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// A query, and the body to forward (re-printed, as a mutation's is).
    Query {
        body: Vec<u8>,
    },
    Subscription,
    Mutation(Mutation),
}

/// A mutation as GitHub would run it, and the body that says exactly that.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// The mutation fields, in document order.
    pub calls: Vec<Call>,
    /// The request body to forward: the operation and its fragments re-printed, the
    /// variables re-serialised.
    pub body: Vec<u8>,
}

/// One mutation field as GitHub would run it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The field's name (`createPullRequest`), whatever alias it was given.
    pub name: String,
    /// Its arguments with the variables substituted (a variable not given is `null`).
    pub arguments: Map<String, Json>,
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Body {
    query: String,
    #[serde(
        default,
        rename = "operationName",
        skip_serializing_if = "Option::is_none"
    )]
    operation_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variables: Option<Map<String, Json>>,
}

/// Reads a `POST /graphql` body.
pub fn classify(body: &[u8]) -> Result<Operation, GraphqlError> {
    if body.len() > MAX_BODY {
        return Err(GraphqlError::TooLarge);
    }
    // Every key is declared, so one given twice is refused (serde's "duplicate field"): the
    // query decided on is the one sent.
    let b: Body = serde_json::from_slice(body).map_err(|e| GraphqlError::NotJson(e.to_string()))?;
    let (op, calls) = read(&b)?;
    let (printed, mutation) = match op {
        Kind::Subscription => return Ok(Operation::Subscription),
        Kind::Query(printed) => (printed, false),
        Kind::Mutation(printed) => (printed, true),
    };
    // What goes upstream is the re-printed text: it must decide the same.
    let forward = Body {
        query: printed,
        operation_name: b.operation_name,
        variables: b.variables,
    };
    let same = match read(&forward)? {
        (Kind::Query(_), _) => !mutation,
        (Kind::Mutation(_), again) => mutation && again == calls,
        (Kind::Subscription, _) => false,
    };
    if !same {
        return Err(GraphqlError::Operation(
            "the GraphQL operation does not read the same once re-printed".into(),
        ));
    }
    let body = serde_json::to_vec(&forward).map_err(|e| GraphqlError::Operation(e.to_string()))?;
    Ok(if mutation {
        Operation::Mutation(Mutation { calls, body })
    } else {
        Operation::Query { body }
    })
}

enum Kind {
    /// The operation and the fragments it uses, printed.
    Query(String),
    Subscription,
    /// The operation and the fragments it uses, printed.
    Mutation(String),
}

/// `op` and the fragments it spreads, printed: the document that is forwarded.
fn print<'d>(
    op: &'d OperationDefinition<'_, String>,
    set: &'d SelectionSet<'_, String>,
    fragments: &[&'d FragmentDefinition<'_, String>],
) -> String {
    // Every fragment the operation spreads, at any depth, and only those: GitHub refuses an
    // unused one.
    let mut used = Vec::new();
    spreads(set, fragments, &mut used);
    let mut printed = op.to_string();
    for f in fragments.iter().filter(|f| used.contains(&f.name.as_str())) {
        printed.push('\n');
        printed.push_str(&f.to_string());
    }
    printed
}

/// The chosen operation of `b` and, for a mutation, its fields and their arguments.
fn read(b: &Body) -> Result<(Kind, Vec<Call>), GraphqlError> {
    check_depth(&b.query)?;
    let doc: Document<'_, String> = graphql_parser::parse_query(&b.query)
        .map_err(|e| GraphqlError::Syntax(e.to_string().replace('\n', " ")))?;
    let op = chosen(&doc, b.operation_name.as_deref())?;
    match op {
        OperationDefinition::Query(q) => Ok((
            Kind::Query(print(op, &q.selection_set, &fragments(&doc)?)),
            Vec::new(),
        )),
        OperationDefinition::SelectionSet(set) => {
            Ok((Kind::Query(print(op, set, &fragments(&doc)?)), Vec::new()))
        }
        OperationDefinition::Subscription(_) => Ok((Kind::Subscription, Vec::new())),
        OperationDefinition::Mutation(m) => {
            let mut variables = b.variables.clone().unwrap_or_default();
            for d in &m.variable_definitions {
                if !variables.contains_key(&d.name)
                    && let Some(v) = &d.default_value
                {
                    variables.insert(d.name.clone(), json(v, &Map::new())?);
                }
            }
            let fragments = fragments(&doc)?;
            // Counted first, each fragment once: a document whose fragments spread one another
            // twice over runs 2^k fields, and is refused before one is built.
            let mut memo = HashMap::new();
            if fields(&m.selection_set, &fragments, &mut memo, 0)? > MAX_FIELDS {
                return Err(GraphqlError::TooMany);
            }
            let mut w = Walk {
                fragments: &fragments,
                variables: &variables,
                calls: Vec::new(),
            };
            w.collect(&m.selection_set, 0)?;
            Ok((
                Kind::Mutation(print(op, &m.selection_set, &fragments)),
                w.calls,
            ))
        }
    }
}

/// The operation `name` selects, or the only one.
fn chosen<'d, 'a>(
    doc: &'d Document<'a, String>,
    name: Option<&str>,
) -> Result<&'d OperationDefinition<'a, String>, GraphqlError> {
    let ops: Vec<&OperationDefinition<'a, String>> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Operation(o) => Some(o),
            Definition::Fragment(_) => None,
        })
        .collect();
    let op_name = |o: &OperationDefinition<'a, String>| -> Option<String> {
        match o {
            OperationDefinition::Query(q) => q.name.clone(),
            OperationDefinition::Mutation(m) => m.name.clone(),
            OperationDefinition::Subscription(s) => s.name.clone(),
            OperationDefinition::SelectionSet(_) => None,
        }
    };
    let fail = |m: String| Err(GraphqlError::Operation(m));
    match (name, ops.as_slice()) {
        (_, []) => fail("the GraphQL document has no operation".into()),
        (None, [only]) => Ok(only),
        (None, _) => {
            fail("the GraphQL document has several operations and no operationName".into())
        }
        (Some(n), _) => {
            let named: Vec<_> = ops
                .iter()
                .filter(|o| op_name(o).as_deref() == Some(n))
                .collect();
            match named.as_slice() {
                [one] => Ok(one),
                [] => fail(format!("no operation named {n:?} in the GraphQL document")),
                _ => fail(format!("the operation name {n:?} is used twice")),
            }
        }
    }
}

fn fragments<'d, 'a>(
    doc: &'d Document<'a, String>,
) -> Result<Vec<&'d FragmentDefinition<'a, String>>, GraphqlError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for d in &doc.definitions {
        if let Definition::Fragment(f) = d {
            if !seen.insert(f.name.as_str()) {
                return Err(GraphqlError::Operation(format!(
                    "the fragment name {:?} is used twice",
                    f.name
                )));
            }
            out.push(f);
        }
    }
    Ok(out)
}

/// The mutation fields of `set`, spreads and inline fragments followed.
struct Walk<'w, 'a> {
    fragments: &'w [&'w FragmentDefinition<'a, String>],
    variables: &'w Map<String, Json>,
    calls: Vec<Call>,
}

/// How many fields the top of `set` runs, through its inline fragments and spreads, each
/// fragment's count computed once (`memo`): linear in the document, whatever it expands to.
fn fields<'d>(
    set: &'d SelectionSet<'_, String>,
    fragments: &[&'d FragmentDefinition<'_, String>],
    memo: &mut HashMap<&'d str, u64>,
    depth: usize,
) -> Result<u64, GraphqlError> {
    if depth > MAX_DEPTH {
        return Err(GraphqlError::TooDeep);
    }
    let mut n = 0u64;
    for sel in &set.items {
        n = n.saturating_add(match sel {
            Selection::Field(_) => 1,
            Selection::InlineFragment(i) => fields(&i.selection_set, fragments, memo, depth + 1)?,
            Selection::FragmentSpread(s) => match memo.get(s.fragment_name.as_str()) {
                Some(k) => *k,
                None => {
                    let Some(f) = fragments.iter().find(|f| f.name == s.fragment_name) else {
                        return Err(GraphqlError::Operation(format!(
                            "the fragment {:?} is not defined",
                            s.fragment_name
                        )));
                    };
                    let k = fields(&f.selection_set, fragments, memo, depth + 1)?;
                    memo.insert(f.name.as_str(), k);
                    k
                }
            },
        });
    }
    Ok(n)
}

/// The names of the fragments `set` spreads, directly or through other fragments, each once
/// (in the order first spread).
fn spreads<'d>(
    set: &'d SelectionSet<'_, String>,
    fragments: &[&'d FragmentDefinition<'_, String>],
    out: &mut Vec<&'d str>,
) {
    let mut seen = HashSet::new();
    spreads_into(set, fragments, out, &mut seen);
}

fn spreads_into<'d>(
    set: &'d SelectionSet<'_, String>,
    fragments: &[&'d FragmentDefinition<'_, String>],
    out: &mut Vec<&'d str>,
    seen: &mut HashSet<&'d str>,
) {
    for sel in &set.items {
        match sel {
            Selection::Field(f) => spreads_into(&f.selection_set, fragments, out, seen),
            Selection::InlineFragment(i) => spreads_into(&i.selection_set, fragments, out, seen),
            Selection::FragmentSpread(s) => {
                if let Some(f) = fragments.iter().find(|f| f.name == s.fragment_name)
                    && seen.insert(f.name.as_str())
                {
                    out.push(f.name.as_str());
                    spreads_into(&f.selection_set, fragments, out, seen);
                }
            }
        }
    }
}

impl<'w, 'a> Walk<'w, 'a> {
    fn collect(
        &mut self,
        set: &'w SelectionSet<'a, String>,
        depth: usize,
    ) -> Result<(), GraphqlError> {
        if depth > MAX_DEPTH {
            return Err(GraphqlError::TooDeep);
        }
        for sel in &set.items {
            match sel {
                Selection::Field(f) => {
                    let mut arguments = Map::new();
                    for (k, v) in &f.arguments {
                        if arguments
                            .insert(k.clone(), json(v, self.variables)?)
                            .is_some()
                        {
                            return Err(GraphqlError::Operation(format!(
                                "the argument {k:?} of {} is given twice",
                                f.name
                            )));
                        }
                    }
                    self.calls.push(Call {
                        name: f.name.clone(),
                        arguments,
                    });
                }
                Selection::InlineFragment(i) => {
                    on_mutation(i.type_condition.as_ref())?;
                    self.collect(&i.selection_set, depth + 1)?;
                }
                Selection::FragmentSpread(s) => {
                    let fragments = self.fragments;
                    let Some(f) = fragments.iter().find(|f| f.name == s.fragment_name) else {
                        return Err(GraphqlError::Operation(format!(
                            "the fragment {:?} is not defined",
                            s.fragment_name
                        )));
                    };
                    on_mutation(Some(&f.type_condition))?;
                    self.collect(&f.selection_set, depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

fn on_mutation(cond: Option<&TypeCondition<'_, String>>) -> Result<(), GraphqlError> {
    match cond {
        None => Ok(()),
        Some(TypeCondition::On(t)) if t == "Mutation" => Ok(()),
        Some(TypeCondition::On(t)) => Err(GraphqlError::Operation(format!(
            "a fragment on {t} at the top of a mutation"
        ))),
    }
}

/// A GraphQL value as JSON, variables substituted.
/// A literal or variable as JSON, the variables substituted (one not given is `null`). A
/// number JSON cannot hold exactly is refused rather than decided on as something else.
fn json(v: &Value<'_, String>, variables: &Map<String, Json>) -> Result<Json, GraphqlError> {
    let inexact =
        || GraphqlError::Operation("a number in the GraphQL document is out of range".into());
    Ok(match v {
        Value::Variable(name) => variables.get(name).cloned().unwrap_or(Json::Null),
        Value::Int(n) => Json::from(n.as_i64().ok_or_else(inexact)?),
        Value::Float(f) => Json::Number(serde_json::Number::from_f64(*f).ok_or_else(inexact)?),
        Value::String(s) => Json::String(s.clone()),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Null => Json::Null,
        Value::Enum(e) => Json::String(e.clone()),
        Value::List(l) => Json::Array(
            l.iter()
                .map(|x| json(x, variables))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Json::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), json(x, variables)?)))
                .collect::<Result<_, GraphqlError>>()?,
        ),
    })
}

fn check_depth(text: &str) -> Result<(), GraphqlError> {
    let b = text.as_bytes();
    let (mut i, mut depth) = (0, 0usize);
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                    // `\"""` is an escaped triple quote inside a block string.
                    i += if b[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(GraphqlError::TooDeep);
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(query: &str, name: Option<&str>, vars: Json) -> Vec<u8> {
        json!({"query": query, "operationName": name, "variables": vars})
            .to_string()
            .into_bytes()
    }

    fn calls(op: Operation) -> Vec<(String, Json)> {
        match op {
            Operation::Mutation(m) => m
                .calls
                .into_iter()
                .map(|c| (c.name, Json::Object(c.arguments)))
                .collect(),
            other => panic!("not a mutation: {other:?}"),
        }
    }

    /// Fragments that each spread the next one twice: `2^k` fields from a document of `k`
    /// lines.
    fn fan_out(k: usize, kind: &str) -> Vec<u8> {
        let mut q = format!("{kind} {{ ...F0 }}\n");
        for i in 0..k {
            q.push_str(&format!(
                "fragment F{i} on {} {{ ...F{} ...F{} }}\n",
                if kind == "mutation" {
                    "Mutation"
                } else {
                    "Query"
                },
                i + 1,
                i + 1
            ));
        }
        q.push_str(&format!(
            "fragment F{k} on {} {{ {} }}\n",
            if kind == "mutation" {
                "Mutation"
            } else {
                "Query"
            },
            if kind == "mutation" {
                "addComment(input: {subjectId: \"x\", body: \"y\"}) { clientMutationId }"
            } else {
                "viewer { login }"
            }
        ));
        json!({"query": q}).to_string().into_bytes()
    }

    #[test]
    fn a_fan_out_of_fragments_is_counted_before_it_is_expanded() {
        let start = std::time::Instant::now();
        assert_eq!(
            classify(&fan_out(24, "mutation")),
            Err(GraphqlError::TooMany)
        );
        assert_eq!(
            classify(&fan_out(40, "mutation")),
            Err(GraphqlError::TooMany)
        );
        // A query is printed with each fragment once, whatever it expands to.
        assert!(matches!(
            classify(&fan_out(40, "query")),
            Ok(Operation::Query { .. })
        ));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        // Under the bound, each spread runs (and counts) as often as GitHub would run it.
        let Operation::Mutation(m) = classify(&fan_out(5, "mutation")).unwrap() else {
            panic!()
        };
        assert_eq!(m.calls.len(), 32);
        let cycle = json!({"query": "mutation { ...A } fragment A on Mutation { ...B } fragment B on Mutation { ...A }"});
        assert_eq!(
            classify(cycle.to_string().as_bytes()),
            Err(GraphqlError::TooDeep)
        );
    }

    #[test]
    fn queries_and_subscriptions() {
        // gh's own shapes: a named query with variables, an anonymous selection set.
        let q = "query RepositoryInfo($owner: String!, $name: String!) { repository(owner: $owner, name: $name) { id name } }";
        assert!(matches!(
            classify(&body(q, None, json!({"owner": "o", "name": "r"}))).unwrap(),
            Operation::Query { .. }
        ));
        assert!(matches!(
            classify(br#"{"query":"{ viewer { login } }"}"#).unwrap(),
            Operation::Query { .. }
        ));
        assert_eq!(
            classify(&body("subscription S { x }", None, json!(null))).unwrap(),
            Operation::Subscription
        );
    }

    #[test]
    fn mutations_resolved_as_github_runs_them() {
        // gh pr create's mutation, with its input in a variable.
        let q = "mutation PullRequestCreate($input: CreatePullRequestInput!) { createPullRequest(input: $input) { pullRequest { id url } } }";
        let input = json!({"repositoryId": "R_1", "headRefName": "agent/x", "baseRefName": "main", "title": "t"});
        assert_eq!(
            calls(classify(&body(q, Some("PullRequestCreate"), json!({"input": input}))).unwrap()),
            [("createPullRequest".to_owned(), json!({"input": input}))]
        );
        // Aliases do not hide the field; fragments and inline fragments on Mutation are
        // followed; a second operation is chosen by name; literals and enums become JSON.
        let q = r#"
            query Harmless { viewer { login } }
            mutation Sneaky {
              ok: addComment(input: {subjectId: "PR_1", body: "hi"}) { clientMutationId }
              ...More
              ... on Mutation { deleteRef(input: {refId: "REF_main"}) { clientMutationId } }
            }
            fragment More on Mutation { merge: mergePullRequest(input: {pullRequestId: "PR_1", mergeMethod: SQUASH}) { clientMutationId } }
        "#;
        let got = calls(classify(&body(q, Some("Sneaky"), json!(null))).unwrap());
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["addComment", "mergePullRequest", "deleteRef"]);
        assert_eq!(
            got[1].1,
            json!({"input": {"pullRequestId": "PR_1", "mergeMethod": "SQUASH"}})
        );
        assert!(matches!(
            classify(&body(q, Some("Harmless"), json!(null))).unwrap(),
            Operation::Query { .. }
        ));
        // @skip does not hide a field from the policy.
        let q =
            "mutation { deleteRef(input: {refId: \"x\"}) @skip(if: true) { clientMutationId } }";
        assert_eq!(
            calls(classify(&body(q, None, json!(null))).unwrap()).len(),
            1
        );
    }

    #[test]
    fn what_cannot_be_decided_is_refused() {
        let deep = format!("{{ a {} }}", "{ b ".repeat(100) + &"}".repeat(100));
        let many_lists = format!(
            "query {{ a(x: {}1{}) }}",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not a JSON object"),
            (br#"{"query": 3}"#.to_vec(), "not a JSON object"),
            (
                br#"{"query": "{ a }", "extra": 1}"#.to_vec(),
                "unknown field",
            ),
            (
                br#"{"query": "{ a }", "query": "mutation { b }"}"#.to_vec(),
                "not a JSON object",
            ),
            (body("mutation { a(", None, json!(null)), "does not parse"),
            (
                body("query A { a } query B { b }", None, json!(null)),
                "no operationName",
            ),
            (
                body("query A { a }", Some("B"), json!(null)),
                "no operation named \"B\"",
            ),
            (
                body("query A { a } mutation A { b }", Some("A"), json!(null)),
                "used twice",
            ),
            (
                body("mutation { ...F }", None, json!(null)),
                "is not defined",
            ),
            (
                body(
                    "mutation { ...F } fragment F on Query { a }",
                    None,
                    json!(null),
                ),
                "a fragment on Query",
            ),
            (
                body(
                    "mutation { ...F } fragment F on Mutation { ...F }",
                    None,
                    json!(null),
                ),
                "nests deeper",
            ),
            (body(&deep, None, json!(null)), "nests deeper"),
            (body(&many_lists, None, json!(null)), "nests deeper"),
            (vec![b' '; MAX_BODY + 1], "larger than"),
        ];
        for (b, want) in cases {
            let e = classify(&b).unwrap_err().to_string();
            assert!(
                e.contains(want),
                "{}: {e}",
                String::from_utf8_lossy(&b[..b.len().min(80)])
            );
        }
        // Brackets inside strings and comments do not count.
        let q = format!(
            "# {}\n{{ a(s: \"{}\", t: \"\"\"{}\"\"\") }}",
            "{".repeat(100),
            "[".repeat(100),
            "(".repeat(100)
        );
        assert!(matches!(
            classify(&body(&q, None, json!(null))).unwrap(),
            Operation::Query { .. }
        ));
    }

    #[test]
    fn a_query_is_forwarded_re_printed_with_only_what_it_uses() {
        let q = r#"
            query Mine($o: String!) { repository(owner: $o, name: "r") { ...R } }
            mutation Other { mergePullRequest(input: {pullRequestId: "PR_1"}) { clientMutationId } }
            fragment R on Repository { id }
            fragment Unused on Repository { name }
        "#;
        let Operation::Query { body: sent } =
            classify(&body(q, Some("Mine"), json!({"o": "octo"}))).unwrap()
        else {
            panic!("not a query")
        };
        let sent: Json = serde_json::from_slice(&sent).unwrap();
        let text = sent["query"].as_str().unwrap();
        assert!(
            text.contains("query Mine") && text.contains("fragment R on Repository"),
            "{text}"
        );
        assert!(
            !text.contains("mergePullRequest") && !text.contains("Unused"),
            "{text}"
        );
        assert_eq!(
            (sent["operationName"].as_str(), &sent["variables"]),
            (Some("Mine"), &json!({"o": "octo"}))
        );
    }

    #[test]
    fn a_mutation_is_forwarded_as_it_was_decided_on() {
        let forwarded = |b: Vec<u8>| match classify(&b).unwrap() {
            Operation::Mutation(m) => (serde_json::from_slice::<Json>(&m.body).unwrap(), m.calls),
            other => panic!("not a mutation: {other:?}"),
        };
        // A key given twice in an input object: the parser keeps one, and so does what is sent.
        let q = r#"mutation { createRef(input: {repositoryId: "R_1", name: "refs/heads/agent/x", name: "refs/heads/main", oid: "abc"}) { clientMutationId } }"#;
        let (sent, calls) = forwarded(body(q, None, json!(null)));
        let text = sent["query"].as_str().unwrap();
        assert_eq!(text.matches("name:").count(), 1, "{text}");
        assert_eq!(calls[0].arguments["input"]["name"], "refs/heads/main");
        // Other operations and unused fragments stay behind; used ones go along.
        let q = r#"
            query Other { viewer { login } }
            mutation M($id: ID! = "PR_1") { ...F }
            fragment F on Mutation { closePullRequest(input: {pullRequestId: $id}) { clientMutationId } }
            fragment Unused on Query { viewer { login } }
        "#;
        let (sent, calls) = forwarded(body(q, Some("M"), json!(null)));
        let text = sent["query"].as_str().unwrap();
        assert!(
            !text.contains("Other") && !text.contains("Unused"),
            "{text}"
        );
        assert!(text.contains("fragment F on Mutation"), "{text}");
        assert_eq!(sent["operationName"], "M");
        // A fragment spread inside the payload goes along too (GitHub refuses one undefined).
        let payload = r#"
            mutation { createPullRequest(input: {repositoryId: "R", headRefName: "agent/x", baseRefName: "main", title: "t"}) { pullRequest { ...Pr } } }
            fragment Pr on PullRequest { id url ...More }
            fragment More on PullRequest { number }
        "#;
        let (sent, _) = forwarded(body(payload, None, json!(null)));
        let text = sent["query"].as_str().unwrap();
        assert!(
            text.contains("fragment Pr on PullRequest")
                && text.contains("fragment More on PullRequest"),
            "{text}"
        );
        // A variable's default is what runs when none is given.
        assert_eq!(calls[0].arguments["input"]["pullRequestId"], "PR_1");
        let (_, calls) = forwarded(body(q, Some("M"), json!({"id": "PR_2"})));
        assert_eq!(calls[0].arguments["input"]["pullRequestId"], "PR_2");
        // An argument given twice is refused, not decided on one and sent with both.
        let q = r#"mutation { deleteRef(input: {refId: "a"}, input: {refId: "b"}) { clientMutationId } }"#;
        assert!(
            classify(&body(q, None, json!(null)))
                .unwrap_err()
                .to_string()
                .contains("given twice")
        );
        // Strings that need escaping survive the round trip.
        let q = "mutation { addComment(input: {subjectId: \"PR_1\", body: \"a \\\"quote\\\" \\n line\"}) { clientMutationId } }";
        let (_, calls) = forwarded(body(q, None, json!(null)));
        assert_eq!(calls[0].arguments["input"]["body"], "a \"quote\" \n line");
    }
}
