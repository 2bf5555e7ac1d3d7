//! The client's address: the socket peer, or, when the peer is one of `server.trusted_proxies`,
//! the `X-Forwarded-For` hop right of the last trusted proxy. A header from an untrusted peer is
//! never believed.

use crate::identity::model::canonical;
use ipnet::IpNet;
use std::net::IpAddr;

pub const FORWARDED_FOR: &str = "X-Forwarded-For";

#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Entries are validated with the configuration; unparsable ones are skipped here.
    pub fn new(entries: &[crate::config::Network]) -> TrustedProxies {
        TrustedProxies(entries.iter().map(|n| n.0).collect())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// `forwarded` are the values of every `X-Forwarded-For` header, in order.
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a [u8]>) -> IpAddr {
        let peer = canonical(peer);
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// `203.0.113.7`, `2001:db8::1`, or either with a port (`1.2.3.4:5678`, `[2001:db8::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|addr| canonical(addr.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn resolve(trusted: &[&str], peer: &str, xff: &[&str]) -> IpAddr {
        let nets: Vec<_> = trusted
            .iter()
            .map(|s| crate::config::Network::parse(s).unwrap())
            .collect();
        let proxies = TrustedProxies::new(&nets);
        proxies.client_ip(ip(peer), xff.iter().map(|s| s.as_bytes()))
    }

    #[test]
    fn an_untrusted_peer_cannot_spoof() {
        assert_eq!(
            resolve(&[], "198.51.100.9", &["10.0.0.1"]),
            ip("198.51.100.9")
        );
        assert_eq!(
            resolve(&["10.0.0.0/8"], "198.51.100.9", &["10.0.0.1"]),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn the_hop_right_of_the_last_trusted_proxy_is_the_client() {
        let trusted = ["10.0.0.0/8", "2001:db8::/32"];
        // The client claims 1.1.1.1, the first proxy saw 203.0.113.7, then two trusted hops.
        assert_eq!(
            resolve(&trusted, "10.0.0.2", &["1.1.1.1, 203.0.113.7", "10.0.0.9"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            resolve(&trusted, "::ffff:10.0.0.2", &["203.0.113.7:5555"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            resolve(&trusted, "2001:db8::2", &["[2001:db9::7]:443"]),
            ip("2001:db9::7")
        );
        // Nothing forwarded, or only trusted hops: the leftmost address seen.
        assert_eq!(resolve(&trusted, "10.0.0.2", &[]), ip("10.0.0.2"));
        assert_eq!(resolve(&trusted, "10.0.0.2", &["10.0.0.3"]), ip("10.0.0.3"));
        // Garbage stops the walk at the last good hop.
        assert_eq!(
            resolve(&trusted, "10.0.0.2", &["evil, 10.0.0.3"]),
            ip("10.0.0.3")
        );
    }
}
