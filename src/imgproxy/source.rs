//! Validation of client-supplied source URLs for convert: http(s) only, bounded length, no
//! credentials, and no host whose address is in a range the operator has not opened
//! (`imgproxy.allow_{loopback,link_local,private}_sources`). Names are resolved (bounded in
//! time, cached briefly) and refused when any of their addresses is refused; metadata
//! service names are refused by name. Backends keep imgproxy's own check of each connection,
//! which also closes the window of a name that changes its answer (DNS rebinding).

use super::address::{self, AddressPolicy};
use super::resolve::{ResolveError, SourceResolver};
use crate::config::ImgproxyConfig;
use crate::error::{GatewayError, GatewayResult};
use std::borrow::Cow;
use std::net::IpAddr;
use url::{Host, Url};

/// The policy of `config`'s three switches.
pub fn policy(config: &ImgproxyConfig) -> AddressPolicy {
    AddressPolicy {
        allow_loopback: config.allow_loopback_sources,
        allow_link_local: config.allow_link_local_sources,
        allow_private: config.allow_private_sources,
    }
}

/// The syntactic checks: a bounded http(s) URL without credentials, with a host.
pub fn parse(raw: &str, max_len: usize) -> GatewayResult<Url> {
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
    if url.host().is_none() {
        return Err(GatewayError::invalid("url", "has no host"));
    }
    Ok(url)
}

/// Where the URL's host leads before any resolver is asked.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    Address(IpAddr),
    /// `localhost` and `*.localhost` (always loopback, RFC 6761) or a metadata service name.
    Reserved(address::AddressClass),
    /// Lower case, without a trailing dot; borrowed from the URL unless it had to be changed.
    Name(Cow<'a, str>),
}

pub fn target(url: &Url) -> Target<'_> {
    match url.host() {
        Some(Host::Ipv4(ip)) => Target::Address(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Target::Address(IpAddr::V6(ip)),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            // Parsing lowercases the host of an http(s) URL: a copy only for anything else.
            let name = match name.bytes().any(|b| b.is_ascii_uppercase()) {
                true => Cow::Owned(name.to_ascii_lowercase()),
                false => Cow::Borrowed(name),
            };
            if name == "localhost" || name.ends_with(".localhost") {
                Target::Reserved(address::AddressClass::Loopback)
            } else if address::is_metadata_name(&name) {
                Target::Reserved(address::AddressClass::LinkLocal)
            } else {
                Target::Name(name)
            }
        }
        None => Target::Reserved(address::AddressClass::Reserved),
    }
}

fn refused(class: address::AddressClass, shown: &str) -> GatewayError {
    GatewayError::Forbidden(format!(
        "url points to a {} address ({shown}), which this gateway does not fetch",
        class.name().to_ascii_lowercase()
    ))
}

