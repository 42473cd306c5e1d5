//! A token exchange service instead of a key: `GHAPP_EXCHANGE_URL` (the service, e.g.
//! `https://sts.example.com`, an octo-sts or `ghapp proxy`'s `[sts]`) and
//! `GHAPP_EXCHANGE_IDENTITY` (the trust policy's name). The OIDC token comes from GitHub
//! Actions (`ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN`, asked for the audience
//! `GHAPP_EXCHANGE_AUDIENCE`, default the service's host) or from `GHAPP_OIDC_TOKEN_FILE` (a
//! Kubernetes projected service-account token, re-read on every exchange).

use std::path::PathBuf;

use super::{Env, GitHubHost};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeConfig {
    /// `https://HOST[:PORT][/PREFIX]`, without a trailing slash.
    pub url: String,
    pub identity: String,
    /// The audience the OIDC token is asked for.
    pub audience: String,
    pub token_file: Option<PathBuf>,
    /// The GitHub its tokens are for (`GHAPP_API_URL`, default github.com).
    pub github: GitHubHost,
}

impl ExchangeConfig {
    /// From the environment; `None` when `GHAPP_EXCHANGE_URL` is unset.
    pub fn from_env(env: &dyn Env, github: Option<&GitHubHost>) -> Result<Option<ExchangeConfig>> {
        let Some(url) = env.var("GHAPP_EXCHANGE_URL") else {
            return Ok(None);
        };
        let url = url.trim().trim_end_matches('/').to_owned();
        let host = url
            .strip_prefix("https://")
            .map(|r| r.split('/').next().unwrap_or(""))
            .filter(|h| !h.is_empty() && !h.contains(['@', '?', '#', ' ']))
            .ok_or_else(|| {
                Error::Config(format!(
                    "GHAPP_EXCHANGE_URL={url:?} is not an https:// URL: use the exchange service's address, e.g. https://sts.example.com"
                ))
            })?;
        let identity = env.var("GHAPP_EXCHANGE_IDENTITY").ok_or_else(|| {
            Error::Config(
                "GHAPP_EXCHANGE_URL is set without GHAPP_EXCHANGE_IDENTITY: name the trust policy (.github/chainguard/NAME.sts.yaml)".into(),
            )
        })?;
        if identity.is_empty()
            || identity.len() > 100
            || !identity
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(Error::Config(format!(
                "GHAPP_EXCHANGE_IDENTITY={identity:?} is not a policy name (letters, digits, - _ .)"
            )));
        }
        Ok(Some(ExchangeConfig {
            audience: env
                .var("GHAPP_EXCHANGE_AUDIENCE")
                .unwrap_or_else(|| host.to_owned()),
            url,
            identity,
            token_file: env.var("GHAPP_OIDC_TOKEN_FILE").map(PathBuf::from),
            github: github.cloned().unwrap_or_else(GitHubHost::dotcom),
        }))
    }

    pub fn serves(&self, host: &str) -> bool {
        self.github.serves(host)
    }

    /// The cache key's issuer: the service and the policy.
    pub fn issuer(&self) -> String {
        format!("exchange {}#{}", self.url, self.identity)
    }
}
