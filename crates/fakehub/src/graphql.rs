//! `POST /api/graphql`: GitHub's GraphQL API, strictly for the part fakehub emulates.
//!
//! Queries are checked against a subset of GitHub's published schema
//! (`data/github-graphql-subset.graphql`, copied verbatim, its source named in the file): a
//! field a type does not declare is GitHub's `undefinedField` error, as GitHub answers it. A
//! declared field fakehub does not emulate is an error that says so (never a made-up value).
//! Emulated: `viewer { login }`, `repository(owner:, name:)` with `id`, `name`,
//! `nameWithOwner`, `url`, `isPrivate`, `description`, `defaultBranchRef { id name }`;
//! `__typename` anywhere. Interface-typed fields (`owner`), mutations and subscriptions are not
//! emulated yet: asking for them is an error that says so.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use graphql_parser::query::{Definition, OperationDefinition, Selection, SelectionSet};
use graphql_parser::schema::{self, TypeDefinition};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::hub::{Hub, TokenCheck};
use crate::{Body, json_response};

const SCHEMA: &str = include_str!("../data/github-graphql-subset.graphql");
/// The deepest selection answered (GitHub's own limit is of the same order).
const MAX_DEPTH: usize = 32;

/// Object type -> field -> the named type it returns.
type Types = HashMap<String, HashMap<String, String>>;

fn types() -> &'static Types {
    static T: OnceLock<Types> = OnceLock::new();
    T.get_or_init(|| {
        let doc = schema::parse_schema::<String>(SCHEMA).expect("the schema subset parses");
        let mut out = Types::new();
        for d in doc.definitions {
            if let schema::Definition::TypeDefinition(TypeDefinition::Object(o)) = d {
                let fields = o
                    .fields
                    .into_iter()
                    .map(|f| (f.name, named(&f.field_type)))
                    .collect();
                out.insert(o.name, fields);
            }
        }
        out
    })
}

fn named(t: &schema::Type<'_, String>) -> String {
    match t {
        schema::Type::NamedType(n) => n.clone(),
        schema::Type::ListType(t) | schema::Type::NonNullType(t) => named(t),
    }
}

fn error(message: String) -> Response<Body> {
    json_response(StatusCode::OK, &json!({"errors": [{"message": message}]}))
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
        return error("Problems parsing JSON".into());
    };
    let body = body.to_bytes();
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return error("Problems parsing JSON".into());
    };
    let Some(query) = b["query"].as_str() else {
        return error("A query attribute must be specified and must be a string.".into());
    };
    // The parser recurses: text nested past what the proxy accepts is refused before it.
    if let Err(e @ ghapp_gitproto::graphql::GraphqlError::TooDeep) =
        ghapp_gitproto::graphql::classify(&body)
    {
        return error(e.to_string());
    }
    let variables = b["variables"].as_object().cloned().unwrap_or_default();
    let doc = match graphql_parser::parse_query::<String>(query) {
        Ok(d) => d,
        Err(e) => return error(format!("Parse error: {}", e.to_string().replace('\n', " "))),
    };
    let fragments: HashMap<&str, _> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Fragment(f) => Some((f.name.as_str(), f)),
            Definition::Operation(_) => None,
        })
        .collect();
    let wanted = b["operationName"].as_str();
    let op = doc.definitions.iter().find_map(|d| match d {
        Definition::Operation(o) => match (o, wanted) {
            (OperationDefinition::Query(q), Some(n)) if q.name.as_deref() == Some(n) => Some(o),
            (_, None) => Some(o),
            _ => None,
        },
        Definition::Fragment(_) => None,
    });
    let set = match op {
        Some(OperationDefinition::Query(q)) => &q.selection_set,
        Some(OperationDefinition::SelectionSet(s)) => s,
        Some(_) => {
            return error("fakehub does not emulate GraphQL mutations or subscriptions".into());
        }
        None => return error("No operation named in the document".into()),
    };
    let cx = Cx {
        hub: &hub,
        token: &token,
        variables: &variables,
        fragments: &fragments,
    };
    match cx.select("Query", set, &Value::Null, 0) {
        Ok(data) => json_response(StatusCode::OK, &json!({ "data": data })),
        Err(e) => json_response(StatusCode::OK, &json!({ "data": null, "errors": [e] })),
    }
}

struct Cx<'a> {
    hub: &'a Hub,
    token: &'a crate::hub::IssuedToken,
    variables: &'a Map<String, Value>,
    fragments: &'a HashMap<&'a str, &'a graphql_parser::query::FragmentDefinition<'a, String>>,
}

