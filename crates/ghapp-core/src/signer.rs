//! The app's JWT signed outside this process: `signer = { command = [...] }` (or
//! `GHAPP_SIGNER_COMMAND`) names a program that reads the JWT's signing input
//! (`BASE64URL(header).BASE64URL(claims)`) on stdin and prints its RS256 signature
//! (RSASSA-PKCS1-v1_5 with SHA-256) on stdout, as raw bytes or base64. The key stays in a KMS,
//! an HSM or another process: `aws kms sign`, `gcloud kms asymmetric-sign`, Vault's transit
//! engine, or `openssl dgst -sha256 -sign KEY` behind a wrapper (docs/guides/key-in-a-vault.md).
//!
//! The command runs with a deadline ([`SIGNER_TIMEOUT`]); its output is bounded; what it prints
//! on stderr is shown only as a redacted first line.

use std::time::Duration;

use base64::Engine;

use crate::error::{Error, Result};
use crate::keys::{run_bounded, signer_name};

/// How long a signer command may take for one signature.
pub const SIGNER_TIMEOUT: Duration = Duration::from_secs(10);

/// The raw signature of `input` by the command `argv`.
pub fn sign(argv: &[String], input: &[u8]) -> Result<Vec<u8>> {
    let what = signer_name(argv);
    let out = run_bounded(&what, argv, Some(input.to_vec()), SIGNER_TIMEOUT)?;
    signature_bytes(&out, &what)
}

/// The signature in what a command printed: base64 (standard or URL-safe, padded or not, with
/// a trailing newline) when the output is all base64 text, else the raw bytes. An RSA
/// signature is as long as the key's modulus: 128 to 1024 bytes.
fn signature_bytes(out: &[u8], what: &str) -> Result<Vec<u8>> {
    let text = out.trim_ascii();
    if text.is_empty() {
        return Err(Error::Key(format!(
            "{what} printed nothing: it must print the RS256 signature of its stdin (raw or base64)"
        )));
    }
    let is_b64 =
        |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=');
    let sig = if text.iter().all(is_b64) {
        let unpadded: Vec<u8> = text.iter().copied().filter(|b| *b != b'=').collect();
        let engine = if unpadded.iter().any(|b| matches!(b, b'-' | b'_')) {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
        } else {
            base64::engine::general_purpose::STANDARD_NO_PAD
        };
        engine.decode(&unpadded).map_err(|_| {
            Error::Key(format!(
                "{what} printed text that is not base64: it must print the RS256 signature (raw or base64)"
            ))
        })?
    } else {
        out.to_vec()
    };
    if !(128..=1024).contains(&sig.len()) {
        return Err(Error::Key(format!(
            "{what} printed {} bytes, not an RS256 signature (128 to 1024 bytes for a 1024- to 8192-bit RSA key): check that it signs with the app's RSA key",
            sig.len()
        )));
    }
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_base64_signatures_are_read_and_nonsense_is_named() {
        let raw: Vec<u8> = (0..=255u8).collect();
        assert_eq!(signature_bytes(&raw, "s").unwrap(), raw);
        let std = base64::engine::general_purpose::STANDARD.encode(&raw);
        assert_eq!(
            signature_bytes(format!("{std}\n").as_bytes(), "s").unwrap(),
            raw
        );
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(signature_bytes(url.as_bytes(), "s").unwrap(), raw);
        for (bad, says) in [
            (&b"\n"[..], "printed nothing"),
            (b"c2hvcnQ=", "printed 5 bytes"),
            (b"not base64 text, too short", "printed 26 bytes"),
        ] {
            let e = signature_bytes(bad, "signer command `x`")
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
