//! `[notify]`: where the proxy says that something waits for a person (see the `notify`
//! module).
//!
//! ```toml
//! [notify]
//! urls = [{ env = "SLACK_WEBHOOK_URL" }, "https://relay.example.com/ghapp"]
//! secret = { env = "GHAPP_NOTIFY_SECRET" }     # signs each body (X-Ghapp-Signature-256)
//! page_url = "https://ghapp-approvals.example.com"  # the approvals page as people reach it
//! events = ["held", "proposed", "budget"]       # the default: all three
//! retries = 5                                   # attempts after the first, with backoff
//! ```

use serde::Deserialize;

use super::ConfigError;
use super::sandbox::{Credential, SecretSource};
use ghapp_core::secret::ProxySecret;

/// What a notification is about.
pub(super) const EVENTS: [&str; 3] = ["held", "proposed", "budget"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileNotify {
    urls: Vec<SecretSource>,
    secret: Option<SecretSource>,
    page_url: Option<String>,
    events: Option<Vec<String>>,
    retries: Option<u32>,
}

/// The notification settings. Each URL is held as a secret (an incoming-webhook URL is its
/// own credential); logs name only its host.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub urls: Vec<ProxySecret>,
    pub secret: Option<ProxySecret>,
    /// Where the approvals page is, for links (`http://ADMIN_LISTEN` when not set).
    pub page_url: Option<String>,
    pub events: Vec<&'static str>,
    pub retries: u32,
}

impl NotifyConfig {
    pub fn wants(&self, event: &str) -> bool {
        self.events.contains(&event)
    }
}

/// Whether `url` is one the proxy may post to: `https://`, or `http://` to a loopback
/// address (a relay beside the proxy); no user part.
pub fn url_shape(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("is not a URL ({e})"))?;
    let host = parsed.host_str().unwrap_or("").trim_matches(['[', ']']);
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    if parsed.host().is_none() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("needs a host and no user:password part".into());
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("must be https:// (http:// only to a loopback relay)".into()),
    }
}

impl FileNotify {
    pub(super) fn build(self, origin: &str) -> Result<NotifyConfig, ConfigError> {
        let err = |m: String| ConfigError(format!("proxy config {origin}: [notify] {m}"));
        if self.urls.is_empty() {
            return Err(err(
                "urls is empty: name at least one receiver, e.g. urls = [{ env = \"SLACK_WEBHOOK_URL\" }]".into(),
            ));
        }
        let mut urls = Vec::new();
        for (i, u) in self.urls.into_iter().enumerate() {
            let what = format!("[notify] urls entry {}", i + 1);
            let url = match u.read(&what).map_err(&err)? {
                Credential::Secret(s) => s,
                Credential::Sha256(_) => {
                    return Err(err(format!("{what}: give the URL, not its sha256")));
                }
            };
            // The URL is not quoted back: it may carry its receiver's secret.
            url_shape(url.expose()).map_err(|m| err(format!("{what} {m}")))?;
            urls.push(url);
        }
        let secret = match self.secret.map(|s| s.read("[notify] secret")) {
            None => None,
            Some(Ok(Credential::Secret(s))) => Some(s),
            Some(Ok(Credential::Sha256(_))) => {
                return Err(err("secret: give the value, not its sha256".into()));
            }
            Some(Err(e)) => return Err(err(e)),
        };
        if let Some(p) = &self.page_url {
            url::Url::parse(p)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    err(format!(
                        "page_url = {p:?} is not an http(s) URL: use the address people open the approvals page at"
                    ))
                })?;
        }
        let events = match self.events {
            None => EVENTS.to_vec(),
            Some(list) => list
                .iter()
                .map(|e| {
                    EVENTS.iter().copied().find(|k| k == e).ok_or_else(|| {
                        err(format!("events: {e:?} is not one of {}", EVENTS.join(", ")))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let retries = self.retries.unwrap_or(5);
        if retries > 10 {
            return Err(err(format!(
                "retries = {retries}: at most 10 (the last waits about 8 minutes)"
            )));
        }
        Ok(NotifyConfig {
            urls,
            secret,
            page_url: self.page_url.map(|p| p.trim_end_matches('/').to_owned()),
            events,
            retries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_are_https_or_a_loopback_relay() {
        assert!(url_shape("https://hooks.slack.com/services/T/B/X").is_ok());
        assert!(url_shape("http://127.0.0.1:9000/hook").is_ok());
        assert!(url_shape("http://hooks.example.com/x").is_err());
        assert!(url_shape("https://user:pw@hooks.example.com/x").is_err());
        assert!(url_shape("ftp://example.com").is_err());
        assert!(url_shape("not a url").is_err());
    }
}
