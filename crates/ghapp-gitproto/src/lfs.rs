//! Git LFS over HTTP (git-lfs's `docs/api`): the batch API and the locks API under
//! `/{owner}/{repo}[.git]/info/lfs/`, and what the proxy reads from their bodies.

use serde::Deserialize;

use crate::credential::valid_name;

/// The part after `info/lfs/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LfsEndpoint {
    /// `POST objects/batch`.
    Batch,
    /// `POST objects/verify`: a verify action the server named on its own host.
    VerifyObject,
    /// `GET locks` (list) and `POST locks` (create).
    Locks,
    /// `POST locks/verify`.
    Verify,
    /// `POST locks/{id}/unlock`.
    Unlock(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LfsRoute {
    pub owner: String,
    pub repo: String,
    pub endpoint: LfsEndpoint,
}

impl LfsRoute {
    /// Whether `method` is the one the LFS API takes at this endpoint.
    pub fn method_allowed(&self, method: &str) -> bool {
        match self.endpoint {
            LfsEndpoint::Locks => method == "GET" || method == "POST",
            _ => method == "POST",
        }
    }

    /// Whether the request changes something (needs push access): uploads are decided on
    /// the batch body ([`operation`]), every lock request but the list is a write.
    pub fn writes(&self, method: &str) -> bool {
        match self.endpoint {
            LfsEndpoint::Batch => false,
            LfsEndpoint::Locks => method != "GET",
            LfsEndpoint::Verify | LfsEndpoint::Unlock(_) | LfsEndpoint::VerifyObject => true,
        }
    }

    /// The path to send upstream, built from what was decided on.
    pub fn upstream_path(&self) -> String {
        let tail = match &self.endpoint {
            LfsEndpoint::Batch => "objects/batch".to_owned(),
            LfsEndpoint::VerifyObject => "objects/verify".to_owned(),
            LfsEndpoint::Locks => "locks".to_owned(),
            LfsEndpoint::Verify => "locks/verify".to_owned(),
            LfsEndpoint::Unlock(id) => format!("locks/{id}/unlock"),
        };
        format!("/{}/{}.git/info/lfs/{tail}", self.owner, self.repo)
    }
}

/// Parses an LFS request path; owner and repository must be GitHub names, a lock id plain
/// alphanumerics.
pub fn parse(path: &str) -> Option<LfsRoute> {
    let rest = path.strip_prefix('/')?;
    let (owner, rest) = rest.split_once('/')?;
    let (repo, rest) = rest.split_once('/')?;
    let tail = rest.strip_prefix("info/lfs/")?;
    let endpoint = match tail.split('/').collect::<Vec<_>>().as_slice() {
        ["objects", "batch"] => LfsEndpoint::Batch,
        ["objects", "verify"] => LfsEndpoint::VerifyObject,
        ["locks"] => LfsEndpoint::Locks,
        ["locks", "verify"] => LfsEndpoint::Verify,
        ["locks", id, "unlock"]
            if !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            LfsEndpoint::Unlock((*id).to_owned())
        }
        _ => return None,
    };
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    (valid_name(owner) && valid_name(repo)).then(|| LfsRoute {
        owner: owner.to_owned(),
        repo: repo.to_owned(),
        endpoint,
    })
}

/// A batch request's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Download,
    Upload,
}

#[derive(Deserialize)]
struct BatchRequest {
    operation: Operation,
}

/// The operation of a batch request body (a body that is not the batch API's JSON is refused,
/// never forwarded). Declared keys given twice are refused by serde.
pub fn operation(body: &[u8]) -> Result<Operation, String> {
    serde_json::from_slice::<BatchRequest>(body)
        .map(|b| b.operation)
        .map_err(|e| format!("the LFS batch request is not the JSON git-lfs sends: {e}"))
}

/// What a transfer URL is for, and so the one method it takes (the basic transfer adapter's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// `PUT` the object's bytes.
    Upload,
    /// `GET` them.
    Download,
    /// `POST` the object's oid and size once uploaded.
    Verify,
}

impl ActionKind {
    /// The method the basic transfer adapter sends to this kind of URL.
    pub fn method(self) -> &'static str {
        match self {
            ActionKind::Upload => "PUT",
            ActionKind::Download => "GET",
            ActionKind::Verify => "POST",
        }
    }
}

