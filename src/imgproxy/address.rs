//! Which addresses an image source may be fetched from, decided the way imgproxy 3.15+ and 4
//! decide it (three switches: loopback, link-local, private), with the forms that carry an
//! IPv4 address inside IPv6 judged by that IPv4 address, and the cloud metadata services
//! counted as link-local wherever they live. The gateway and the dev backend share it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of network an address is on, as far as a source fetch is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    /// Loopback and the unspecified address (`0.0.0.0` connects to the local host).
    Loopback,
    /// Link-local (`169.254/16`, `fe80::/10`, link-local multicast) and every cloud metadata
    /// address, even one outside the link-local ranges (Alibaba's `100.100.100.200`, AWS's
    /// `fd00:ec2::254`).
    LinkLocal,
    /// RFC 1918, carrier-grade NAT (`100.64/10`), unique-local IPv6 (`fc00::/7`).
    Private,
    /// Neither of these, nor routable: `0/8`, `192.0.0/24`, `240/4`, broadcast, multicast.
    Reserved,
    Public,
}

impl AddressClass {
    pub fn name(self) -> &'static str {
        match self {
            AddressClass::Loopback => "Loopback",
            AddressClass::LinkLocal => "Link-local",
            AddressClass::Private => "Private",
            AddressClass::Reserved => "Reserved",
            AddressClass::Public => "Public",
        }
    }
}

/// Cloud metadata addresses outside the link-local ranges.
const METADATA_V4: [Ipv4Addr; 1] = [Ipv4Addr::new(100, 100, 100, 200)];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)];

/// Host names of cloud metadata services (GCP, AWS, Azure, OpenStack…), refused by name
/// before any resolver is asked, unless link-local sources are allowed.
const METADATA_NAMES: [&str; 6] = [
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
];

/// Whether `host` (a lower-case name without trailing dot) names a metadata service.
pub fn is_metadata_name(host: &str) -> bool {
    METADATA_NAMES.contains(&host)
}

/// The IPv4 address an IPv6 address carries, when it is one of the forms that reach an IPv4
/// host: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64
/// (`64:ff9b::a.b.c.d`, `64:ff9b:1::/48`) and 6to4 (`2002:aabb:ccdd::/16`).
pub fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        // IPv4-compatible; `::` and `::1` are the IPv6 unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(v4(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x64, 0xff9b, 1, _, _, _, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX << (32 - prefix);
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    if ip.is_loopback() || ip.is_unspecified() {
        AddressClass::Loopback
    } else if ip.is_link_local() || in_v4(ip, [224, 0, 0, 0], 24) || METADATA_V4.contains(&ip) {
        AddressClass::LinkLocal
    } else if ip.is_private() || in_v4(ip, [100, 64, 0, 0], 10) {
        AddressClass::Private
    } else if in_v4(ip, [0, 0, 0, 0], 8)
        || in_v4(ip, [192, 0, 0, 0], 24)
        || in_v4(ip, [240, 0, 0, 0], 4)
        || ip.is_multicast()
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let first = ip.segments()[0];
    if ip.is_loopback() || ip.is_unspecified() {
        AddressClass::Loopback
    } else if (first & 0xffc0) == 0xfe80 || (first & 0xff0f) == 0xff02 || METADATA_V6.contains(&ip)
    {
        AddressClass::LinkLocal
    } else if (first & 0xfe00) == 0xfc00 {
        AddressClass::Private
    } else if (first & 0xff00) == 0xff00 {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// The three switches. Reserved addresses are never fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    pub allow_loopback: bool,
    pub allow_link_local: bool,
    pub allow_private: bool,
}

/// A source address the policy does not fetch from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} source address is not allowed: {address}", .class.name())]
pub struct AddressRefused {
    pub class: AddressClass,
    pub address: IpAddr,
}

impl AddressPolicy {
    /// imgproxy's own defaults: private allowed, loopback and link-local not.
    pub const IMGPROXY: AddressPolicy = AddressPolicy {
        allow_loopback: false,
        allow_link_local: false,
        allow_private: true,
    };

    pub fn allows(&self, class: AddressClass) -> bool {
        match class {
            AddressClass::Loopback => self.allow_loopback,
            AddressClass::LinkLocal => self.allow_link_local,
            AddressClass::Private => self.allow_private,
            AddressClass::Reserved => false,
            AddressClass::Public => true,
        }
    }

    pub fn check(&self, address: IpAddr) -> Result<(), AddressRefused> {
        let class = classify(address);
        if self.allows(class) {
            Ok(())
        } else {
            Err(AddressRefused { class, address })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> AddressClass {
        classify(text.parse().unwrap())
    }

    #[test]
    fn classes_of_every_form() {
        use AddressClass::*;
        for (text, expected) in [
            ("127.0.0.1", Loopback),
            ("0.0.0.0", Loopback),
            ("::1", Loopback),
            ("::", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("::127.0.0.1", Loopback),
            ("169.254.169.254", LinkLocal),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b:1::a9fe:a9fe", LinkLocal),
            ("2002:a9fe:a9fe::1", LinkLocal),
            ("::ffff:169.254.169.254", LinkLocal),
            ("fe80::1", LinkLocal),
            ("ff02::1", LinkLocal),
            ("224.0.0.251", LinkLocal),
            ("100.100.100.200", LinkLocal),
            ("fd00:ec2::254", LinkLocal),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("fd12::1", Private),
            ("2002:0a00:0001::", Private),
            ("64:ff9b::10.0.0.1", Private),
            ("0.1.2.3", Reserved),
            ("192.0.0.8", Reserved),
            ("255.255.255.255", Reserved),
            ("240.0.0.1", Reserved),
            ("239.1.1.1", Reserved),
            ("ff05::1", Reserved),
            ("93.184.216.34", Public),
            ("2606:2800:220:1::1", Public),
            ("64:ff9b::5db8:d822", Public),
            ("2002:5db8:d822::1", Public),
        ] {
            assert_eq!(class(text), expected, "{text}");
        }
    }

    #[test]
    fn switches_open_one_class_each() {
        let none = AddressPolicy::default();
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(none.check(ip("93.184.216.34")).is_ok());
        for refused in ["127.0.0.1", "169.254.169.254", "10.0.0.1", "240.0.0.1"] {
            assert!(none.check(ip(refused)).is_err(), "{refused}");
        }
        let private = AddressPolicy {
            allow_private: true,
            ..none
        };
        assert!(private.check(ip("10.0.0.1")).is_ok());
        assert!(private.check(ip("100.100.100.200")).is_err());
        assert!(private.check(ip("127.0.0.1")).is_err());
        let err = AddressPolicy::IMGPROXY
            .check(ip("64:ff9b::a9fe:a9fe"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Link-local source address is not allowed: 64:ff9b::a9fe:a9fe"
        );
        assert!(is_metadata_name("metadata.google.internal"));
        assert!(!is_metadata_name("images.example.com"));
    }
}
