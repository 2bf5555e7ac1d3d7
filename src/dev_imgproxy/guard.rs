//! Which source addresses the dev backend may connect to, as imgproxy 3.15+ and 4 decide it:
//! `IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES` (default false),
//! `IMGPROXY_ALLOW_LINK_LOCAL_SOURCE_ADDRESSES` (false) and
//! `IMGPROXY_ALLOW_PRIVATE_SOURCE_ADDRESSES` (true). imgproxy checks the resolved address of
//! every connection, redirects included; so does this backend (a DNS resolver that refuses, and
//! a check of IP-literal hosts, which never reach a resolver).

use crate::imgproxy::address::{AddressPolicy, AddressRefused};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;

/// A resolver that refuses names resolving to a refused address.
pub fn resolver(policy: AddressPolicy) -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver { policy })
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
    use std::net::IpAddr;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn imgproxy_defaults() {
        let policy = AddressPolicy::IMGPROXY;
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
            ..AddressPolicy::IMGPROXY
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
        let resolver = resolver(AddressPolicy::IMGPROXY);
        let name: Name = "localhost".parse().unwrap();
        let err = match resolver.resolve(name).await {
            Ok(_) => panic!("localhost resolved to an allowed address"),
            Err(e) => e,
        };
        assert!(is_refusal(err.as_ref()), "{err}");
    }
}
