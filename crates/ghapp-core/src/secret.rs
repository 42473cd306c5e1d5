//! One newtype per secret. None has `Display`; `Debug` prints `Type(****)`. The value leaves only
//! through `expose()`, at the place a header or a file is written.

use std::fmt;

use sha2::{Digest, Sha256};

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            /// The secret itself. Call it only where the value is sent or stored.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(****)"))
            }
        }
    };
}

secret_type!(
    /// A GitHub App's private key, PEM text (PKCS#1 as GitHub downloads it, or PKCS#8).
    PrivateKeyPem
);
secret_type!(
    /// An installation access token (`ghs_...`). Never assume its length or alphabet: GitHub's
    /// stateless tokens are several hundred characters and contain dots.
    InstallationToken
);
secret_type!(
    /// A signed app JWT: short-lived, but it proves possession of the key.
    AppJwt
);
secret_type!(
    /// A workload's OIDC ID token (a JWT): proves who the workload is for a few minutes.
    OidcToken
);
secret_type!(
    /// A webhook secret from the credentials JSON.
    WebhookSecret
);
secret_type!(
    /// A sandbox's secret for `ghapp proxy` (the password of its `HTTPS_PROXY` URL).
    ProxySecret
);

/// Serialised as its value: the one place that carries it is the admin API's answer that
/// creates a sandbox (its secret, shown once), read by `ghapp sandbox add`.
impl serde::Serialize for ProxySecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ProxySecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(ProxySecret)
    }
}

impl ProxySecret {
    /// Constant-time comparison with what a client presented.
    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

secret_type!(
    /// A fine-grained personal access token (`github_pat_...`): the fallback for users who
    /// cannot install an app. Long-lived, so it is never cached, copied or printed by ghapp.
    PersonalAccessToken
);

impl PersonalAccessToken {
    /// A short, stable, non-reversible name for the token.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }
}

impl InstallationToken {
    /// A short, stable, non-reversible name for the token: safe in logs and audit events.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }
}

/// `sha256:` and the first 12 hex digits of the SHA-256 of `value`.
pub fn fingerprint(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let t = InstallationToken::new("ghs_secretvalue");
        assert_eq!(format!("{t:?}"), "InstallationToken(****)");
        let k = PrivateKeyPem::new("-----BEGIN RSA PRIVATE KEY-----\nabc");
        assert_eq!(format!("{k:?}"), "PrivateKeyPem(****)");
        assert!(!t.fingerprint().contains("secretvalue"));
        assert_eq!(t.fingerprint().len(), "sha256:".len() + 12);
    }

    #[test]
    fn proxy_secrets_compare_and_redact() {
        let s = ProxySecret::new("correct horse battery");
        assert_eq!(format!("{s:?}"), "ProxySecret(****)");
        assert!(s.matches("correct horse battery"));
        assert!(!s.matches("correct horse battery!"));
        assert!(!s.matches("wrong"));
        assert!(!s.matches(""));
    }
}
