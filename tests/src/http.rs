//! HTTP/1.1 as a client reads it, and a sandbox's own tunnel through the proxy.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::ProxyProc;

/// An HTTP answer as a client read it.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpAnswer {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Reads one HTTP/1.1 answer: its head, then (with `body`; not for HEAD or a 200 to CONNECT)
/// its body by length, by chunks, or to the end of the connection.
pub fn read_answer(r: &mut impl std::io::Read, body: bool) -> std::io::Result<HttpAnswer> {
    let a = read_head(r)?;
    if body { read_body(r, a) } else { Ok(a) }
}

/// Reads up to and including the next `\r\n\r\n` (`\r\n` with `line`).
fn read_until_blank(r: &mut impl std::io::Read, line: bool) -> std::io::Result<Vec<u8>> {
    let end: &[u8] = if line { b"\r\n" } else { b"\r\n\r\n" };
    let mut buf = Vec::new();
    let mut one = [0u8; 1];
    while !buf.ends_with(end) {
        if r.read(&mut one)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed after {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.push(one[0]);
    }
    Ok(buf)
}

/// An answer's status line and headers.
pub fn read_head(r: &mut impl std::io::Read) -> std::io::Result<HttpAnswer> {
    let head = String::from_utf8_lossy(&read_until_blank(r, false)?).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(HttpAnswer {
        status,
        head,
        body: String::new(),
    })
}

/// The body that follows `a`'s head.
fn read_body(r: &mut impl std::io::Read, mut a: HttpAnswer) -> std::io::Result<HttpAnswer> {
    let mut body = Vec::new();
    if let Some(n) = a
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if a
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let line = read_until_blank(r, true)?;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&line)
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or("0"),
                16,
            )
            .unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let _ = r.read_to_end(&mut body);
    }
    a.body = String::from_utf8_lossy(&body).into_owned();
    Ok(a)
}

/// A sandbox's own HTTPS connection through the proxy, byte for byte: `CONNECT`, then TLS
/// trusting only the proxy's CA. For requests no well-behaved client would send.
pub struct Tunnel {
    tls: rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    host: String,
}

impl ProxyProc {
    /// Sends `CONNECT target` with these credentials; the status and the open socket.
    pub fn connect(
        &self,
        auth: Option<(&str, &str)>,
        target: &str,
    ) -> std::io::Result<(HttpAnswer, std::net::TcpStream)> {
        let mut s = std::net::TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some((n, p)) = auth {
            req.push_str(&format!(
                "Proxy-Authorization: {}\r\n",
                ghapp_gitproto::basic::encode(n, p)
            ));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        // A 200 to CONNECT has no body.
        let a = read_head(&mut s)?;
        let a = if a.status == 200 {
            a
        } else {
            read_body(&mut s, a)?
        };
        Ok((a, s))
    }

    /// An open tunnel to `target` (`host:port` of the emulator) for sandbox `name`.
    pub fn tunnel(&self, name: &str, secret: &str, target: &str) -> Tunnel {
        let host = target.rsplit_once(':').map_or(target, |x| x.0);
        self.tunnel_as(name, secret, target, host, &self.ca_path)
            .unwrap_or_else(|e| panic!("a tunnel to {target}: {e}"))
    }

    /// A tunnel to `target` with TLS inside it for the name `sni`, trusting the CA
    /// certificates in `roots` (PEM): an error when the CONNECT is refused or the handshake
    /// fails.
    pub fn tunnel_as(
        &self,
        name: &str,
        secret: &str,
        target: &str,
        sni: &str,
        roots: &Path,
    ) -> Result<Tunnel, String> {
        let (a, mut tcp) = self
            .connect(Some((name, secret)), target)
            .map_err(|e| format!("CONNECT {target}: {e}"))?;
        if a.status != 200 {
            return Err(format!("CONNECT {target}: {a:?}"));
        }
        let mut store = rustls::RootCertStore::empty();
        let pem = std::fs::read(roots).map_err(|e| format!("{}: {e}", roots.display()))?;
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            store.add(c.expect("CA PEM")).expect("CA");
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(store)
            .with_no_client_auth();
        let server = rustls::pki_types::ServerName::try_from(sni.to_owned())
            .map_err(|e| format!("server name {sni}: {e}"))?;
        let mut conn =
            rustls::ClientConnection::new(std::sync::Arc::new(cfg), server).expect("TLS");
        // Finish the handshake now: a tunnel is open once TLS is up, not at the first request.
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .map_err(|e| format!("TLS handshake for {sni} inside a tunnel to {target}: {e}"))?;
        }
        Ok(Tunnel {
            tls: rustls::StreamOwned::new(conn, tcp),
            host: target.to_owned(),
        })
    }
}

impl Tunnel {
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tls.write_all(bytes)?;
        self.tls.flush()
    }

    /// Sends one request exactly as given (`target` unnormalised) with `Connection: close`
    /// and reads the answer.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpAnswer> {
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.write(&bytes)?;
        if method == "HEAD" {
            return read_answer(&mut self.tls, false);
        }
        self.answer()
    }

    /// A `GET` that leaves the tunnel open for the next one.
    pub fn get_keep_alive(&mut self, target: &str) -> std::io::Result<HttpAnswer> {
        let req = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.write(req.as_bytes())?;
        self.answer()
    }

    pub fn answer(&mut self) -> std::io::Result<HttpAnswer> {
        read_answer(&mut self.tls, true)
    }

    /// Reads raw bytes (0: the proxy closed the tunnel).
    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::Read;
        self.tls.read(buf)
    }
}
