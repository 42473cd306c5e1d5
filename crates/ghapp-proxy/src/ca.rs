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

const LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const LEAF_BACKDATE: Duration = Duration::from_secs(3600);

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    cert_der: CertificateDer<'static>,
    leaves: Mutex<HashMap<String, (SystemTime, Arc<rustls::ServerConfig>)>>,
}

fn host_only(host_port: &str) -> &str {
    match host_port.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    }
}

fn ca_params(hosts: &[String]) -> Result<CertificateParams, String> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name
        .push(DnType::CommonName, "ghapp proxy CA");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut permitted = Vec::new();
    for h in hosts {
        let h = host_only(h);
        match h.parse::<std::net::IpAddr>() {
            Ok(ip) => permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                ip,
                if ip.is_ipv4() { 32 } else { 128 },
            ))),
            Err(_) => permitted.push(GeneralSubtree::DnsName(h.to_owned())),
        }
    }
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
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
        let want_hosts = hosts.join("\n");
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

    /// A TLS server config for `host` (`HOST[:PORT]`), from the cache or freshly minted.
    pub fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, String> {
        let name = host_only(host).to_ascii_lowercase();
        let now = SystemTime::now();
        let mut leaves = self.leaves.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((made, cfg)) = leaves.get(&name)
            && now.duration_since(*made).unwrap_or_default() < LEAF_LIFETIME / 2
        {
            return Ok(cfg.clone());
        }
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut p = CertificateParams::new(vec![name.clone()]).map_err(|e| e.to_string())?;
        p.distinguished_name.push(DnType::CommonName, name.clone());
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = (now - LEAF_BACKDATE).into();
        p.not_after = (now + LEAF_LIFETIME).into();
        let leaf = p.signed_by(&key, &self.issuer).map_err(|e| e.to_string())?;
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
