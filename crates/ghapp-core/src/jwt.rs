//! The app's JWT: RS256, `iat = now - 60 s`, `exp = now + 540 s`, `iss` = client id or app id
//! (GitHub's "Generating a JSON Web Token (JWT) for a GitHub App"). A clock offset learnt from
//! GitHub's `Date` header is applied when the local clock is off.

use std::sync::atomic::{AtomicI64, Ordering};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::AppIdent;
use crate::error::{Error, Result};
use crate::secret::{AppJwt, PrivateKeyPem};

/// Back-dating of `iat`, as GitHub recommends against clock drift.
pub const IAT_BACKDATE: i64 = 60;
/// Lifetime after now; GitHub refuses more than 600 s after `iat`... and after its own now.
pub const EXP_AHEAD: i64 = 540;

#[derive(Serialize)]
struct Claims<'a> {
    iat: i64,
    exp: i64,
    iss: &'a str,
}

/// What signs: the parsed key in memory, or a signer that holds it elsewhere.
enum SignWith {
    Key(EncodingKey),
    Signer(crate::keys::SignerSpec),
}

/// Signs app JWTs. Holds the parsed key or the signer command; its `Debug` shows only the
/// issuer.
pub struct AppSigner {
    ident: AppIdent,
    with: SignWith,
    /// Seconds to add to the local clock (server minus local), learnt from a `Date` header.
    offset: AtomicI64,
}

impl std::fmt::Debug for AppSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSigner")
            .field("issuer", &self.ident.issuer())
            .field("offset", &self.offset.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Installs the one crypto provider (aws-lc-rs) for rustls and jsonwebtoken. Idempotent.
pub fn install_crypto_providers() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

impl AppSigner {
    /// Parses the key (PKCS#1 or PKCS#8). `origin` names where it came from, for the error.
    pub fn new(ident: AppIdent, pem: &PrivateKeyPem, origin: &str) -> Result<Self> {
        install_crypto_providers();
        let key = EncodingKey::from_rsa_pem(pem.expose().as_bytes()).map_err(|e| {
            Error::Key(format!(
                "the private key from {origin} is not a valid RSA private key ({}): download a new key from the app's settings",
                describe_jwt_error(&e)
            ))
        })?;
        let signer = Self {
            ident,
            with: SignWith::Key(key),
            offset: AtomicI64::new(0),
        };
        // Sign once now so a key that parses but cannot sign fails here, named, not later.
        signer.sign()?;
        Ok(signer)
    }

    /// Signs with a signer instead of a key ([`crate::signer`]): nothing secret is held here.
    /// It signs once now, so a signer that fails or hangs is named at start, not at first use.
    pub fn with_signer(ident: AppIdent, spec: crate::keys::SignerSpec) -> Result<Self> {
        let signer = Self {
            ident,
            with: SignWith::Signer(spec),
            offset: AtomicI64::new(0),
        };
        signer.sign()?;
        Ok(signer)
    }

    pub fn ident(&self) -> &AppIdent {
        &self.ident
    }

    pub fn set_clock_offset(&self, secs: i64) {
        self.offset.store(secs, Ordering::Relaxed);
    }

    pub fn clock_offset(&self) -> i64 {
        self.offset.load(Ordering::Relaxed)
    }

    pub fn sign(&self) -> Result<AppJwt> {
        let now = unix_now() + self.clock_offset();
        let iss = self.ident.issuer();
        let claims = Claims {
            iat: now - IAT_BACKDATE,
            exp: now + EXP_AHEAD,
            iss: &iss,
        };
        let header = Header::new(Algorithm::RS256);
        match &self.with {
            SignWith::Key(key) => jsonwebtoken::encode(&header, &claims, key)
                .map(AppJwt::new)
                .map_err(|e| {
                    Error::Key(format!(
                        "cannot sign the app JWT with the private key ({}): download a new key from the app's settings",
                        describe_jwt_error(&e)
                    ))
                }),
            SignWith::Signer(spec) => {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                // Both always serialise: plain structs of strings and numbers.
                let input = format!(
                    "{}.{}",
                    b64.encode(serde_json::to_vec(&header).unwrap_or_default()),
                    b64.encode(serde_json::to_vec(&claims).unwrap_or_default())
                );
                let sig = crate::signer::sign(spec, input.as_bytes())?;
                Ok(AppJwt::new(format!("{input}.{}", b64.encode(sig))))
            }
        }
    }
}

fn describe_jwt_error(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidKeyFormat => "not an RSA key in PKCS#1 or PKCS#8 PEM form".into(),
        ErrorKind::InvalidRsaKey(_) => "the RSA key is malformed".into(),
        _ => "the key could not be used".into(),
    }
}

pub use crate::time::unix_now;