/// Parse `raw` and check where it leads under `config`.
pub async fn validate(
    raw: &str,
    config: &ImgproxyConfig,
    resolver: &SourceResolver,
) -> GatewayResult<Url> {
    let url = parse(raw, *config.max_source_url_length)?;
    let policy = policy(config);
    match target(&url) {
        Target::Address(ip) => {
            policy
                .check(ip)
                .map_err(|r| refused(r.class, &ip.to_string()))?;
        }
        Target::Reserved(class) => {
            if !policy.allows(class) {
                return Err(refused(class, url.host_str().unwrap_or("")));
            }
        }
        Target::Name(name) => {
            let timeout = config.source_resolve_timeout.get();
            let addresses = resolver
                .addresses(&name, &config.source_hosts, timeout)
                .await
                .map_err(|e| match e {
                    ResolveError::NotFound(_) => GatewayError::invalid("url", e.to_string()),
                    ResolveError::Timeout(..) => GatewayError::SourceTimeout,
                })?;
            for ip in addresses.iter() {
                policy
                    .check(*ip)
                    .map_err(|r| refused(r.class, &format!("{name} is {ip}")))?;
            }
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::super::resolve::fake::TableResolver;
    use super::*;
    use std::sync::Arc;

    fn config() -> ImgproxyConfig {
        ImgproxyConfig::default()
    }

    fn resolver() -> SourceResolver {
        let mut table = TableResolver::with(&[
            ("images.example.com", "93.184.216.34"),
            ("rebind.example", "93.184.216.34"),
            ("rebind.example", "10.0.0.7"),
            ("inside.example", "192.168.1.20"),
            ("meta.example", "64:ff9b::a9fe:a9fe"),
            ("six.example", "2002:7f00:1::"),
            ("loop.example", "::1"),
        ]);
        table.slow.push("slow.example".into());
        SourceResolver::new(Arc::new(table))
    }

    async fn check(raw: &str, config: &ImgproxyConfig) -> GatewayResult<Url> {
        validate(raw, config, &resolver()).await
    }

    #[tokio::test]
    async fn accepts_public_http_sources() {
        let url = check("https://images.example.com/a.jpg?x=1", &config())
            .await
            .unwrap();
        assert_eq!(url.host_str(), Some("images.example.com"));
        check("http://93.184.216.34/cat.png", &config())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn refuses_other_schemes_credentials_long_and_unresolvable_urls() {
        let long = format!("http://example.com/{}", "a".repeat(3000));
        for bad in [
            "ftp://example.com/a.jpg",
            "file:///etc/passwd",
            "local:///x",
            "http://user:pw@example.com/a.jpg",
            "not a url",
            "",
            &long,
            "http://none.example/a.jpg",
        ] {
            assert!(
                matches!(
                    check(bad, &config()).await,
                    Err(GatewayError::InvalidParameter { ref field, .. }) if field == "url"
                ),
                "{bad}"
            );
        }
        assert_eq!(
            check("http://slow.example/a.jpg", &config()).await,
            Err(GatewayError::SourceTimeout)
        );
    }

    #[tokio::test]
    async fn refuses_every_forbidden_form_and_each_switch_opens_only_its_class() {
        use address::AddressClass::*;
        for (bad, class) in [
            ("http://127.0.0.1/a.jpg", Loopback),
            ("http://2130706433/a.jpg", Loopback),
            ("http://0x7f.1/a.jpg", Loopback),
            ("http://localhost:8080/a.jpg", Loopback),
            ("http://foo.localhost./a.jpg", Loopback),
            ("http://[::1]/a.jpg", Loopback),
            ("http://[::ffff:127.0.0.1]/a.jpg", Loopback),
            ("http://loop.example/a.jpg", Loopback),
            ("http://six.example/a.jpg", Loopback),
            ("http://0.0.0.0/a.jpg", Loopback),
            ("http://10.1.2.3/a.jpg", Private),
            ("http://192.168.0.1/a.jpg", Private),
            ("http://[fd00::1]/a.jpg", Private),
            ("http://100.64.0.1/a.jpg", Private),
            ("http://rebind.example/a.jpg", Private),
            ("http://inside.example/a.jpg", Private),
            ("http://169.254.169.254/latest/meta-data", LinkLocal),
            ("http://[64:ff9b::a9fe:a9fe]/latest", LinkLocal),
            ("http://[2002:a9fe:a9fe::]/latest", LinkLocal),
            ("http://[fd00:ec2::254]/latest", LinkLocal),
            ("http://100.100.100.200/latest", LinkLocal),
            ("http://meta.example/latest", LinkLocal),
            (
                "http://metadata.google.internal/computeMetadata/v1/",
                LinkLocal,
            ),
            ("http://METADATA/x", LinkLocal),
            ("http://240.0.0.1/a.jpg", Reserved),
        ] {
            let err = check(bad, &config()).await.unwrap_err();
            assert!(matches!(err, GatewayError::Forbidden(_)), "{bad}: {err}");
            for (switch, opens) in [
                ("loopback", Loopback),
                ("link_local", LinkLocal),
                ("private", Private),
            ] {
                let mut open = config();
                match switch {
                    "loopback" => open.allow_loopback_sources = true,
                    "link_local" => open.allow_link_local_sources = true,
                    _ => open.allow_private_sources = true,
                }
                assert_eq!(
                    check(bad, &open).await.is_ok(),
                    opens == class,
                    "{bad} with allow_{switch}_sources"
                );
            }
        }
    }

    #[tokio::test]
    async fn static_hosts_are_checked_too() {
        let mut config = config();
        config.source_hosts =
            serde_yaml::from_str("pinned.example: [10.9.9.9]\ncdn.example: [93.184.216.34]")
                .unwrap();
        assert!(check("http://pinned.example/a.jpg", &config).await.is_err());
        check("http://cdn.example/a.jpg", &config).await.unwrap();
    }

    #[test]
    fn a_host_name_is_read_in_place_and_lowercased_only_when_it_has_to_be() {
        let name = |raw: &str| match target(&Url::parse(raw).unwrap()) {
            Target::Name(name) => name.into_owned(),
            _ => panic!("{raw} names no host"),
        };
        let url = Url::parse("http://CDN.Example./a.jpg").unwrap();
        assert!(matches!(
            target(&url),
            Target::Name(Cow::Borrowed("cdn.example"))
        ));
        // Outside http(s) the parser keeps the host's case.
        assert_eq!(name("foo://CDN.Example/a.jpg"), "cdn.example");
        let url = Url::parse("foo://CDN.Example/a.jpg").unwrap();
        assert!(matches!(target(&url), Target::Name(Cow::Owned(_))));
        assert!(matches!(
            target(&Url::parse("foo://LocalHost/").unwrap()),
            Target::Reserved(address::AddressClass::Loopback)
        ));
    }
}
