//! `POST /api/graphql`: GitHub's GraphQL API, strictly.
//!
//! Every document is checked against GitHub's published schema (`data/github-schema.graphql`,
//! copied verbatim, its source named in the file): a field a type does not declare, an argument
//! a field does not accept, a required argument left out, an input object with a field its type
//! does not declare are GitHub's errors, as GitHub words them. What fakehub emulates is in
//! [`data`]: the repository, its pull requests and refs, `node`/`nodes`, `viewer`, and the
//! pull-request and ref mutations. A declared field fakehub has no value for is `null` when the
//! schema allows it, an empty connection for a connection, and otherwise an error that says it
//! is not emulated (never a made-up value).
//!
//! Every operation is recorded (`Counters::graphql`: `query NAME`, `mutation FIELD,…`), so a
//! test can show that a request refused upstream never arrived.

mod data;
mod schema;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use graphql_parser::query::{
    Definition, Document, FragmentDefinition, OperationDefinition, Selection, SelectionSet,
    TypeCondition, Value as Gql,
};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::hub::{Hub, IssuedToken, TokenCheck};
use crate::{Body, json_response};
use schema::{Def, Ty, schema};

/// The deepest selection answered (GitHub's own limit is of the same order).
const MAX_DEPTH: usize = 32;

/// An error entry of GraphQL's `errors` list.
type Error = Value;

fn message(m: impl Into<String>) -> Error {
    json!({"message": m.into()})
}

