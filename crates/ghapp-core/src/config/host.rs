//! Where things are: the git host derived from the API URL, and the default cache directory.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The default cache dir: the runtime dir (tmpfs, cleared at logout) when there is one, else
/// the user cache dir (`directories` has no runtime dir without `XDG_RUNTIME_DIR`). With no
/// home directory at all: a directory named for this user's uid in the temporary directory,
/// which the cache uses only if this user owns it and no one else can write it.
pub fn default_cache_dir() -> PathBuf {
    match directories::ProjectDirs::from("", "", "ghapp") {
        Some(d) => d
            .runtime_dir()
            .map(|r| r.join("tokens"))
            .unwrap_or_else(|| d.cache_dir().join("tokens")),
        None => std::env::temp_dir().join(format!(
            "ghapp-tokens-{}",
            rustix::process::geteuid().as_raw()
        )),
    }
}

/// `api.github.com` -> `github.com`; `https://HOST[:PORT]/api/v3` -> `HOST[:PORT]`.
///
/// Parsed by hand rather than with a URL crate: this runs on the helper's warm path, which must
/// not pay for IDNA tables it never needs (host names here are ASCII).
pub fn git_host_from_api(api_url: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::Config(format!(
            "API URL {api_url:?} {why}: use https://api.github.com or https://HOST/api/v3"
        ))
    };
    let Some((scheme, rest)) = api_url.split_once("://") else {
        return Err(bad("is not a URL"));
    };
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(Error::Config(format!(
            "API URL {api_url:?} is not https: ghapp sends a signed JWT and tokens, so only https is allowed"
        )));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(bad("holds credentials"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            let p: u16 = p.parse().map_err(|_| bad("has a bad port"))?;
            (h, Some(p))
        }
        _ => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':'));
    if !host_ok {
        return Err(bad("has no valid host"));
    }
    let host = host.to_ascii_lowercase();
    if host == "api.github.com" {
        return Ok("github.com".into());
    }
    let host = host.strip_prefix("api.").unwrap_or(&host);
    Ok(match port {
        Some(p) if p != 443 => format!("{host}:{p}"),
        _ => host.to_owned(),
    })
}

pub(crate) fn normalize_api_url(s: &str) -> String {
    s.trim().trim_end_matches('/').to_owned()
}
