//! The proxy's CA: made on first start (key 0600), constrained to the hosts it serves, and leaf
//! certificates minted per host with their own key, back-dated and short-lived.

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::router::host_of;

const LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const LEAF_BACKDATE: Duration = Duration::from_secs(3600);

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    cert_der: CertificateDer<'static>,
    leaves: Mutex<HashMap<String, (SystemTime, Arc<rustls::ServerConfig>)>>,
}

fn ca_params(hosts: &[String]) -> Result<CertificateParams, String> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name
        .push(DnType::CommonName, "ghapp proxy CA");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // Both kinds of name are constrained: a CA that lists only DNS names would otherwise sign
    // a leaf for any IP address (and one listing only addresses, any DNS name), since a name
    // constraint binds only names of its own type (RFC 5280 4.2.1.10).
    let mut permitted = Vec::new();
    for h in hosts {
        let h = host_of(h);
        match h.parse::<std::net::IpAddr>() {
            Ok(ip) => permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                ip,
                if ip.is_ipv4() { 32 } else { 128 },
            ))),
            Err(_) => permitted.push(GeneralSubtree::DnsName(h)),
        }
    }
    let has_ip = permitted
        .iter()
        .any(|g| matches!(g, GeneralSubtree::IpAddress(_)));
    let has_dns = permitted
        .iter()
        .any(|g| matches!(g, GeneralSubtree::DnsName(_)));
    // The kind of name the CA does not serve is excluded whole: every address (0.0.0.0/0,
    // ::/0), or every DNS name (the empty name matches all). A permitted name that matches
    // nothing would do for webpki, but GnuTLS (git's TLS here) then refuses IP hosts.
    let mut excluded = Vec::new();
    if !has_ip {
        for ip in [
            std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        ] {
            excluded.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                ip, 0,
            )));
        }
    }
    if !has_dns {
        excluded.push(GeneralSubtree::DnsName(String::new()));
    }
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: excluded,
    });
    Ok(p)
}

impl Ca {
    /// Loads the CA from `dir`, or makes one when there is none or it was made for other hosts.
    pub fn load_or_create(dir: &Path, hosts: &[String]) -> Result<Ca, String> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create CA directory {}: {e}", dir.display()))?;
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca-key.pem");
        let hosts_path = dir.join("ca-hosts.txt");
        // The first line names the constraint scheme: a CA made under an older one is re-made.
        let want_hosts = format!("constraints v2\n{}", hosts.join("\n"));
        let existing = (|| -> Option<(String, String)> {
            let h = std::fs::read_to_string(&hosts_path).ok()?;
            if h != want_hosts {
                return None;
            }
            Some((
                std::fs::read_to_string(&cert_path).ok()?,
                std::fs::read_to_string(&key_path).ok()?,
            ))
        })();
        let params = ca_params(hosts)?;
        let (cert_pem, key) = match existing {
            Some((cert, key)) => (
                cert,
                KeyPair::from_pem(&key)
                    .map_err(|e| format!("CA key {}: {e}", key_path.display()))?,
            ),
            None => {
                let key = KeyPair::generate().map_err(|e| e.to_string())?;
                let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
                ghapp_core::fsutil::write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)
                    .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;
                ghapp_core::fsutil::write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)
                    .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
                ghapp_core::fsutil::write_atomic(&hosts_path, want_hosts.as_bytes(), 0o644)
                    .map_err(|e| format!("cannot write {}: {e}", hosts_path.display()))?;
                (cert.pem(), key)
            }
        };
        use rustls::pki_types::pem::PemObject;
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("CA certificate {}: {e}", cert_path.display()))?;
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert_pem,
            cert_der,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    pub fn cert_path(dir: &Path) -> PathBuf {
        dir.join("ca.pem")
    }

    /// A leaf certificate for `name` and its key.
    fn leaf(&self, name: &str, now: SystemTime) -> Result<(rcgen::Certificate, KeyPair), String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut p = CertificateParams::new(vec![name.to_owned()]).map_err(|e| e.to_string())?;
        // No common name: the SAN names the host, and some verifiers (GnuTLS) check a CN
        // against DNS name constraints, which an IP-address CN can never satisfy.
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = (now - LEAF_BACKDATE).into();
        p.not_after = (now + LEAF_LIFETIME).into();
        let leaf = p.signed_by(&key, &self.issuer).map_err(|e| e.to_string())?;
        Ok((leaf, key))
    }

    /// A TLS server config for `host` (`HOST[:PORT]`), from the cache or freshly minted.
    pub fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, String> {
        let name = host_of(host);
        let now = SystemTime::now();
        let mut leaves = self.leaves.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((made, cfg)) = leaves.get(&name)
            && now.duration_since(*made).unwrap_or_default() < LEAF_LIFETIME / 2
        {
            return Ok(cfg.clone());
        }
        let (leaf, key) = self.leaf(&name, now)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), self.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(|e| e.to_string())?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        leaves.insert(name, (now, cfg.clone()));
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    /// Whether a leaf this CA signs for `name` verifies as `name`.
    fn verifies(ca: &Ca, name: &str) -> bool {
        let (leaf, _) = ca.leaf(name, SystemTime::now()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let v =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        let sn = ServerName::try_from(name.to_owned()).unwrap();
        v.verify_server_cert(leaf.der(), &[], &sn, &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn leaves_verify_only_for_the_hosts_served() {
        let dir = tempfile::tempdir().unwrap();
        let dns = Ca::load_or_create(
            &dir.path().join("a"),
            &["github.com:443".into(), "api.github.com:443".into()],
        )
        .unwrap();
        assert!(verifies(&dns, "github.com"));
        assert!(verifies(&dns, "api.github.com"));
        assert!(!verifies(&dns, "evil.example"));
        assert!(!verifies(&dns, "1.2.3.4"));
        assert!(!verifies(&dns, "127.0.0.1"));
        let ip = Ca::load_or_create(&dir.path().join("b"), &["127.0.0.1:8443".into()]).unwrap();
        assert!(verifies(&ip, "127.0.0.1"));
        assert!(!verifies(&ip, "127.0.0.2"));
        assert!(!verifies(&ip, "evil.example"));
        assert!(!verifies(&ip, "github.com"));
    }
}
