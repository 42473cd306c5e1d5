//! An OIDC issuer shaped as GitHub Actions' (`token.actions.githubusercontent.com`), under
//! `/_oidc` on fakehub's own host: the discovery document, the signing keys (JWKS), and the
//! endpoint a runner asks for a job's ID token (`ACTIONS_ID_TOKEN_REQUEST_URL`, with the job's
//! `ACTIONS_ID_TOKEN_REQUEST_TOKEN` as bearer and `audience=` appended).
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET /_oidc/.well-known/openid-configuration` | none | `issuer`, `jwks_uri`, the algorithms |
//! | `GET /_oidc/.well-known/jwks` | none | every key not retired (`kid`, `alg`, RSA or EC) |
//! | `GET /_oidc/idtoken?api-version=2.0[&audience=A]` | a job's request token (Bearer) | `{"count": 1, "value": JWT}`: the job's claims, `aud` A (default `https://github.com/OWNER`), `iat`/`nbf` now, `exp` in 5 minutes, signed by the current key |
//!
//! Keys rotate on demand ([`crate::FakeHub::oidc_rotate`]): the new key signs from then on, the
//! old stays published until retired.

use std::collections::HashMap;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::hub::Hub;
use crate::{Body, json_response, text};

/// The path under fakehub's base URL where the issuer lives.
pub(crate) const PREFIX: &str = "/_oidc";
/// How long an ID token lives (GitHub's are short-lived too).
const TTL: i64 = 300;

struct Key {
    kid: String,
    alg: Algorithm,
    enc: EncodingKey,
    jwk: Jwk,
    retired: bool,
}

/// The issuer's keys and the jobs that may ask for tokens.
#[derive(Default)]
pub(crate) struct Issuer {
    /// The last is the current signing key.
    keys: Vec<Key>,
    /// A job's request token to its claims.
    jobs: HashMap<String, Value>,
}

/// How a test wants a token signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// The issuer's current key, as its token endpoint signs.
    Current,
    /// A key the JWKS never published, under a `kid` it does not know.
    Unpublished,
    /// HMAC with a published key's modulus as the secret (the algorithm-confusion attack).
    Hs256,
    /// `alg: none`, no signature.
    None,
}

fn make_key(alg: Algorithm, n: usize) -> Result<Key, String> {
    let e = |e: &dyn std::fmt::Display| format!("OIDC key: {e}");
    let enc = match alg {
        Algorithm::ES256 => {
            let kp =
                rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|x| e(&x))?;
            EncodingKey::from_ec_der(&kp.serialize_der())
        }
        _ => {
            let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(|x| e(&x))?;
            let pem = crate::keys::pkcs1_pem(&kp.serialize_der())?;
            EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|x| e(&x))?
        }
    };
    let kid = format!("fakehub-{n}-{:08x}", rand::random::<u32>());
    let mut jwk = Jwk::from_encoding_key(&enc, alg).map_err(|x| e(&x))?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(match alg {
        Algorithm::ES256 => KeyAlgorithm::ES256,
        _ => KeyAlgorithm::RS256,
    });
    Ok(Key {
        kid,
        alg,
        enc,
        jwk,
        retired: false,
    })
}

impl Issuer {
    pub(crate) fn new() -> Result<Issuer, String> {
        Ok(Issuer {
            keys: vec![make_key(Algorithm::RS256, 1)?],
            jobs: HashMap::new(),
        })
    }

    /// A new current key (`RS256` or `ES256`); the old ones stay published unless `retire`.
    pub(crate) fn rotate(&mut self, alg: Algorithm, retire: bool) -> Result<String, String> {
        if retire {
            for k in &mut self.keys {
                k.retired = true;
            }
        }
        let k = make_key(alg, self.keys.len() + 1)?;
        let kid = k.kid.clone();
        self.keys.push(k);
        Ok(kid)
    }

    pub(crate) fn add_job(&mut self, claims: Value) -> String {
        let token: String = (0..40)
            .map(|_| (b'a' + rand::random::<u8>() % 26) as char)
            .collect();
        self.jobs.insert(token.clone(), claims);
        token
    }

