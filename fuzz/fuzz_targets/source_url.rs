//! The convert source check's pure half: any `url=` value, never a panic; what it accepts is
//! http(s) without credentials and with a host; an IPv6 address carrying an IPv4 address is
//! judged as that IPv4 address.
#![no_main]

use imgproxy_gateway::imgproxy::address::{classify, embedded_v4};
use imgproxy_gateway::imgproxy::source::{self, Target};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    if data.len() >= 16 {
        let mut raw = [0u8; 16];
        raw.copy_from_slice(&data[..16]);
        let v6 = Ipv6Addr::from(raw);
        if let Some(v4) = embedded_v4(v6) {
            assert_eq!(classify(IpAddr::V6(v6)), classify(IpAddr::V4(v4)), "{v6}");
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(url) = source::parse(text, 2048) else {
        return;
    };
    assert!(text.len() <= 2048);
    assert!(matches!(url.scheme(), "http" | "https"), "{url}");
    assert!(url.username().is_empty() && url.password().is_none(), "{url}");
    assert!(url.host().is_some(), "{url}");
    match source::target(&url) {
        Target::Address(ip) => {
            let _ = classify(ip);
        }
        Target::Name(name) => {
            assert!(!name.ends_with('.') && name != "localhost", "{name}");
            assert_eq!(name, name.to_ascii_lowercase());
        }
        Target::Reserved(_) => {}
    }
    // What goes to a backend parses again to the same URL.
    assert_eq!(url::Url::parse(url.as_str()).as_ref(), Ok(&url));
});
