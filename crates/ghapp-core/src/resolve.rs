//! One credential resolution for every caller (the helper, `ghapp token`, `gh-pr`): which app
//! serves this host and owner, else the fallback personal access token, else nothing; and, on
//! a miss, the token itself, falling back to the personal access token when the app is not
//! installed on the owner.
//!
//! [`Config::resolve`] is pure and cheap (the helper's warm path uses it); [`obtain_blocking`]
//! mints and needs the `mint` feature.

use crate::cache::TokenKey;
use crate::config::{AppConfig, Config, ExchangeConfig, PatConfig};
use crate::request::TokenRequest;

/// Who answers for a host and owner.
#[derive(Debug, Clone, Copy)]
pub enum Resolution<'a> {
    /// An app serves; `fallback` answers when the app is not installed on the owner.
    App {
        app: &'a AppConfig,
        fallback: Option<&'a PatConfig>,
    },
    /// No app serves; a token exchange service does (no key here: an OIDC token is exchanged).
    Exchange(&'a ExchangeConfig),
    /// No app serves; the personal access token does.
    Pat(&'a PatConfig),
    /// Nothing is configured for it.
    Nothing,
}

impl Config {
    /// Who answers for `owner` (when known) on `host`; with no host (`ghapp token --repo`), on
    /// whichever host an app or token serves the owner.
    pub fn resolve(&self, host: Option<&str>, owner: Option<&str>) -> Resolution<'_> {
        let app = match host {
            Some(h) => self.apps.iter().find(|a| a.serves(h, owner)),
            None => self.apps.iter().find(|a| a.serves_owner(owner)),
        };
        match app {
            Some(app) => Resolution::App {
                app,
                fallback: self.pats.iter().find(|p| p.serves(app.git_host(), owner)),
            },
            None => {
                if let Some(ex) = self
                    .exchange
                    .as_ref()
                    .filter(|e| host.is_none_or(|h| e.serves(h)))
                {
                    return Resolution::Exchange(ex);
                }
                let pat = match host {
                    Some(h) => self.pats.iter().find(|p| p.serves(h, owner)),
                    None => self.pats.iter().find(|p| p.serves_owner(owner)),
                };
                pat.map_or(Resolution::Nothing, Resolution::Pat)
            }
        }
    }
}

impl Resolution<'_> {
    /// The cache key of `req` for whoever answers with installation tokens (an app, an
    /// exchange), or `None` (a personal access token is never cached).
    pub fn token_key(&self, req: &TokenRequest) -> Option<TokenKey> {
        match self {
            Resolution::App { app, .. } => Some(crate::request::token_key(app, req)),
            Resolution::Exchange(ex) => Some(crate::request::exchange_key(ex, req)),
            Resolution::Pat(_) | Resolution::Nothing => None,
        }
    }
}

#[cfg(feature = "mint")]
pub use obtain::{Credential, FallbackReason, Obtain, obtain_blocking};

#[cfg(feature = "mint")]
mod obtain {
    use super::Resolution;
    use crate::broker::{Broker, TokenSource};
    use crate::cache::CachedToken;
    use crate::client::GitHubClient;
    use crate::config::{Config, PatConfig, not_configured};
    use crate::error::{Error, Result};
    use crate::request::TokenRequest;
    use crate::secret::PersonalAccessToken;

