//! Validation of client-supplied source URLs for convert: http(s) only, bounded length, no
//! credentials, and no loopback/private/link-local targets unless the operator allows them.

use crate::error::{GatewayError, GatewayResult};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

pub fn validate(raw: &str, max_len: usize, allow_private: bool) -> GatewayResult<Url> {
    if raw.is_empty() {
        return Err(GatewayError::invalid("url", "must not be empty"));
    }
    if raw.len() > max_len {
        return Err(GatewayError::invalid(
            "url",
            format!("is longer than {max_len} characters"),
        ));
    }
    let url = Url::parse(raw)
        .map_err(|e| GatewayError::invalid("url", format!("is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(GatewayError::invalid(
            "url",
            format!(
                "scheme `{}` is not allowed; use http or https",
                url.scheme()
            ),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(GatewayError::invalid("url", "must not carry credentials"));
    }
    let private = match url.host() {
        None => return Err(GatewayError::invalid("url", "has no host")),
        Some(Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    if private && !allow_private {
        return Err(GatewayError::Forbidden(
            "url points to a loopback or private address, which this gateway does not fetch".into(),
        ));
    }
    Ok(url)
}

/// Addresses a public image fetch must never reach.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || v6 == Ipv6Addr::from([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]) // NAT64 prefix base
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a >= 240
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str) -> Result<Url, GatewayError> {
        validate(raw, 2048, false)
    }

    #[test]
    fn accepts_public_http_sources() {
        assert_eq!(
            check("https://images.example.com/a.jpg?x=1")
                .unwrap()
                .host_str(),
            Some("images.example.com")
        );
        check("http://93.184.216.34/cat.png").unwrap();
    }

    #[test]
    fn refuses_other_schemes_credentials_and_long_urls() {
        for bad in [
            "ftp://example.com/a.jpg",
            "file:///etc/passwd",
            "local:///x",
            "http://user:pw@example.com/a.jpg",
            "not a url",
            "",
        ] {
            assert!(
                matches!(
                    check(bad),
                    Err(GatewayError::InvalidParameter { ref field, .. }) if field == "url"
                ),
                "{bad}"
            );
        }
        let long = format!("http://example.com/{}", "a".repeat(3000));
        assert!(check(&long).is_err());
    }

    #[test]
    fn refuses_private_targets_unless_allowed() {
        for bad in [
            "http://127.0.0.1/a.jpg",
            "http://2130706433/a.jpg",
            "http://localhost:8080/a.jpg",
            "http://foo.localhost/a.jpg",
            "http://10.1.2.3/a.jpg",
            "http://192.168.0.1/a.jpg",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/a.jpg",
            "http://[::ffff:127.0.0.1]/a.jpg",
            "http://[fd00::1]/a.jpg",
            "http://0.0.0.0/a.jpg",
            "http://100.64.0.1/a.jpg",
        ] {
            assert!(
                matches!(check(bad), Err(GatewayError::Forbidden(_))),
                "{bad}"
            );
            assert!(validate(bad, 2048, true).is_ok(), "{bad}");
        }
    }
}
