//! Key material for the emulator: the app's key in the PKCS#1 form GitHub hands out, written
//! 0600; fresh keys for tests. Nothing here is committed: every key is generated at run time.

use std::path::Path;

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// PKCS#8 `PrivateKeyInfo` DER -> PKCS#1 `RSA PRIVATE KEY` PEM (the form GitHub hands out).
/// PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm SEQUENCE, privateKey OCTET STRING }.
pub(crate) fn pkcs1_pem(pkcs8: &[u8]) -> Result<String, String> {
    fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
        let tag = *b.first().ok_or("short DER")?;
        let l0 = *b.get(1).ok_or("short DER")? as usize;
        let (len, hdr) = if l0 < 0x80 {
            (l0, 2)
        } else {
            let n = l0 & 0x7f;
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *b.get(2 + i).ok_or("short DER")? as usize;
            }
            (len, 2 + n)
        };
        let body = b.get(hdr..hdr + len).ok_or("short DER")?;
        Ok((tag, body, &b[hdr + len..]))
    }
    let (_, seq, _) = tlv(pkcs8)?;
    let (_, _version, rest) = tlv(seq)?;
    let (_, _alg, rest) = tlv(rest)?;
    let (tag, key, _) = tlv(rest)?;
    if tag != 0x04 {
        return Err("unexpected PKCS#8 layout".into());
    }
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    let mut pem = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).map_err(|e| e.to_string())?);
        pem.push('\n');
    }
    pem.push_str("-----END RSA PRIVATE KEY-----\n");
    Ok(pem)
}

/// A fresh RSA key in PKCS#8 PEM, for tests that need a key that is not the app's.
pub fn generate_rsa_key_pem() -> String {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
        .map(|k| k.serialize_pem())
        .unwrap_or_default()
}