    /// Why the personal access token answered.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FallbackReason {
        NoApp,
        NotInstalled,
    }

    impl FallbackReason {
        pub fn describe(self) -> &'static str {
            match self {
                FallbackReason::NoApp => "no GitHub App is configured for it",
                FallbackReason::NotInstalled => "the app is not installed on it",
            }
        }
    }

    /// A credential for the request.
    pub enum Credential<'a> {
        /// An installation token; `minted`: new from GitHub (not from a cache), so a note
        /// about it is said once.
        Installation { token: CachedToken, minted: bool },
        /// The fallback personal access token (never cached, no expiry known).
        Pat {
            token: PersonalAccessToken,
            from: &'a PatConfig,
            reason: FallbackReason,
            /// What loading it noticed (a file readable by others, …).
            warnings: Vec<String>,
        },
    }

    /// How to obtain it.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Obtain<'a> {
        /// The only CA to trust for GitHub (default: the system's or `SSL_CERT_FILE`).
        pub ca_pem: Option<&'a str>,
        /// Do not believe a remembered "not installed" (an operator asking directly).
        pub skip_negative_cache: bool,
    }

    /// Obtains the credential `resolution` names for `req`: the cached or newly minted
    /// installation token, else the personal access token. Builds a current-thread runtime for
    /// the one call; the key is loaded only when a token must be minted (off the runtime's
    /// thread, as the keyring's D-Bus client needs).
    pub fn obtain_blocking<'a>(
        cfg: &Config,
        resolution: &Resolution<'a>,
        req: &TokenRequest,
        how: Obtain<'_>,
    ) -> Result<Credential<'a>> {
        let (app, fallback) = match *resolution {
            Resolution::App { app, fallback } => (app, fallback),
            Resolution::Exchange(ex) => {
                let key = crate::request::exchange_key(ex, req);
                let token = crate::exchange::obtain_blocking(ex, &key, req, cfg, how.ca_pem)?;
                return Ok(Credential::Installation {
                    token: token.0,
                    minted: token.1,
                });
            }
            Resolution::Pat(pat) => return pat_credential(pat, req, FallbackReason::NoApp),
            Resolution::Nothing => return Err(Error::Config(not_configured(cfg.file.as_deref()))),
        };
        let mut broker = Broker::new(app.clone(), cfg.refresh_margin, &cfg.cache_dir)?;
        if let Some(ca) = how.ca_pem {
            broker = broker.with_client(GitHubClient::with_ca(app.api_url(), ca)?);
        }
        if how.skip_negative_cache {
            broker = broker.without_negative_cache();
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))?;
        match (rt.block_on(broker.token_with_source(req)), fallback) {
            (Ok((token, source)), _) => Ok(Credential::Installation {
                token,
                minted: source == TokenSource::Minted,
            }),
            // The personal access token is the fallback it exists for.
            (Err(Error::NotInstalled { owner, .. }), Some(pat)) => {
                tracing::debug!(%owner, "app not installed; answering with the personal access token");
                pat_credential(pat, req, FallbackReason::NotInstalled)
            }
            (Err(e), _) => Err(e),
        }
    }

    fn pat_credential<'a>(
        pat: &'a PatConfig,
        req: &TokenRequest,
        reason: FallbackReason,
    ) -> Result<Credential<'a>> {
        if !req.fit && !req.permissions.is_empty() {
            let owner = req.owner.as_deref().unwrap_or("the owner");
            return Err(Error::Config(format!(
                "{owner}: {}, and the fallback personal access token cannot be narrowed to {}: install the app, or ask for the default permissions",
                reason.describe(),
                req.permissions
            )));
        }
        let (token, warnings) = pat.source.load()?;
        Ok(Credential::Pat {
            token,
            from: pat,
            reason,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppIdent, GitHubHost};
    use crate::keys::{KeySource, PatSource};

    fn app(host: &str, owners: &[&str]) -> AppConfig {
        AppConfig {
            github: GitHubHost::from_git_host(host),
            ident: AppIdent {
                app_id: Some(1),
                client_id: None,
            },
            installation_id: None,
            key: KeySource::Command("true".into()),
            owners: owners.iter().map(|s| s.to_string()).collect(),
            webhook_secret: None,
            sources: Default::default(),
        }
    }

    fn pat(host: &str, owners: &[&str]) -> PatConfig {
        PatConfig {
            github: GitHubHost::from_git_host(host),
            source: PatSource::File("/nonexistent".into()),
            owners: owners.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn cfg(apps: Vec<AppConfig>, pats: Vec<PatConfig>) -> Config {
        Config {
            apps,
            pats,
            refresh_margin: std::time::Duration::from_secs(600),
            cache_dir: "/tmp".into(),
            file: None,
            env_github: None,
            exchange: None,
        }
    }

    /// (host, owner) -> who answers: "app:HOST", "app:HOST+pat", "pat:HOST", "nothing".
    fn who(c: &Config, host: Option<&str>, owner: Option<&str>) -> String {
        match c.resolve(host, owner) {
            Resolution::App { app, fallback } => format!(
                "app:{}{}",
                app.git_host(),
                if fallback.is_some() { "+pat" } else { "" }
            ),
            Resolution::Pat(p) => format!("pat:{}", p.github.git_host()),
            Resolution::Exchange(e) => format!("exchange:{}", e.github.git_host()),
            Resolution::Nothing => "nothing".into(),
        }
    }

    #[test]
    fn who_answers() {
        let c = cfg(
            vec![app("github.com", &["octo-org"]), app("ghe.corp", &[])],
            vec![pat("github.com", &[]), pat("ghe.corp", &["corp"])],
        );
        let table = [
            (Some("github.com"), Some("Octo-Org"), "app:github.com+pat"),
            (Some("github.com"), Some("someone"), "pat:github.com"),
            (Some("github.com"), None, "app:github.com+pat"),
            (Some("ghe.corp"), Some("corp"), "app:ghe.corp+pat"),
            (Some("ghe.corp"), Some("other"), "app:ghe.corp"),
            (Some("gitlab.com"), Some("octo-org"), "nothing"),
            (None, Some("octo-org"), "app:github.com+pat"),
            (None, Some("someone"), "app:ghe.corp"),
        ];
        for (host, owner, want) in table {
            assert_eq!(who(&c, host, owner), want, "{host:?} {owner:?}");
        }
        let only_pat = cfg(vec![], vec![pat("github.com", &["me"])]);
        assert_eq!(who(&only_pat, None, Some("me")), "pat:github.com");
        assert_eq!(who(&only_pat, None, Some("you")), "nothing");
    }
}