/// One transfer URL of a batch answer: for which object, what for, and how long it lives
/// (seconds; `None`: not said).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub oid: String,
    pub kind: ActionKind,
    pub href: String,
    pub expires_in: Option<u64>,
}

/// The transfer URLs a batch answer hands out (`objects[].actions.{upload,download,verify}`).
pub fn actions(answer: &[u8]) -> Vec<Action> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(answer) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for o in v["objects"].as_array().into_iter().flatten() {
        let oid = o["oid"].as_str().unwrap_or_default();
        for (name, kind) in [
            ("upload", ActionKind::Upload),
            ("download", ActionKind::Download),
            ("verify", ActionKind::Verify),
        ] {
            let a = &o["actions"][name];
            if let Some(href) = a["href"].as_str() {
                out.push(Action {
                    oid: oid.to_owned(),
                    kind,
                    href: href.to_owned(),
                    expires_in: a["expires_in"].as_u64(),
                });
            }
        }
    }
    out
}

/// A batch answer with the objects `refused` names (oid -> why) turned into per-object errors
/// (`{"oid", "size", "error": {"code": 422, "message"}}`, which git-lfs reports and does not
/// retry): `None` when none is named, or the answer is not the batch API's JSON.
pub fn refuse_objects(answer: &[u8], refused: impl Fn(&str) -> Option<String>) -> Option<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let mut changed = false;
    for o in v["objects"].as_array_mut()? {
        let Some(why) = o["oid"].as_str().and_then(&refused) else {
            continue;
        };
        *o = serde_json::json!({
            "oid": o["oid"],
            "size": o["size"],
            "error": {"code": 422, "message": why},
        });
        changed = true;
    }
    changed.then(|| serde_json::to_vec(&v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_bodies() {
        let r = parse("/o/r.git/info/lfs/objects/batch").unwrap();
        assert_eq!((r.owner.as_str(), r.repo.as_str()), ("o", "r"));
        assert_eq!(r.endpoint, LfsEndpoint::Batch);
        assert_eq!(r.upstream_path(), "/o/r.git/info/lfs/objects/batch");
        assert!(r.method_allowed("POST") && !r.method_allowed("GET"));
        let l = parse("/o/r/info/lfs/locks").unwrap();
        assert!(l.method_allowed("GET") && !l.writes("GET") && l.writes("POST"));
        let v = parse("/o/r.git/info/lfs/objects/verify").unwrap();
        assert!(v.writes("POST") && !v.method_allowed("GET"));
        assert_eq!(
            parse("/o/r.git/info/lfs/locks/42/unlock").unwrap().endpoint,
            LfsEndpoint::Unlock("42".into())
        );
        for bad in [
            "/o/r.git/info/lfs/objects",
            "/o/../info/lfs/objects/batch",
            "/o/r.git/info/lfs/locks/..%2f/unlock",
            "/o/r.git/info/lfs/objects/batch/x",
            "/o/r.git/info/lfsx/objects/batch",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            operation(br#"{"operation":"upload","objects":[]}"#),
            Ok(Operation::Upload)
        );
        for bad in [
            &br#"{"operation":"download","operation":"upload"}"#[..],
            br#"{"operation":"delete"}"#,
            b"nope",
        ] {
            assert!(operation(bad).is_err());
        }
        let answer = br#"{"objects":[{"oid":"a","size":3,"actions":{"upload":{"href":"https://s/x","expires_in":60},"verify":{"href":"https://h/v"}}}]}"#;
        assert_eq!(refuse_objects(answer, |_| None), None);
        let refused = refuse_objects(answer, |oid| (oid == "a").then(|| "no".into())).unwrap();
        assert_eq!(actions(&refused), []);
        let v: serde_json::Value = serde_json::from_slice(&refused).unwrap();
        assert_eq!(
            v["objects"][0],
            serde_json::json!({"oid": "a", "size": 3, "error": {"code": 422, "message": "no"}})
        );
        let a = actions(answer);
        assert_eq!(
            a,
            [
                Action {
                    oid: "a".into(),
                    kind: ActionKind::Upload,
                    href: "https://s/x".into(),
                    expires_in: Some(60)
                },
                Action {
                    oid: "a".into(),
                    kind: ActionKind::Verify,
                    href: "https://h/v".into(),
                    expires_in: None
                },
            ]
        );
    }
}
