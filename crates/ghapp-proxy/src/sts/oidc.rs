//! Verifying an OIDC token: its issuer's keys found through the issuer's discovery document
//! (`ISSUER/.well-known/openid-configuration`, whose `issuer` must be the token's, and its
//! `jwks_uri`), fetched over HTTPS only, bounded in size and time, cached per issuer and
//! fetched again when a token names a key the cache lacks (at most every few seconds per
//! issuer). RS256 and ES256 only; `exp`, `nbf` and `iat` with a minute's skew. The audience is
//! the trust policy's to check.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::trust::Refused;

/// The largest token read (a GitHub Actions token is about 1.5 KB).
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The largest discovery document or key set read.
const MAX_DOC_BYTES: usize = 256 * 1024;
/// Each fetch from an issuer, connection to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys are fetched again after this, or at once for a `kid` not yet looked for (a rotation);
/// a `kid` already missed is looked for again only after [`REFRESH_GAP`].
const KEYS_TTL: Duration = Duration::from_secs(3600);
const REFRESH_GAP: Duration = Duration::from_secs(5);
/// Missed `kid`s remembered per issuer.
const MAX_MISSED: usize = 64;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
const LEEWAY: u64 = 60;
/// Issuers whose keys are kept at once.
const MAX_ISSUERS: usize = 64;

struct Cached {
    keys: JwkSet,
    fetched: Instant,
    /// `kid`s looked for and not found since the last fetch.
    missed: std::collections::HashSet<String>,
}

pub(crate) struct Verifier {
    http: reqwest::Client,
    keys: Mutex<HashMap<String, Cached>>,
}

/// What a token claims, read before it is verified (to find its issuer and policy).
pub(crate) struct Unverified {
    pub iss: String,
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// Reads a token's header and issuer without trusting them.
pub(crate) fn peek(jwt: &str) -> Result<Unverified, Refused> {
    let bad = |m: &str| Refused::new("token", m.to_owned());
    if jwt.len() > MAX_TOKEN_BYTES {
        return Err(bad("the bearer token is larger than 16 KiB"));
    }
    if jwt.split('.').count() != 3 {
        return Err(bad(
            "the bearer token is not a JWT (three dot-separated parts)",
        ));
    }
    // jsonwebtoken knows no `none`: a header it cannot read names an algorithm never accepted.
    let head = jsonwebtoken::decode_header(jwt).map_err(|_| {
        Refused::new(
            "algorithm",
            "the token's header is not a JWT header signed with RS256 or ES256 (none and HMAC are never accepted)",
        )
    })?;
    if !matches!(head.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(Refused::new(
            "algorithm",
            format!(
                "the token is signed with {:?}: only RS256 and ES256 are accepted",
                head.alg
            ),
        ));
    }
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let claims: Iss = jsonwebtoken::dangerous::insecure_decode::<Iss>(jwt)
        .map(|t| t.claims)
        .map_err(|_| bad("the token's claims are not JSON"))?;
    let iss = claims
        .iss
        .ok_or_else(|| bad("the token has no iss claim"))?;
    crate::config::issuer_shape(&iss).map_err(|m| Refused::new("issuer", m))?;
    Ok(Unverified {
        iss,
        alg: head.alg,
        kid: head.kid,
    })
}

impl Verifier {
    pub(crate) fn new(http: reqwest::Client) -> Verifier {
        Verifier {
            http,
            keys: Mutex::default(),
        }
    }