impl Cx<'_> {
    /// The selection `set` on an object of type `ty` whose emulated fields are in `obj`.
    fn select(
        &self,
        ty: &str,
        set: &SelectionSet<'_, String>,
        obj: &Value,
        depth: usize,
    ) -> Result<Value, Value> {
        // A fragment that spreads itself, or a document nested past reason, is an error, not
        // a stack overflow.
        if depth > MAX_DEPTH {
            return Err(
                json!({"message": format!("the query nests deeper than {MAX_DEPTH} levels (a fragment spreading itself?)")}),
            );
        }
        let mut out = Map::new();
        for sel in &set.items {
            match sel {
                Selection::Field(f) => {
                    let key = f.alias.clone().unwrap_or_else(|| f.name.clone());
                    if f.name == "__typename" {
                        out.insert(key, json!(ty));
                        continue;
                    }
                    let Some(field_ty) = types().get(ty).and_then(|t| t.get(&f.name)) else {
                        return Err(json!({
                            "message": format!("Field '{}' doesn't exist on type '{ty}'", f.name),
                            "extensions": {"code": "undefinedField", "typeName": ty, "fieldName": f.name},
                        }));
                    };
                    let value = if ty == "Query" {
                        self.root(&f.name, &f.arguments)?
                    } else {
                        obj.get(&f.name).cloned().ok_or_else(|| {
                            json!({"message": format!("fakehub does not emulate {ty}.{}", f.name)})
                        })?
                    };
                    let v = match (&value, f.selection_set.items.is_empty()) {
                        (Value::Null, _) | (_, true) => value,
                        (_, false) => {
                            if !types().contains_key(field_ty.as_str()) {
                                return Err(
                                    json!({"message": format!("fakehub does not emulate the type {field_ty}")}),
                                );
                            }
                            self.select(field_ty, &f.selection_set, &value, depth + 1)?
                        }
                    };
                    out.insert(key, v);
                }
                Selection::InlineFragment(i) => {
                    if let Some(graphql_parser::query::TypeCondition::On(t)) = &i.type_condition
                        && t != ty
                    {
                        continue;
                    }
                    merge(&mut out, self.select(ty, &i.selection_set, obj, depth + 1)?);
                }
                Selection::FragmentSpread(s) => {
                    let Some(f) = self.fragments.get(s.fragment_name.as_str()) else {
                        return Err(
                            json!({"message": format!("Fragment {} was used, but not defined", s.fragment_name)}),
                        );
                    };
                    let graphql_parser::query::TypeCondition::On(t) = &f.type_condition;
                    if t == ty {
                        merge(&mut out, self.select(ty, &f.selection_set, obj, depth + 1)?);
                    }
                }
            }
        }
        Ok(Value::Object(out))
    }

    /// A field of `Query`, emulated.
    fn root(
        &self,
        name: &str,
        args: &[(String, graphql_parser::query::Value<'_, String>)],
    ) -> Result<Value, Value> {
        let arg = |k: &str| -> Option<String> {
            args.iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| match v {
                    graphql_parser::query::Value::String(s) => Some(s.clone()),
                    graphql_parser::query::Value::Variable(var) => {
                        self.variables.get(var)?.as_str().map(str::to_owned)
                    }
                    _ => None,
                })
        };
        match name {
            "viewer" => {
                let login = self.token.user.clone().unwrap_or_else(|| {
                    self.hub
                        .installation(self.token.installation_id)
                        .and_then(|i| self.hub.app(i.app_id))
                        .map_or_else(|| "ghost".into(), |a| format!("{}[bot]", a.slug))
                });
                Ok(json!({"login": login}))
            }
            "repository" => {
                let (Some(owner), Some(repo)) = (arg("owner"), arg("name")) else {
                    return Err(json!({"message": "repository needs owner and name"}));
                };
                match self
                    .hub
                    .find_repo(&owner, &repo)
                    .filter(|r| self.hub.token_covers(self.token, &r.owner, &r.name))
                {
                    Some(r) => Ok(json!({
                        "id": format!("R_kgDO{}", r.id),
                        "name": r.name,
                        "nameWithOwner": format!("{}/{}", r.owner, r.name),
                        "url": format!("{}/{}/{}", self.hub.base_url, r.owner, r.name),
                        "isPrivate": false,
                        "description": null,
                        "defaultBranchRef": {"id": format!("REF_kgDO{}", r.id), "name": r.default_branch},
                    })),
                    None => Err(json!({
                        "type": "NOT_FOUND",
                        "path": ["repository"],
                        "message": format!("Could not resolve to a Repository with the name '{owner}/{repo}'."),
                    })),
                }
            }
            other => Err(json!({"message": format!("fakehub does not emulate Query.{other}")})),
        }
    }
}

fn merge(out: &mut Map<String, Value>, v: Value) {
    if let Value::Object(m) = v {
        out.extend(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_subset_is_githubs_and_holds_what_is_emulated() {
        let t = types();
        for (ty, field, returns) in [
            ("Query", "repository", "Repository"),
            ("Query", "viewer", "User"),
            ("Repository", "nameWithOwner", "String"),
            ("Repository", "defaultBranchRef", "Ref"),
            ("Ref", "name", "String"),
            ("User", "login", "String"),
        ] {
            assert_eq!(
                t.get(ty).and_then(|f| f.get(field)).map(String::as_str),
                Some(returns),
                "{ty}.{field}"
            );
        }
        assert!(
            SCHEMA.contains("octokit/graphql-schema"),
            "the source is named"
        );
    }
}
