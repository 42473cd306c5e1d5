//! A receiver a test starts for what the proxy sends out on its own (notifications, OTLP
//! exports): HTTPS with a certificate from fakehub's CA, every request kept, each answered
//! with the status a test's rule gives it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: not JSON ({e}): {}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// The status for the `n`th request (from 0).
pub type Rule = dyn Fn(usize, &Received) -> u16 + Send + Sync;

pub struct Receiver {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Received>>>,
}

/// Bodies past this are refused (a bound for the test's own server).
const MAX_BODY: usize = 16 << 20;

impl Receiver {
    /// Serves HTTPS with `cert` and `key` (PEM, e.g. from `FakeHub::issue_leaf`) on
    /// 127.0.0.1, answering each request as `rule` says.
    pub fn start(cert: &str, key: &str, rule: Box<Rule>) -> Receiver {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<_, _>>()
            .expect("certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("certificate and key"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let rule: Arc<Rule> = Arc::from(rule);
        let kept = seen.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (tls, kept, rule) = (tls.clone(), kept.clone(), rule.clone());
                std::thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
                    let Ok(conn) = rustls::ServerConnection::new(tls) else {
                        return;
                    };
                    let stream = rustls::StreamOwned::new(conn, tcp);
                    serve(stream, &kept, &*rule);
                });
            }
        });
        Receiver { addr, seen }
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests received once `done` holds of them, or a panic naming what came after
    /// `within`.
    pub fn wait_until(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let end = Instant::now() + within;
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            if Instant::now() > end {
                let paths: Vec<String> = got
                    .iter()
                    .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
                    .collect();
                panic!("waited {within:?} for {what}; received: {paths:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Keep-alive HTTP/1.1: each request read whole (Content-Length), kept, answered.
fn serve(stream: impl Read + Write, kept: &Mutex<Vec<Received>>, rule: &Rule) {
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            return;
        };
        let (method, path) = (method.to_owned(), path.to_owned());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        if len > MAX_BODY {
            return;
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let mut got = Received {
            method,
            path,
            headers,
            body,
            status: 0,
        };
        {
            let mut k = kept.lock().unwrap();
            got.status = rule(k.len(), &got);
            k.push(got.clone());
        }
        let answer = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}",
            got.status
        );
        let w = r.get_mut();
        if w.write_all(answer.as_bytes())
            .and_then(|()| w.flush())
            .is_err()
        {
            return;
        }
    }
}
