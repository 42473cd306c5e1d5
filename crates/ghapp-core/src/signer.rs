//! The app's JWT signed outside this process, its key never here:
//!
//! - `signer = { command = [...] }` (or `GHAPP_SIGNER_COMMAND`) names a program that reads the
//!   JWT's signing input (`BASE64URL(header).BASE64URL(claims)`) on stdin and prints its RS256
//!   signature (RSASSA-PKCS1-v1_5 with SHA-256) on stdout, as raw bytes or base64: `aws kms
//!   sign`, `gcloud kms asymmetric-sign`, Vault's transit engine, or `openssl dgst -sha256 -sign
//!   KEY` behind a wrapper (docs/guides/secrets-manager.md). Its output is bounded; what it
//!   prints on stderr is shown only as a redacted first line.
//! - `signer = { pkcs11 = { module, token, key_label, pin } }` signs with `CKM_SHA256_RSA_PKCS`
//!   inside an HSM through its PKCS#11 module, logged in with the PIN read (from its variable or
//!   file) for that signature only.
//!
//! Either has [`SIGNER_TIMEOUT`] for one signature.

use std::time::Duration;

use base64::Engine;

use crate::error::{Error, Result};
use crate::keys::{PinSource, Pkcs11Spec, SignerSpec, run_bounded, signer_name};

/// How long a signer command may take for one signature.
pub const SIGNER_TIMEOUT: Duration = Duration::from_secs(10);

/// The raw signature of `input` by `spec`.
pub fn sign(spec: &SignerSpec, input: &[u8]) -> Result<Vec<u8>> {
    match spec {
        SignerSpec::Command(argv) => {
            let what = signer_name(argv);
            let out = run_bounded(&what, argv, Some(input.to_vec()), SIGNER_TIMEOUT)?;
            signature_bytes(&out, &what)
        }
        SignerSpec::Pkcs11(p) => {
            // A module call cannot be interrupted: it runs on its own thread, waited for at
            // most the deadline (a hung HSM leaves that thread behind, not the caller).
            let (tx, rx) = std::sync::mpsc::channel();
            let (p2, data) = (p.clone(), input.to_vec());
            std::thread::Builder::new()
                .name("pkcs11-sign".into())
                .spawn(move || {
                    let _ = tx.send(pkcs11_sign(&p2, &data));
                })
                .map_err(|e| Error::Key(format!("{}: cannot start: {e}", spec.describe())))?;
            let sig = rx.recv_timeout(SIGNER_TIMEOUT).map_err(|_| {
                Error::Key(format!(
                    "{} did not sign within {}s: check that the HSM is reachable",
                    spec.describe(),
                    SIGNER_TIMEOUT.as_secs()
                ))
            })??;
            signature_bytes(&sig, &spec.describe())
        }
    }
}

/// One signature inside the token: load the module, find the token by label, log in with the
/// PIN, find the private key by label, sign with SHA256-RSA-PKCS.
fn pkcs11_sign(p: &Pkcs11Spec, input: &[u8]) -> Result<Vec<u8>> {
    use cryptoki::context::{CInitializeArgs, Pkcs11};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, ObjectClass};
    use cryptoki::session::UserType;
    let what = SignerSpec::Pkcs11(p.clone()).describe();
    let fail = |step: &str, e: &dyn std::fmt::Display| Error::Key(format!("{what}: {step}: {e}"));
    let pin = match &p.pin {
        PinSource::Env(v) => std::env::var(v)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::Key(format!("{what}: the PIN variable {v} is not set")))?,
        PinSource::File(f) => crate::fsutil::read_bounded(f, 4096)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|e| {
                Error::Key(format!(
                    "{what}: cannot read the PIN file {}: {e}",
                    f.display()
                ))
            })?,
    };
    let ctx = Pkcs11::new(&p.module).map_err(|e| {
        fail(
            "cannot load the module (install the HSM vendor's PKCS#11 library, or fix module)",
            &e,
        )
    })?;
    ctx.initialize(CInitializeArgs::OsThreads)
        .map_err(|e| fail("the module does not initialise", &e))?;
    let slot = ctx
        .get_slots_with_token()
        .map_err(|e| fail("cannot list the tokens", &e))?
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .is_ok_and(|t| t.label().trim_end() == p.token)
        })
        .ok_or_else(|| Error::Key(format!("{what}: no token with that label: fix token (`pkcs11-tool --module MODULE -L` lists them)")))?;
    let session = ctx
        .open_ro_session(slot)
        .map_err(|e| fail("cannot open a session", &e))?;
    session
        .login(UserType::User, Some(&cryptoki::types::AuthPin::new(pin)))
        .map_err(|e| fail("the PIN is not accepted", &e))?;
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(p.key_label.as_bytes().to_vec()),
        ])
        .map_err(|e| fail("cannot search the token", &e))?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::Key(format!(
                "{what}: no private key with that label in the token: fix key_label"
            ))
        })?;
    let sig = session
        .sign(&Mechanism::Sha256RsaPkcs, key, input)
        .map_err(|e| fail("the token refused to sign (is it an RSA key?)", &e))?;
    let _ = session.logout();
    Ok(sig)
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