pub(crate) async fn handle(hub: Arc<Hub>, req: Request<Incoming>) -> Response<Body> {
    use http_body_util::BodyExt;
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("bearer ")
                .or_else(|| v.strip_prefix("Bearer "))
                .or_else(|| v.strip_prefix("token "))
        })
        .map(str::to_owned);
    let Some(TokenCheck::Valid(token)) = auth.as_deref().map(|t| hub.check_token(t)) else {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "This endpoint requires you to be authenticated.", "documentation_url": "https://docs.github.com/graphql/guides/forming-calls-with-graphql#authenticating-with-graphql"}),
        );
    };
    let Ok(body) = http_body_util::Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
    else {
        return json_response(
            StatusCode::OK,
            &json!({"errors": [message("Problems parsing JSON")]}),
        );
    };
    let body = body.to_bytes();
    let mut headers = Vec::new();
    if token.installation_id != 0 {
        match points(&hub, &token, &body) {
            Ok(h) => headers = h,
            Err(r) => return *r,
        }
    }
    // Mutations run git; the whole request runs off the async workers.
    let answer = tokio::task::spawn_blocking(move || execute(&hub, &token, &body))
        .await
        .unwrap_or_else(|_| json!({"errors": [message("fakehub failed on this request")]}));
    let mut r = json_response(StatusCode::OK, &answer);
    for (k, v) in headers {
        if let Ok(v) = v.parse() {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

/// GitHub's GraphQL limits, counted for a request of an installation token: its points (a
/// query 1, a mutation 5) against the installation's hour (primary: `primary_limit`, as REST's
/// requests) and the app's
/// minute (secondary). The rate-limit headers of the answer, or the refusal.
fn points(
    hub: &Hub,
    token: &IssuedToken,
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, Box<Response<Body>>> {
    use std::sync::atomic::Ordering;
    let mutation = matches!(
        ghapp_gitproto::graphql::classify(body),
        Ok(ghapp_gitproto::graphql::Operation::Mutation(_))
    );
    let cost = if mutation { 5 } else { 1 };
    let now = hub.now();
    let hour = now / 3600;
    // The same knob as REST's hourly requests: GitHub gives each 5,000 an hour.
    let limit = hub.knobs.primary_limit.load(Ordering::Relaxed);
    let per_minute = hub.knobs.graphql_points_per_minute.load(Ordering::Relaxed);
    let (used, minute) = {
        let mut u = hub
            .knobs
            .graphql_used
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        u.0.retain(|(_, h), _| *h >= hour - 1);
        u.1.retain(|m, _| *m >= now / 60 - 2);
        let used = u.0.entry((token.installation_id, hour)).or_default();
        *used += cost;
        let used = *used;
        let m = u.1.entry(now / 60).or_default();
        *m += cost;
        (used, *m)
    };
    let headers = vec![
        ("x-ratelimit-limit", limit.to_string()),
        (
            "x-ratelimit-remaining",
            limit.saturating_sub(used).to_string(),
        ),
        ("x-ratelimit-used", used.min(limit).to_string()),
        ("x-ratelimit-reset", ((hour + 1) * 3600).to_string()),
        ("x-ratelimit-resource", "graphql".to_string()),
    ];
    let refused = |r: Response<Body>| {
        hub.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .graphql_limited += 1;
        let mut r = r;
        for (k, v) in &headers {
            if let Ok(v) = v.parse() {
                r.headers_mut().insert(*k, v);
            }
        }
        r
    };
    if minute > per_minute {
        let mut r = json_response(
            StatusCode::FORBIDDEN,
            &json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/graphql/overview/rate-limits-and-node-limits-for-the-graphql-api#secondary-rate-limits"}),
        );
        r.headers_mut()
            .insert("retry-after", "60".parse().expect("digits"));
        return Err(Box::new(refused(r)));
    }
    if used > limit {
        return Err(Box::new(refused(json_response(
            StatusCode::OK,
            &json!({"errors": [{"type": "RATE_LIMITED", "message": format!("API rate limit exceeded for installation ID {}.", token.installation_id)}]}),
        ))));
    }
    Ok(headers)
}

/// The answer to one request body.
fn execute(hub: &Hub, token: &IssuedToken, body: &Bytes) -> Value {
    let errors = |e: Error| json!({"errors": [e]});
    let Ok(b) = serde_json::from_slice::<Value>(body) else {
        return errors(message("Problems parsing JSON"));
    };
    let Some(query) = b["query"].as_str() else {
        return errors(message(
            "A query attribute must be specified and must be a string.",
        ));
    };
    // Read once as the proxy reads it: text nested past what the proxy accepts is refused
    // before the parser recurses into it, and a mutation's fields (through fragments) name it
    // in the counters.
    let read = ghapp_gitproto::graphql::classify(body);
    if let Err(e @ ghapp_gitproto::graphql::GraphqlError::TooDeep) = &read {
        return errors(message(e.to_string()));
    }
    let doc: Document<'_, String> = match graphql_parser::parse_query(query) {
        Ok(d) => d,
        Err(e) => {
            return errors(message(format!(
                "Parse error: {}",
                e.to_string().replace('\n', " ")
            )));
        }
    };
    let op = match operation(&doc, b["operationName"].as_str()) {
        Ok(op) => op,
        Err(e) => return errors(e),
    };
    let mut variables = b["variables"].as_object().cloned().unwrap_or_default();
    let (kind, set, defs) = match op {
        OperationDefinition::Query(q) => ("Query", &q.selection_set, &q.variable_definitions[..]),
        OperationDefinition::SelectionSet(s) => ("Query", s, &[][..]),
        OperationDefinition::Mutation(m) => {
            ("Mutation", &m.selection_set, &m.variable_definitions[..])
        }
        OperationDefinition::Subscription(_) => {
            return errors(message("Subscriptions are not supported"));
        }
    };
    for d in defs {
        if !variables.contains_key(&d.name)
            && let Some(v) = &d.default_value
        {
            variables.insert(d.name.clone(), to_json(v, &Map::new()));
        }
    }
    hub.with_counters(|c| c.graphql.push(describe(op, read)));
    let cx = Cx {
        hub,
        token,
        variables: &variables,
        fragments: doc
            .definitions
            .iter()
            .filter_map(|d| match d {
                Definition::Fragment(f) => Some((f.name.as_str(), f)),
                Definition::Operation(_) => None,
            })
            .collect(),
    };
    match cx.select(kind, set, &Value::Null, 0) {
        Ok(data) => json!({ "data": data }),
        Err(e) => json!({ "data": null, "errors": [e] }),
    }
}

/// How the counters name an operation: `query NAME` or `mutation FIELD,FIELD` (the fields
/// as GitHub would run them, through fragments).
fn describe(
    op: &OperationDefinition<'_, String>,
    read: Result<ghapp_gitproto::graphql::Operation, ghapp_gitproto::graphql::GraphqlError>,
) -> String {
    match op {
        OperationDefinition::Mutation(m) => {
            let fields: Vec<String> = match read {
                Ok(ghapp_gitproto::graphql::Operation::Mutation(m)) => {
                    m.calls.into_iter().map(|c| c.name).collect()
                }
                _ => m
                    .selection_set
                    .items
                    .iter()
                    .map(|s| match s {
                        Selection::Field(f) => f.name.clone(),
                        _ => "(fragment)".into(),
                    })
                    .collect(),
            };
            format!("mutation {}", fields.join(","))
        }
        OperationDefinition::Query(q) => {
            format!("query {}", q.name.as_deref().unwrap_or("(anonymous)"))
        }
        OperationDefinition::SelectionSet(_) => "query (anonymous)".into(),
        OperationDefinition::Subscription(_) => "subscription".into(),
    }
}

/// The operation `name` selects, or the only one (GraphQL's rules).
fn operation<'d, 'a>(
    doc: &'d Document<'a, String>,
    name: Option<&str>,
) -> Result<&'d OperationDefinition<'a, String>, Error> {
    let ops: Vec<_> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Operation(o) => Some(o),
            Definition::Fragment(_) => None,
        })
        .collect();
    let named = |o: &OperationDefinition<'_, String>| match o {
        OperationDefinition::Query(q) => q.name.clone(),
        OperationDefinition::Mutation(m) => m.name.clone(),
        OperationDefinition::Subscription(s) => s.name.clone(),
        OperationDefinition::SelectionSet(_) => None,
    };
    match name {
        None if ops.len() == 1 => Ok(ops[0]),
        None => Err(message(
            "An operation name is required when the document has several operations",
        )),
        Some(n) => ops
            .into_iter()
            .find(|o| named(o).as_deref() == Some(n))
            .ok_or_else(|| message(format!("No operation named \"{n}\""))),
    }
}