    /// Verifies `jwt` (already [`peek`]ed as `u`) with its issuer's keys: its claims.
    pub(crate) async fn verify(&self, jwt: &str, u: &Unverified) -> Result<Value, Refused> {
        let jwk = match self.key(&u.iss, u.kid.as_deref(), false)? {
            Some(k) => k,
            None => self
                .refresh(&u.iss)
                .await
                .and_then(|()| self.key(&u.iss, u.kid.as_deref(), true))?
                .ok_or_else(|| {
                    Refused::new(
                        "key",
                        format!(
                            "the issuer publishes no key {:?} (its keys were fetched again)",
                            u.kid.as_deref().unwrap_or("(no kid)")
                        ),
                    )
                })?,
        };
        if let Some(a) = jwk.common.key_algorithm
            && format!("{a:?}") != format!("{:?}", u.alg)
        {
            return Err(Refused::new(
                "algorithm",
                format!("the token says {:?}, its key is for {a:?}", u.alg),
            ));
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| Refused::new("key", format!("the issuer's key cannot be used: {e}")))?;
        let mut v = Validation::new(u.alg);
        v.leeway = LEEWAY;
        v.validate_nbf = true;
        v.validate_aud = false;
        v.set_issuer(&[&u.iss]);
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let data = jsonwebtoken::decode::<Value>(jwt, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => Refused::new("expired", "the token has expired"),
                K::ImmatureSignature => Refused::new("expired", "the token is not valid yet (nbf)"),
                K::InvalidSignature => Refused::new(
                    "signature",
                    "the token's signature does not verify with the issuer's key",
                ),
                K::MissingRequiredClaim(c) => {
                    Refused::new("token", format!("the token has no {c} claim"))
                }
                _ => Refused::new("token", format!("the token cannot be verified: {e}")),
            }
        })?;
        let now = jsonwebtoken::get_current_timestamp();
        if data.claims["iat"]
            .as_u64()
            .is_some_and(|iat| iat > now + LEEWAY)
        {
            return Err(Refused::new(
                "expired",
                "the token was issued in the future (iat)",
            ));
        }
        Ok(data.claims)
    }

    /// The cached key for `kid` (a key set with one key serves a token without `kid`);
    /// `None` when the cache should be refreshed first.
    fn key(
        &self,
        iss: &str,
        kid: Option<&str>,
        refreshed: bool,
    ) -> Result<Option<jsonwebtoken::jwk::Jwk>, Refused> {
        let mut m = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = m.get_mut(iss) else {
            return Ok(None);
        };
        let stale = c.fetched.elapsed() > KEYS_TTL;
        let found = match kid {
            Some(k) => c.keys.find(k).cloned(),
            None if c.keys.keys.len() == 1 => c.keys.keys.first().cloned(),
            None => {
                return Err(Refused::new(
                    "key",
                    "the token names no key (kid) and its issuer publishes several",
                ));
            }
        };
        let missed_before = kid.is_some_and(|k| c.missed.contains(k));
        if found.is_none()
            && let Some(k) = kid
            && c.missed.len() < MAX_MISSED
        {
            c.missed.insert(k.to_owned());
        }
        let recent = c.fetched.elapsed() < REFRESH_GAP;
        match found {
            Some(k) if !stale || refreshed => Ok(Some(k)),
            // Looked for a moment ago, and fetched since: fetching again would not help.
            None if (recent && missed_before) || refreshed => Err(Refused::new(
                "key",
                format!(
                    "the issuer publishes no key {:?} ({})",
                    kid.unwrap_or("(no kid)"),
                    if refreshed {
                        "its keys were fetched again"
                    } else {
                        "looked for a moment ago"
                    }
                ),
            )),
            _ => Ok(None),
        }
    }

    /// Fetches the issuer's discovery document and key set into the cache.
    async fn refresh(&self, iss: &str) -> Result<(), Refused> {
        let fail = |m: String| Refused::new("issuer", m);
        let disc_url = format!(
            "{}/.well-known/openid-configuration",
            iss.trim_end_matches('/')
        );
        let disc: Value = self.fetch(&disc_url).await.map_err(fail)?;
        if disc["issuer"].as_str() != Some(iss) {
            return Err(fail(format!(
                "the discovery document of {iss} names another issuer ({})",
                disc["issuer"]
            )));
        }
        let jwks_uri = disc["jwks_uri"]
            .as_str()
            .filter(|u| u.starts_with("https://"))
            .ok_or_else(|| {
                fail(format!(
                    "the discovery document of {iss} has no https jwks_uri"
                ))
            })?;
        let keys: JwkSet = serde_json::from_value(self.fetch(jwks_uri).await.map_err(fail)?)
            .map_err(|e| fail(format!("the key set of {iss} is not a JWK set: {e}")))?;
        let mut m = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_ISSUERS && !m.contains_key(iss) {
            // The oldest goes.
            if let Some(old) = m
                .iter()
                .min_by_key(|(_, c)| c.fetched)
                .map(|(k, _)| k.clone())
            {
                m.remove(&old);
            }
        }
        m.insert(
            iss.to_owned(),
            Cached {
                keys,
                fetched: Instant::now(),
                missed: Default::default(),
            },
        );
        Ok(())
    }

    /// GETs a JSON document over HTTPS, at most [`MAX_DOC_BYTES`], within [`FETCH_TIMEOUT`].
    async fn fetch(&self, url: &str) -> Result<Value, String> {
        let go = async {
            let mut r = self
                .http
                .get(url)
                .header("accept", "application/json")
                .send()
                .await
                .map_err(|e| {
                    format!("cannot fetch {url}: {}", ghapp_core::client::root_cause(&e))
                })?;
            if !r.status().is_success() {
                return Err(format!("{url} answered {}", r.status()));
            }
            let mut body = Vec::new();
            while let Some(chunk) = r
                .chunk()
                .await
                .map_err(|e| format!("cannot read {url}: {e}"))?
            {
                if body.len() + chunk.len() > MAX_DOC_BYTES {
                    return Err(format!("{url} is larger than {} KiB", MAX_DOC_BYTES / 1024));
                }
                body.extend_from_slice(&chunk);
            }
            serde_json::from_slice(&body).map_err(|e| format!("{url} is not JSON: {e}"))
        };
        tokio::time::timeout(FETCH_TIMEOUT, go)
            .await
            .map_err(|_| format!("{url} did not answer within {}s", FETCH_TIMEOUT.as_secs()))?
    }
}
