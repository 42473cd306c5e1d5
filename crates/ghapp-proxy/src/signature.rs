//! Bodies signed as GitHub signs its webhooks: `sha256=HEX`, the HMAC-SHA256 of the body with a
//! shared secret. The proxy checks GitHub's deliveries with it and signs its own notifications.

use hmac::{Hmac, Mac};

/// `bytes` as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256=HEX`: the HMAC-SHA256 of `body` with `secret`.
pub(crate) fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// Whether `signature` (`sha256=HEX`) is the HMAC-SHA256 of `body` with `secret` (compared in
/// constant time).
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(given) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_as_github_computes_them() {
        // GitHub's documented example ("Validating webhook deliveries").
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(secret, body), sig);
        assert!(verify(secret, body, sig));
        assert!(!verify(secret, b"Hello, World?", sig));
        assert!(!verify(b"another secret", body, sig));
        assert!(!verify(secret, body, &sig.replace("sha256=", "sha1=")));
        assert!(!verify(secret, body, "sha256=zz"));
        assert!(!verify(secret, body, ""));
    }
}
