//! Where an `egress = "tunnel"` tunnel may go. Decided on the resolved address (a name that
//! resolves to 127.0.0.1 is loopback), and the tunnel connects to exactly the address that was
//! checked, so a second lookup cannot answer differently.
//!
//! Refused unless listed in `egress_allow`: loopback, unspecified, link-local (169.254.0.0/16,
//! where cloud metadata services answer; fe80::/10), private ranges (10/8, 172.16/12,
//! 192.168/16, 100.64/10, fc00::/7), multicast and broadcast, the same inside IPv4-mapped IPv6
//! addresses, and the proxy's own ports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One `egress_allow` entry: `IP`, `IP/PREFIX` (any port) or `IP:PORT` (`[IPv6]:PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    net: IpAddr,
    prefix: u8,
    port: Option<u16>,
}

impl Allow {
    pub fn parse(s: &str) -> Result<Allow, String> {
        let bad = || {
            format!(
                "egress_allow entry {s:?} is not an address: use \"IP\", \"IP/PREFIX\" or \"IP:PORT\" (names are not accepted: the check is on addresses)"
            )
        };
        if let Ok(sa) = s.parse::<SocketAddr>() {
            let ip = canonical(sa.ip());
            return Ok(Allow {
                net: ip,
                prefix: full_prefix(ip),
                port: Some(sa.port()),
            });
        }
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let ip = canonical(ip.parse::<IpAddr>().map_err(|_| bad())?);
        let prefix = prefix.unwrap_or(full_prefix(ip));
        if prefix > full_prefix(ip) {
            return Err(bad());
        }
        Ok(Allow {
            net: ip,
            prefix,
            port: None,
        })
    }

    pub fn matches(&self, addr: SocketAddr) -> bool {
        self.port.is_none_or(|p| p == addr.port())
            && in_net(canonical(addr.ip()), self.net, self.prefix)
    }
}

fn full_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Why an address is not a public one, if it is not.
pub(crate) fn internal(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        Some("private")
    } else if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        Some("multicast or reserved")
    } else {
        None
    }
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("private (unique local)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if let Some(v4) = ip.to_ipv4() {
        // IPv4-compatible (::a.b.c.d) and NAT64 forms still carry an internal v4 address.
        internal_v4(v4)
    } else {
        None
    }
}

/// Decides a tunnel to `addr`: `Err(reason)` when refused.
pub(crate) fn check(addr: SocketAddr, allow: &[Allow], own: &[SocketAddr]) -> Result<(), String> {
    if allow.iter().any(|a| a.matches(addr)) {
        return Ok(());
    }
    if own.iter().any(|o| {
        o.port() == addr.port()
            && (o.ip().is_unspecified() || canonical(o.ip()) == canonical(addr.ip()))
    }) {
        return Err(format!("{addr} is the proxy's own listener"));
    }
    match internal(addr.ip()) {
        Some(kind) => Err(format!(
            "{addr} is a {kind} address (list it in egress_allow to reach it)"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused() {
        for a in [
            "127.0.0.1:80",
            "127.9.9.9:443",
            "0.0.0.0:22",
            "169.254.169.254:80",
            "10.1.2.3:443",
            "172.16.0.1:443",
            "172.31.255.255:443",
            "192.168.1.1:443",
            "100.64.0.1:443",
            "224.0.0.1:443",
            "255.255.255.255:443",
            "[::1]:80",
            "[::]:80",
            "[fe80::1]:80",
            "[fd00::1]:80",
            "[::ffff:127.0.0.1]:80",
            "[::ffff:169.254.169.254]:80",
        ] {
            assert!(check(sa(a), &[], &[]).is_err(), "{a}");
        }
        for a in [
            "140.82.112.3:443",
            "[2606:50c0:8000::153]:443",
            "172.32.0.1:443",
        ] {
            assert!(check(sa(a), &[], &[]).is_ok(), "{a}");
        }
    }

    #[test]
    fn allow_list_and_own_ports() {
        let allow = vec![
            Allow::parse("127.0.0.1:9000").unwrap(),
            Allow::parse("10.0.0.0/8").unwrap(),
        ];
        assert!(check(sa("127.0.0.1:9000"), &allow, &[]).is_ok());
        assert!(check(sa("[::ffff:127.0.0.1]:9000"), &allow, &[]).is_ok());
        assert!(check(sa("127.0.0.1:9001"), &allow, &[]).is_err());
        assert!(check(sa("10.200.0.1:1"), &allow, &[]).is_ok());
        let own = [sa("0.0.0.0:8080")];
        let e = check(sa("140.82.112.3:8080"), &[], &own).unwrap_err();
        assert!(e.contains("own listener"), "{e}");
        assert!(Allow::parse("example.com:443").is_err());
        assert!(Allow::parse("10.0.0.0/33").is_err());
    }
}
