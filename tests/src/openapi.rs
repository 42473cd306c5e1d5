//! A checker for the OpenAPI 3.0 schemas in `tests/data/github-app-subset.json`.
//!
//! Written here rather than taken from a JSON Schema crate because OpenAPI 3.0 schemas are not
//! JSON Schema: `nullable: true` has no JSON Schema meaning and would need rewriting first. It
//! checks what matters for GitHub's documents: `$ref`, `type` (with `nullable`), `required`,
//! `properties`, `additionalProperties`, `items`, `enum`, `allOf`/`anyOf`/`oneOf`.

use serde_json::Value;

pub struct Spec {
    doc: Value,
}

impl Spec {
    pub fn load() -> Spec {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/github-app-subset.json");
        let text = std::fs::read_to_string(path).expect("spec file");
        Spec {
            doc: serde_json::from_str(&text).expect("spec JSON"),
        }
    }

    /// The proxy's admin API as `docs/reference/admin-api.yaml` describes it.
    pub fn admin_api() -> Spec {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/reference/admin-api.yaml"
        );
        let text = std::fs::read_to_string(path).expect("admin-api.yaml");
        Spec {
            doc: serde_saphyr::from_str(&text).expect("admin-api.yaml is YAML"),
        }
    }

    /// Asserts that `value`, answered `status` to `method path`, is what the document says.
    #[track_caller]
    pub fn assert_answer(&self, path: &str, method: &str, status: u16, value: &Value) {
        let errs = self.check(self.response_schema(path, method, status), value);
        assert!(
            errs.is_empty(),
            "{method} {path} {status}: {errs:#?}\n{value:#}"
        );
    }

    /// The JSON schema of an operation's response.
    pub fn response_schema(&self, path: &str, method: &str, status: u16) -> &Value {
        let op = &self.doc["paths"][path][method];
        assert!(op.is_object(), "no operation {method} {path} in the spec");
        let r = &op["responses"][status.to_string()];
        let r = self.deref(r);
        assert!(r.is_object(), "no {status} response for {method} {path}");
        let s = &r["content"]["application/json"]["schema"];
        assert!(s.is_object(), "no JSON schema for {status} {method} {path}");
        s
    }

    pub fn request_schema(&self, path: &str, method: &str) -> &Value {
        let s = &self.doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
        assert!(s.is_object(), "no request schema for {method} {path}");
        s
    }

    fn deref<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let mut cur = &self.doc;
                for part in r.trim_start_matches("#/").split('/') {
                    cur = &cur[part];
                }
                assert!(!cur.is_null(), "unresolved $ref {r}");
                self.deref(cur)
            }
            None => v,
        }
    }

    /// Errors of `value` against `schema`, each naming the JSON path.
    pub fn check(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        self.walk(schema, value, "$", &mut errs);
        errs
    }

    fn walk(&self, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
        let schema = self.deref(schema);
        if v.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.walk(s, v, at, errs);
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(alts) = schema.get(key).and_then(Value::as_array) {
                let ok = alts.iter().any(|s| {
                    let mut e = Vec::new();
                    self.walk(s, v, at, &mut e);
                    e.is_empty()
                });
                if !ok {
                    errs.push(format!("{at}: matches none of {key}"));
                }
            }
        }
        if let Some(en) = schema.get("enum").and_then(Value::as_array)
            && !en.contains(v)
        {
            errs.push(format!("{at}: {v} not in enum {en:?}"));
        }
        let Some(ty) = schema.get("type").and_then(Value::as_str) else {
            return;
        };
        let type_ok = match ty {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => true,
        };
        if !type_ok {
            errs.push(format!("{at}: expected {ty}, got {v}"));
            return;
        }
        if let (Some(obj), "object") = (v.as_object(), ty) {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(r) {
                        errs.push(format!("{at}: missing required {r:?}"));
                    }
                }
            }
            for (k, val) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => self.walk(s, val, &format!("{at}.{k}"), errs),
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            errs.push(format!("{at}: unexpected property {k:?}"))
                        }
                        Some(s @ Value::Object(_)) => self.walk(s, val, &format!("{at}.{k}"), errs),
                        _ => {}
                    },
                }
            }
        }
        if let (Some(arr), Some(items)) = (v.as_array(), schema.get("items")) {
            for (i, item) in arr.iter().enumerate() {
                self.walk(items, item, &format!("{at}[{i}]"), errs);
            }
        }
    }
}