/// A literal or variable as JSON, the variables substituted.
pub(crate) fn to_json(v: &Gql<'_, String>, vars: &Map<String, Value>) -> Value {
    match v {
        Gql::Variable(n) => vars.get(n).cloned().unwrap_or(Value::Null),
        Gql::Int(n) => n.as_i64().map_or(Value::Null, Value::from),
        Gql::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Gql::String(s) => Value::String(s.clone()),
        Gql::Boolean(b) => Value::Bool(*b),
        Gql::Null => Value::Null,
        Gql::Enum(e) => Value::String(e.clone()),
        Gql::List(l) => Value::Array(l.iter().map(|x| to_json(x, vars)).collect()),
        Gql::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), to_json(x, vars)))
                .collect(),
        ),
    }
}

pub(crate) struct Cx<'a> {
    pub hub: &'a Hub,
    pub token: &'a IssuedToken,
    variables: &'a Map<String, Value>,
    fragments: HashMap<&'a str, &'a FragmentDefinition<'a, String>>,
}

impl Cx<'_> {
    /// The selection `set` on `obj`, a value of the declared type `ty` (an object carries its
    /// concrete type in `__typename` when `ty` is an interface or union).
    fn select(
        &self,
        ty: &str,
        set: &SelectionSet<'_, String>,
        obj: &Value,
        depth: usize,
    ) -> Result<Value, Error> {
        // A fragment that spreads itself, or a document nested past reason, is an error, not
        // a stack overflow.
        if depth > MAX_DEPTH {
            return Err(message(format!(
                "the query nests deeper than {MAX_DEPTH} levels (a fragment spreading itself?)"
            )));
        }
        let concrete = obj["__typename"].as_str().unwrap_or(ty).to_owned();
        let mut out = Map::new();
        for sel in &set.items {
            match sel {
                Selection::Field(f) => {
                    let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
                    if f.name == "__typename" {
                        out.insert(key, json!(concrete));
                        continue;
                    }
                    if ty == "Query" && f.name == "__type" {
                        let name = f.arguments.iter().find(|(k, _)| k == "name");
                        let name = name.map(|(_, v)| to_json(v, self.variables));
                        let t = name
                            .as_ref()
                            .and_then(Value::as_str)
                            .map_or(Value::Null, schema::introspect);
                        out.insert(key, project(&f.selection_set, &t, &self.fragments, depth)?);
                        continue;
                    }
                    let Some(field) = schema().field(ty, &f.name) else {
                        return Err(json!({
                            "message": format!("Field '{}' doesn't exist on type '{ty}'", f.name),
                            "extensions": {"code": "undefinedField", "typeName": ty, "fieldName": f.name},
                        }));
                    };
                    let args: Map<String, Value> = f
                        .arguments
                        .iter()
                        .map(|(k, v)| (k.clone(), to_json(v, self.variables)))
                        .collect();
                    schema()
                        .check_args(ty, &f.name, &field.args, &args)
                        .map_err(|m| json!({"message": m, "extensions": {"code": "argumentLiteralsIncompatible"}}))?;
                    let composite = schema().composite(field.ty.name());
                    if composite == f.selection_set.items.is_empty() {
                        return Err(message(if composite {
                            format!(
                                "Field must have selections (field '{}' returns {} but has no selections. Did you mean '{} {{ ... }}'?)",
                                f.name,
                                field.ty.name(),
                                f.name
                            )
                        } else {
                            format!(
                                "Selections can't be made on scalars (field '{}' returns {} but has selections [...])",
                                f.name,
                                field.ty.name()
                            )
                        }));
                    }
                    let value = match self.field(&concrete, obj, &f.name, &args)? {
                        Some(v) => v,
                        None => match obj.get(&f.name) {
                            Some(v) => v.clone(),
                            None => absent(&concrete, &f.name, &field.ty)?,
                        },
                    };
                    let v = self.complete(&field.ty, &f.selection_set, value, depth)?;
                    out.insert(key, v);
                }
                Selection::InlineFragment(i) => {
                    let cond = match &i.type_condition {
                        Some(TypeCondition::On(t)) => t.as_str(),
                        None => ty,
                    };
                    if self.applies(cond, &concrete)? {
                        merge(
                            &mut out,
                            self.select(cond, &i.selection_set, obj, depth + 1)?,
                        );
                    }
                }
                Selection::FragmentSpread(s) => {
                    let Some(f) = self.fragments.get(s.fragment_name.as_str()) else {
                        return Err(message(format!(
                            "Fragment {} was used, but not defined",
                            s.fragment_name
                        )));
                    };
                    let TypeCondition::On(cond) = &f.type_condition;
                    if self.applies(cond, &concrete)? {
                        merge(
                            &mut out,
                            self.select(cond, &f.selection_set, obj, depth + 1)?,
                        );
                    }
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn applies(&self, cond: &str, concrete: &str) -> Result<bool, Error> {
        if !schema().composite(cond) {
            return Err(message(format!(
                "No such type {cond}, so it can't be a fragment condition"
            )));
        }
        Ok(schema().is_a(concrete, cond))
    }

    /// A field's value shaped by its type: lists item by item, objects by their selection.
    fn complete(
        &self,
        ty: &Ty,
        set: &SelectionSet<'_, String>,
        value: Value,
        depth: usize,
    ) -> Result<Value, Error> {
        match (ty, value) {
            (_, Value::Null) => Ok(Value::Null),
            (Ty::NonNull(t), v) => self.complete(t, set, v, depth),
            (Ty::List(t), Value::Array(items)) => items
                .into_iter()
                .map(|i| self.complete(t, set, i, depth))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            (Ty::Named(n), v) if schema().composite(n) => self.select(n, set, &v, depth + 1),
            (_, v) => Ok(v),
        }
    }
}

/// The value of a declared field fakehub has no data for: `null` where the schema allows it,
/// an empty list or connection, otherwise an error naming it.
fn absent(ty: &str, field: &str, t: &Ty) -> Result<Value, Error> {
    match t {
        Ty::NonNull(inner) => match &**inner {
            Ty::List(_) => Ok(json!([])),
            Ty::Named(n)
                if n.ends_with("Connection")
                    && matches!(schema().def(n), Some(Def::Object { .. })) =>
            {
                Ok(data::connection(n, Vec::new()))
            }
            _ => Err(message(format!("fakehub does not emulate {ty}.{field}"))),
        },
        _ => Ok(Value::Null),
    }
}

/// Introspection (`__type`): the selection projected out of the type's full description,
/// field by field.
fn project(
    set: &SelectionSet<'_, String>,
    v: &Value,
    fragments: &HashMap<&str, &FragmentDefinition<'_, String>>,
    depth: usize,
) -> Result<Value, Error> {
    if depth > MAX_DEPTH {
        return Err(message("the introspection query nests too deep"));
    }
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| project(set, i, fragments, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(o) => {
            let mut out = Map::new();
            for sel in &set.items {
                match sel {
                    Selection::Field(f) => {
                        let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
                        let Some(x) = o.get(&f.name) else {
                            return Err(message(format!(
                                "Field '{}' doesn't exist on type '{}'",
                                f.name,
                                o.get("__introspection")
                                    .and_then(Value::as_str)
                                    .unwrap_or("__Type")
                            )));
                        };
                        let x = if f.selection_set.items.is_empty() {
                            x.clone()
                        } else {
                            project(&f.selection_set, x, fragments, depth + 1)?
                        };
                        out.insert(key, x);
                    }
                    Selection::InlineFragment(i) => {
                        merge(
                            &mut out,
                            project(&i.selection_set, v, fragments, depth + 1)?,
                        );
                    }
                    Selection::FragmentSpread(s) => {
                        let f = fragments.get(s.fragment_name.as_str()).ok_or_else(|| {
                            message(format!(
                                "Fragment {} was used, but not defined",
                                s.fragment_name
                            ))
                        })?;
                        merge(
                            &mut out,
                            project(&f.selection_set, v, fragments, depth + 1)?,
                        );
                    }
                }
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

fn merge(out: &mut Map<String, Value>, v: Value) {
    if let Value::Object(m) = v {
        out.extend(m);
    }
}
