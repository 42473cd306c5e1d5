//! HTTP Basic credentials (RFC 7617), as git sends `Authorization` and proxies get
//! `Proxy-Authorization`.

use base64::Engine;

/// `(user, password)` from a `Basic` header value; `None` for anything else.
pub fn parse(header: &str) -> Option<(String, String)> {
    let (scheme, b64) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (user, pass) = s.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// The header value for `user:password`.
pub fn encode(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        assert_eq!(parse("Basic eDp5"), Some(("x".into(), "y".into())));
        assert_eq!(parse("basic eDp5"), Some(("x".into(), "y".into())));
        assert_eq!(parse("Bearer eDp5"), None);
        assert_eq!(parse("Basic !!!"), None);
        assert_eq!(parse("Basic eHk="), None, "no colon");
        assert_eq!(parse(""), None);
    }

    proptest! {
        #[test]
        fn roundtrip(user in "[^:\0]{0,20}", pass in "\\PC{0,40}") {
            prop_assert_eq!(parse(&encode(&user, &pass)), Some((user, pass)));
        }

        #[test]
        fn never_panics(h in "\\PC{0,60}") {
            let _ = parse(&h);
        }
    }
}
