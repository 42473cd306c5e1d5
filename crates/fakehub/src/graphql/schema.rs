//! GitHub's published GraphQL schema, read once, and the checks GitHub makes against it before
//! it runs anything: fields a type declares, arguments a field accepts, required arguments, and
//! input values of the declared shape (input objects field by field, enums by value).

use std::collections::HashMap;
use std::sync::OnceLock;

use graphql_parser::schema::{self as gs, Definition, TypeDefinition};
use serde_json::Value;

const SCHEMA: &str = include_str!("../../data/github-schema.graphql");

/// A type reference: `Foo`, `[Foo]`, `Foo!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ty {
    Named(String),
    List(Box<Ty>),
    NonNull(Box<Ty>),
}

impl Ty {
    fn from(t: &gs::Type<'_, String>) -> Ty {
        match t {
            gs::Type::NamedType(n) => Ty::Named(n.clone()),
            gs::Type::ListType(t) => Ty::List(Box::new(Ty::from(t))),
            gs::Type::NonNullType(t) => Ty::NonNull(Box::new(Ty::from(t))),
        }
    }

    /// The named type under the list and non-null wrappers.
    pub(crate) fn name(&self) -> &str {
        match self {
            Ty::Named(n) => n,
            Ty::List(t) | Ty::NonNull(t) => t.name(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct InputValue {
    pub name: String,
    pub ty: Ty,
    pub has_default: bool,
}

impl InputValue {
    fn from(v: &gs::InputValue<'_, String>) -> InputValue {
        InputValue {
            name: v.name.clone(),
            ty: Ty::from(&v.value_type),
            has_default: v.default_value.is_some(),
        }
    }

    fn required(&self) -> bool {
        matches!(self.ty, Ty::NonNull(_)) && !self.has_default
    }
}

#[derive(Debug)]
pub(crate) struct Field {
    pub ty: Ty,
    pub args: Vec<InputValue>,
}

#[derive(Debug)]
pub(crate) enum Def {
    Object {
        fields: HashMap<String, Field>,
        interfaces: Vec<String>,
    },
    Interface {
        fields: HashMap<String, Field>,
    },
    Union {
        members: Vec<String>,
    },
    Enum {
        values: Vec<String>,
    },
    Input {
        fields: Vec<InputValue>,
    },
    Scalar,
}

pub(crate) struct Schema {
    types: HashMap<String, Def>,
}

/// The schema, parsed on first use.
pub(crate) fn schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| Schema::parse(SCHEMA).expect("GitHub's schema parses"))
}

fn fields(fs: &[gs::Field<'_, String>]) -> HashMap<String, Field> {
    fs.iter()
        .map(|f| {
            (
                f.name.clone(),
                Field {
                    ty: Ty::from(&f.field_type),
                    args: f.arguments.iter().map(InputValue::from).collect(),
                },
            )
        })
        .collect()
}

impl Schema {
    fn parse(text: &str) -> Result<Schema, String> {
        let doc = gs::parse_schema::<String>(text).map_err(|e| e.to_string())?;
        let mut types: HashMap<String, Def> = ["String", "Int", "Float", "Boolean", "ID"]
            .into_iter()
            .map(|s| (s.to_owned(), Def::Scalar))
            .collect();
        for d in &doc.definitions {
            let Definition::TypeDefinition(t) = d else {
                continue;
            };
            let (name, def) = match t {
                TypeDefinition::Object(o) => (
                    &o.name,
                    Def::Object {
                        fields: fields(&o.fields),
                        interfaces: o.implements_interfaces.clone(),
                    },
                ),
                TypeDefinition::Interface(i) => (
                    &i.name,
                    Def::Interface {
                        fields: fields(&i.fields),
                    },
                ),
                TypeDefinition::Union(u) => (
                    &u.name,
                    Def::Union {
                        members: u.types.clone(),
                    },
                ),
                TypeDefinition::Enum(e) => (
                    &e.name,
                    Def::Enum {
                        values: e.values.iter().map(|v| v.name.clone()).collect(),
                    },
                ),
                TypeDefinition::InputObject(i) => (
                    &i.name,
                    Def::Input {
                        fields: i.fields.iter().map(InputValue::from).collect(),
                    },
                ),
                TypeDefinition::Scalar(s) => (&s.name, Def::Scalar),
            };
            types.insert(name.clone(), def);
        }
        Ok(Schema { types })
    }

    pub(crate) fn def(&self, name: &str) -> Option<&Def> {
        self.types.get(name)
    }

    /// The field `name` of the object or interface `ty`.
    pub(crate) fn field(&self, ty: &str, name: &str) -> Option<&Field> {
        match self.types.get(ty)? {
            Def::Object { fields, .. } | Def::Interface { fields } => fields.get(name),
            _ => None,
        }
    }

    /// Whether an object of type `concrete` is a `cond` (itself, an interface it implements,
    /// a union it is in).
    pub(crate) fn is_a(&self, concrete: &str, cond: &str) -> bool {
        if concrete == cond {
            return true;
        }
        match (self.types.get(concrete), self.types.get(cond)) {
            (Some(Def::Object { interfaces, .. }), Some(Def::Interface { .. })) => {
                interfaces.iter().any(|i| i == cond)
            }
            (_, Some(Def::Union { members })) => members.iter().any(|m| m == concrete),
            _ => false,
        }
    }

    /// Whether values of `name` have fields to select.
    pub(crate) fn composite(&self, name: &str) -> bool {
        matches!(
            self.types.get(name),
            Some(Def::Object { .. } | Def::Interface { .. } | Def::Union { .. })
        )
    }

    /// GitHub's checks of a field's arguments: each one declared, each required one given,
    /// each of its declared type. `given` has the variables substituted.
    pub(crate) fn check_args(
        &self,
        ty: &str,
        field: &str,
        declared: &[InputValue],
        given: &serde_json::Map<String, Value>,
    ) -> Result<(), String> {
        for k in given.keys() {
            if !declared.iter().any(|a| &a.name == k) {
                return Err(format!("Field '{field}' doesn't accept argument '{k}'"));
            }
        }
        let missing: Vec<&str> = declared
            .iter()
            .filter(|a| a.required() && given.get(&a.name).is_none_or(Value::is_null))
            .map(|a| a.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "Field '{field}' is missing required arguments: {}",
                missing.join(", ")
            ));
        }
        for a in declared {
            if let Some(v) = given.get(&a.name) {
                self.check_input(&a.ty, v).map_err(|e| {
                    format!(
                        "Argument '{}' on Field '{ty}.{field}' has an invalid value: {e}",
                        a.name
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Whether `v` is a value of the input type `ty`.
    pub(crate) fn check_input(&self, ty: &Ty, v: &Value) -> Result<(), String> {
        match (ty, v) {
            (Ty::NonNull(_), Value::Null) => Err("Expected value to not be null".into()),
            (Ty::NonNull(t), v) => self.check_input(t, v),
            (_, Value::Null) => Ok(()),
            (Ty::List(t), Value::Array(items)) => {
                items.iter().try_for_each(|i| self.check_input(t, i))
            }
            (Ty::List(t), v) => self.check_input(t, v),
            (Ty::Named(n), v) => match (self.types.get(n), v) {
                (Some(Def::Scalar), v) => scalar(n, v),
                (Some(Def::Enum { values }), Value::String(s)) if values.contains(s) => Ok(()),
                (Some(Def::Enum { .. }), v) => {
                    Err(format!("Expected {v} to be one of {n}'s values"))
                }
                (Some(Def::Input { fields }), Value::Object(o)) => {
                    for k in o.keys() {
                        if !fields.iter().any(|f| &f.name == k) {
                            return Err(format!("InputObject '{n}' doesn't accept argument '{k}'"));
                        }
                    }
                    for f in fields {
                        match o.get(&f.name) {
                            Some(x) => self
                                .check_input(&f.ty, x)
                                .map_err(|e| format!("{n}.{}: {e}", f.name))?,
                            None if f.required() => {
                                return Err(format!(
                                    "Argument '{}' on InputObject '{n}' is required. Expected type {}",
                                    f.name,
                                    f.ty.name()
                                ));
                            }
                            None => {}
                        }
                    }
                    Ok(())
                }
                (Some(Def::Input { .. }), v) => Err(format!("Expected {v} to be a {n} object")),
                _ => Err(format!("{n} is not an input type")),
            },
        }
    }
}

/// `__type(name:)`: the type as GraphQL's introspection describes it (`__Type`, its fields,
/// input fields, enum values, interfaces and possible types by name and type), or `null`.
pub(crate) fn introspect(name: &str) -> Value {
    use serde_json::json;
    let s = schema();
    let Some(def) = s.types.get(name) else {
        return Value::Null;
    };
    fn type_ref(t: &Ty) -> Value {
        match t {
            Ty::Named(n) => {
                let kind = match schema().types.get(n) {
                    Some(Def::Object { .. }) => "OBJECT",
                    Some(Def::Interface { .. }) => "INTERFACE",
                    Some(Def::Union { .. }) => "UNION",
                    Some(Def::Enum { .. }) => "ENUM",
                    Some(Def::Input { .. }) => "INPUT_OBJECT",
                    _ => "SCALAR",
                };
                json!({"__introspection": "__Type", "kind": kind, "name": n, "ofType": null})
            }
            Ty::List(t) => {
                json!({"__introspection": "__Type", "kind": "LIST", "name": null, "ofType": type_ref(t)})
            }
            Ty::NonNull(t) => {
                json!({"__introspection": "__Type", "kind": "NON_NULL", "name": null, "ofType": type_ref(t)})
            }
        }
    }
    let input = |v: &InputValue| json!({"__introspection": "__InputValue", "name": v.name, "description": null, "type": type_ref(&v.ty), "defaultValue": null});
    let fields = |fs: &HashMap<String, Field>| -> Value {
        let mut names: Vec<&String> = fs.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                json!({"__introspection": "__Field", "name": n, "description": null, "isDeprecated": false, "deprecationReason": null, "type": type_ref(&fs[n].ty), "args": fs[n].args.iter().map(input).collect::<Vec<_>>()})
            })
            .collect()
    };
    let named =
        |ns: &[String]| -> Value { ns.iter().map(|n| type_ref(&Ty::Named(n.clone()))).collect() };
    let mut t = type_ref(&Ty::Named(name.to_owned()));
    let o = t.as_object_mut().expect("an object");
    o.remove("ofType");
    o.insert("description".into(), Value::Null);
    for k in [
        "fields",
        "inputFields",
        "enumValues",
        "interfaces",
        "possibleTypes",
    ] {
        o.insert(k.into(), Value::Null);
    }
    match def {
        Def::Object {
            fields: fs,
            interfaces,
        } => {
            o.insert("fields".into(), fields(fs));
            o.insert("interfaces".into(), named(interfaces));
        }
        Def::Interface { fields: fs } => {
            o.insert("fields".into(), fields(fs));
        }
        Def::Union { members } => {
            o.insert("possibleTypes".into(), named(members));
        }
        Def::Enum { values } => {
            o.insert(
                "enumValues".into(),
                values
                    .iter()
                    .map(|v| json!({"__introspection": "__EnumValue", "name": v, "description": null, "isDeprecated": false, "deprecationReason": null}))
                    .collect(),
            );
        }
        Def::Input { fields } => {
            o.insert("inputFields".into(), fields.iter().map(input).collect());
        }
        Def::Scalar => {}
    }
    t
}

fn scalar(name: &str, v: &Value) -> Result<(), String> {
    let ok = match name {
        "Int" => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "Float" => v.is_number(),
        "Boolean" => v.is_boolean(),
        "ID" => v.is_string() || v.is_i64(),
        // String and GitHub's own scalars (URI, DateTime, GitObjectID, Base64String, …).
        _ => v.is_string(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("Could not coerce value {v} to {name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn githubs_schema_and_its_checks() {
        let s = schema();
        assert_eq!(
            s.field("Repository", "defaultBranchRef").unwrap().ty,
            Ty::Named("Ref".into())
        );
        assert!(s.is_a("PullRequest", "Node"));
        assert!(s.is_a("Bot", "Actor"));
        assert!(!s.is_a("Repository", "Actor"));
        let input = Ty::NonNull(Box::new(Ty::Named("CreatePullRequestInput".into())));
        let ok =
            json!({"repositoryId": "R_1", "baseRefName": "main", "headRefName": "x", "title": "t"});
        assert_eq!(s.check_input(&input, &ok), Ok(()));
        let mut extra = ok;
        extra["nope"] = json!(1);
        assert!(
            s.check_input(&input, &extra)
                .unwrap_err()
                .contains("doesn't accept argument 'nope'")
        );
        let missing = json!({"repositoryId": "R_1", "baseRefName": "main", "headRefName": "x"});
        assert!(
            s.check_input(&input, &missing)
                .unwrap_err()
                .contains("'title'")
        );
        let merge = Ty::Named("PullRequestMergeMethod".into());
        assert_eq!(s.check_input(&merge, &json!("SQUASH")), Ok(()));
        assert!(s.check_input(&merge, &json!("YOLO")).is_err());
        assert!(
            SCHEMA.contains("octokit/graphql-schema"),
            "the source is named"
        );
    }
}
