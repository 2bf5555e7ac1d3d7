//! Which source addresses the dev backend may connect to, as imgproxy 3.15+ and 4 decide it:
//! `IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES` (default false),
//! `IMGPROXY_ALLOW_LINK_LOCAL_SOURCE_ADDRESSES` (false) and
//! `IMGPROXY_ALLOW_PRIVATE_SOURCE_ADDRESSES` (true). imgproxy checks the resolved address of
//! every connection, redirects included; so does this backend (a DNS resolver that refuses, and
//! a check of IP-literal hosts, which never reach a resolver).

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allow_loopback: bool,
    pub allow_link_local: bool,
    pub allow_private: bool,
}

impl Default for AddressPolicy {
    /// imgproxy's defaults.
    fn default() -> Self {
        AddressPolicy {
            allow_loopback: false,
            allow_link_local: false,
            allow_private: true,
        }
    }
}

/// A source address imgproxy would not connect to.
#[derive(Debug, thiserror::Error)]
#[error("{kind} source address is not allowed: {address}")]
pub struct AddressRefused {
    kind: &'static str,
    address: IpAddr,
}

impl AddressPolicy {
    pub fn check(&self, address: IpAddr) -> Result<(), AddressRefused> {
        let ip = unwrap_v4(address);
        let refused = |kind| Err(AddressRefused { kind, address });
        if (ip.is_loopback() || ip.is_unspecified()) && !self.allow_loopback {
            return refused("Loopback");
        }
        if is_link_local(ip) && !self.allow_link_local {
            return refused("Link-local");
        }
        if is_private(ip) && !self.allow_private {
            return refused("Private");
        }
        Ok(())
    }

    /// A resolver that refuses names resolving to a refused address.
    pub fn resolver(self) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver { policy: self })
    }
}

/// IPv4 carried in IPv6 counts as that IPv4 address: mapped (`::ffff:a.b.c.d`) and, as
/// imgproxy 4 unwraps it, NAT64 (`64:ff9b::a.b.c.d`).
fn unwrap_v4(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return IpAddr::V4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    ip
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || in_v4(v4, [224, 0, 0, 0], 24),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xffc0) == 0xfe80 || (first & 0xff0f) == 0xff02
        }
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || in_v4(v4, [100, 64, 0, 0], 10),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX << (32 - prefix);
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

pub struct GuardedResolver {
    policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            for addr in &addrs {
                policy.check(addr.ip())?;
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether `error` (from reqwest) is a refused source address.
pub fn is_refusal(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<AddressRefused>() {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn imgproxy_defaults() {
        let policy = AddressPolicy::default();
        for refused in [
            "127.0.0.1",
            "0.0.0.0",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.169.254",
            "fe80::1",
            "224.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(policy.check(ip(refused)).is_err(), "{refused}");
        }
        for allowed in ["10.0.0.1", "192.168.1.1", "fd00::1", "93.184.216.34"] {
            assert!(policy.check(ip(allowed)).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn each_switch_opens_its_range() {
        let open = AddressPolicy {
            allow_loopback: true,
            allow_link_local: true,
            allow_private: true,
        };
        let strict = AddressPolicy {
            allow_private: false,
            ..AddressPolicy::default()
        };
        for address in [
            "127.0.0.1",
            "169.254.169.254",
            "10.1.2.3",
            "100.64.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(open.check(ip(address)).is_ok(), "{address}");
            assert!(strict.check(ip(address)).is_err(), "{address}");
        }
    }

    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        let resolver = AddressPolicy::default().resolver();
        let name: Name = "localhost".parse().unwrap();
        let err = match resolver.resolve(name).await {
            Ok(_) => panic!("localhost resolved to an allowed address"),
            Err(e) => e,
        };
        assert!(is_refusal(err.as_ref()), "{err}");
    }
}