    pub(crate) fn sign(&self, claims: &Value, how: Signing) -> Result<String, String> {
        let e = |e: jsonwebtoken::errors::Error| format!("OIDC signing: {e}");
        let current = self.keys.last().ok_or("no OIDC key")?;
        match how {
            Signing::Current => {
                let mut h = Header::new(current.alg);
                h.kid = Some(current.kid.clone());
                h.typ = Some("JWT".into());
                jsonwebtoken::encode(&h, claims, &current.enc).map_err(e)
            }
            Signing::Unpublished => {
                let k = make_key(Algorithm::RS256, 0)?;
                let mut h = Header::new(Algorithm::RS256);
                h.kid = Some("not-in-the-jwks".into());
                jsonwebtoken::encode(&h, claims, &k.enc).map_err(e)
            }
            Signing::Hs256 => {
                let secret = match &current.jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => p.n.clone(),
                    _ => current.kid.clone(),
                };
                let mut h = Header::new(Algorithm::HS256);
                h.kid = Some(current.kid.clone());
                jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret.as_bytes()))
                    .map_err(e)
            }
            Signing::None => {
                use base64::Engine;
                let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                let head = json!({"alg": "none", "typ": "JWT", "kid": current.kid});
                Ok(format!(
                    "{}.{}.",
                    b.encode(head.to_string()),
                    b.encode(claims.to_string())
                ))
            }
        }
    }
}

/// The issuer's URL for a fakehub at `base_url`.
pub(crate) fn issuer_url(base_url: &str) -> String {
    format!("{base_url}{PREFIX}")
}

/// Claims as GitHub Actions puts them in a job's ID token, for a push to `git_ref` of
/// `repository` (`owner/name`); `iss`, `aud` and the times are set when it is signed.
pub(crate) fn actions_claims(repository: &str, git_ref: &str, repo_id: u64) -> Value {
    let owner = repository.split('/').next().unwrap_or(repository);
    json!({
        "sub": format!("repo:{repository}:ref:{git_ref}"),
        "repository": repository,
        "repository_id": repo_id.to_string(),
        "repository_owner": owner,
        "repository_owner_id": "9000",
        "repository_visibility": "private",
        "ref": git_ref,
        "ref_type": if git_ref.starts_with("refs/tags/") { "tag" } else { "branch" },
        "ref_protected": "false",
        "sha": "0000000000000000000000000000000000000000",
        "workflow": "CI",
        "workflow_ref": format!("{repository}/.github/workflows/ci.yml@{git_ref}"),
        "job_workflow_ref": format!("{repository}/.github/workflows/ci.yml@{git_ref}"),
        "event_name": "push",
        "actor": "octocat",
        "actor_id": "583231",
        "run_id": "1",
        "run_number": "1",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
    })
}

pub(crate) async fn handle(hub: &Hub, req: Request<Incoming>, rest: &str) -> Response<Body> {
    let issuer = issuer_url(&hub.base_url);
    match (req.method().as_str(), rest) {
        ("GET", "/.well-known/openid-configuration") => json_response(
            StatusCode::OK,
            &json!({
                "issuer": issuer,
                "jwks_uri": format!("{issuer}/.well-known/jwks"),
                "subject_types_supported": ["public", "pairwise"],
                "response_types_supported": ["id_token"],
                "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository", "repository_owner", "workflow", "event_name", "actor", "run_id"],
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                "scopes_supported": ["openid"],
            }),
        ),
        ("GET", "/.well-known/jwks") => {
            let oidc = hub.oidc.lock().unwrap_or_else(|e| e.into_inner());
            let set = JwkSet {
                keys: oidc
                    .keys
                    .iter()
                    .filter(|k| !k.retired)
                    .map(|k| k.jwk.clone())
                    .collect(),
            };
            json_response(
                StatusCode::OK,
                &serde_json::to_value(set).unwrap_or_default(),
            )
        }
        ("GET", "/idtoken") => id_token(hub, &req, &issuer),
        _ => text(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

/// A job's ID token, as the Actions runtime answers `ACTIONS_ID_TOKEN_REQUEST_URL`.
fn id_token(hub: &Hub, req: &Request<Incoming>, issuer: &str) -> Response<Body> {
    let bearer = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, t)| t.trim().to_owned());
    let q = crate::api::query_map(req.uri().query());
    if q.get("api-version").map(String::as_str) != Some("2.0") {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"message": "api-version=2.0 is required"}),
        );
    }
    let oidc = hub.oidc.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut claims) = bearer.and_then(|b| oidc.jobs.get(&b).cloned()) else {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "the request token is not a job's"}),
        );
    };
    let owner = claims["repository_owner"].as_str().unwrap_or("").to_owned();
    let aud = q
        .get("audience")
        .cloned()
        .unwrap_or_else(|| format!("https://github.com/{owner}"));
    let now = hub.now();
    if let Some(m) = claims.as_object_mut() {
        m.insert("iss".into(), json!(issuer));
        m.insert("aud".into(), json!(aud));
        m.insert("iat".into(), json!(now));
        m.insert("nbf".into(), json!(now));
        m.insert("exp".into(), json!(now + TTL));
        m.insert(
            "jti".into(),
            json!(format!("{:032x}", rand::random::<u128>())),
        );
    }
    match oidc.sign(&claims, Signing::Current) {
        Ok(jwt) => json_response(StatusCode::OK, &json!({"count": 1, "value": jwt})),
        Err(e) => json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"message": e})),
    }
}
