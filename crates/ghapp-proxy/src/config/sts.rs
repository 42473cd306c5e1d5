//! `[sts]`: the token exchange service's settings (see the `sts` module).
//!
//! ```toml
//! [sts]
//! listen = "0.0.0.0:8443"
//! domain = "sts.example.com"         # the service's name: a token's default audience
//! tls_cert_file = "/etc/ghapp/sts.crt"   # serve HTTPS itself (else plain HTTP behind an ingress)
//! tls_key_file = "/etc/ghapp/sts.key"
//! issuers = ["https://token.actions.githubusercontent.com"]  # the only issuers trusted; empty: any a policy names
//! oidc_ca_file = "/etc/ssl/private-issuer.pem"  # trust for issuers with a private CA
//! org_policy_repo = ".github"        # where an organization's policies live
//! failures_per_minute = 30           # refused exchanges per source address before 429
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSts {
    listen: String,
    domain: String,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    #[serde(default)]
    issuers: Vec<String>,
    oidc_ca_file: Option<PathBuf>,
    org_policy_repo: Option<String>,
    failures_per_minute: Option<u32>,
}

/// The exchange service's settings.
#[derive(Debug, Clone)]
pub struct StsConfig {
    pub listen: SocketAddr,
    /// The service's name: the audience a token must carry when its policy names none.
    pub domain: String,
    /// Certificate chain and key (PEM) when the service terminates TLS itself.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Issuers trusted at all (exact URLs); empty: any HTTPS issuer a policy names.
    pub issuers: Vec<String>,
    pub oidc_ca_file: Option<PathBuf>,
    pub org_policy_repo: String,
    pub failures_per_minute: u32,
}

/// Whether `iss` is an issuer URL the service will fetch keys from: `https://HOST[:PORT][/PATH]`,
/// no user, query or fragment, at most 255 characters.
pub fn issuer_shape(iss: &str) -> Result<(), String> {
    let ok = iss.len() <= 255
        && !iss.contains(['?', '#', '@', ' ', '\\'])
        && iss.strip_prefix("https://").is_some_and(|rest| {
            let host = rest.split('/').next().unwrap_or("");
            !host.is_empty()
                && !rest.split('/').skip(1).any(|s| s == ".." || s == ".")
                && rest.bytes().all(|b| b.is_ascii_graphic())
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "issuer {:?} is not an https:// URL without user, query or fragment",
            iss.chars().take(80).collect::<String>()
        ))
    }
}

impl FileSts {
    pub(super) fn build(
        self,
        origin: &str,
        abs: impl Fn(PathBuf) -> PathBuf,
    ) -> Result<StsConfig, ConfigError> {
        let err = |m: String| ConfigError(format!("proxy config {origin}: [sts] {m}"));
        let listen = self.listen.parse().map_err(|_| {
            err(format!(
                "listen = {:?} is not an address: use e.g. \"0.0.0.0:8443\"",
                self.listen
            ))
        })?;
        let domain = self.domain.trim().to_owned();
        if domain.is_empty() || domain.contains(['/', ' ', '?', '#']) {
            return Err(err(format!(
                "domain = {:?} is not a host name: use the name clients reach the service at, e.g. \"sts.example.com\"",
                self.domain
            )));
        }
        let tls = match (self.tls_cert_file, self.tls_key_file) {
            (Some(c), Some(k)) => Some((abs(c), abs(k))),
            (None, None) => None,
            _ => {
                return Err(err(
                    "tls_cert_file and tls_key_file go together: set both, or neither (plain HTTP behind a TLS ingress)".into(),
                ));
            }
        };
        for i in &self.issuers {
            issuer_shape(i).map_err(|m| err(format!("issuers: {m}")))?;
        }
        let org_policy_repo = self.org_policy_repo.unwrap_or_else(|| ".github".into());
        if ghapp_gitproto::repo::RepoName::parse(&format!("o/{org_policy_repo}")).is_none() {
            return Err(err(format!(
                "org_policy_repo = {org_policy_repo:?} is not a repository name"
            )));
        }
        Ok(StsConfig {
            listen,
            domain,
            tls,
            issuers: self.issuers,
            oidc_ca_file: self.oidc_ca_file.map(abs),
            org_policy_repo,
            failures_per_minute: self.failures_per_minute.unwrap_or(30).max(1),
        })
    }
}
