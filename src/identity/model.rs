//! What a user is: role, status, network restriction and per-user overrides, with the JSON
//! shapes of docs/openapi.json.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
    User,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Viewer, Role::User];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Suspended,
    Deleted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [Status::Active, Status::Suspended, Status::Deleted]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// Per-user rate limits; a missing field falls back to `rate_limits.user_level`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitOverride {
    pub requests_per_minute: Option<u32>,
    pub requests_per_hour: Option<u32>,
}

/// Per-user quotas; a missing field falls back to `quotas`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaOverride {
    pub monthly_requests: Option<u64>,
    pub monthly_bandwidth_mb: Option<u64>,
    pub storage_quota_mb: Option<u64>,
    pub reset_day: Option<u32>,
}

/// Networks a user may call from; empty means anywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Whitelist(Vec<IpNet>);

impl Whitelist {
    /// Each entry is a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single address.
    pub fn parse(entries: &[String]) -> Result<Whitelist, String> {
        entries
            .iter()
            .map(|e| parse_net(e).ok_or_else(|| format!("`{e}` is not an IP address or CIDR")))
            .collect::<Result<Vec<_>, _>>()
            .map(Whitelist)
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.is_empty() || self.0.iter().any(|net| net.contains(&ip))
    }
}

pub fn parse_net(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|net| net.trunc())
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is that IPv4 client.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn whitelists_match_cidrs_and_single_addresses_of_both_families() {
        let list = Whitelist::parse(&[
            "10.0.0.0/8".into(),
            "192.0.2.7".into(),
            "2001:db8::/32".into(),
            "::1".into(),
        ])
        .unwrap();
        for (addr, allowed) in [
            ("10.1.2.3", true),
            ("11.0.0.1", false),
            ("192.0.2.7", true),
            ("192.0.2.8", false),
            ("2001:db8::5", true),
            ("2001:db9::5", false),
            ("::1", true),
            ("::ffff:10.9.9.9", true),
            ("::ffff:11.9.9.9", false),
        ] {
            assert_eq!(list.allows(ip(addr)), allowed, "{addr}");
        }
        assert!(Whitelist::default().allows(ip("203.0.113.1")));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["10.0.0.0/33", "10.0.0", "example.com", "", "::1/129"] {
            let err = Whitelist::parse(&[bad.into()]).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn roles_and_statuses_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(Status::parse("suspended"), Some(Status::Suspended));
        assert_eq!(Status::parse("gone"), None);
    }
}
