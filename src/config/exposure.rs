//! Settings that let anyone in: the legacy key is public (it is in the README and in every
//! copy of the single-user program), so while it is the default it must not reach a listener
//! others can connect to. Reported at start (outside dev mode) and by `check-config`.

use super::schema::Config;
/// The single-user program's key, published in its README and in this one's.
pub const PUBLISHED_LEGACY_KEY: &str = "a8e77f84e2729dc6728889d4be31b123";

/// What is exposed by `config`, one sentence each (empty when nothing is).
pub fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if !(config.legacy.enabled && config.legacy.api_key == PUBLISHED_LEGACY_KEY) {
        return out;
    }
    if !config.admin.listen.0.ip().is_loopback() {
        out.push(format!(
            "legacy.api_key is the published default and admin.listen ({}) is not on loopback: \
             anyone who reaches the admin listener is an admin. Set legacy.api_key to a secret \
             value (or legacy.enabled: false), or keep admin.listen on 127.0.0.1",
            config.admin.listen
        ));
    }
    let public = config.server.public_addr();
    if !public.ip().is_loopback() {
        out.push(format!(
            "legacy.api_key is the published default and the public listener ({public}) is not \
             on loopback: anyone can convert and upload as the legacy user. Set legacy.api_key \
             to the old program's real key (or legacy.enabled: false)"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::text::{HostAddr, ListenAddr};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

    #[test]
    fn the_published_key_on_an_open_listener_is_named() {
        let mut config = Config::default();
        config.server.host = HostAddr(Ipv4Addr::LOCALHOST.into());
        config.admin.listen = ListenAddr(SocketAddr::from(([127, 0, 0, 1], 9090)));
        assert!(warnings(&config).is_empty());
        config.admin.listen = ListenAddr(SocketAddr::from(([0, 0, 0, 0], 9090)));
        let found = warnings(&config);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("admin.listen (0.0.0.0:9090)"),
            "{found:?}"
        );
        config.server.host = HostAddr(Ipv6Addr::UNSPECIFIED.into());
        assert_eq!(warnings(&config).len(), 2);
        config.legacy.api_key = "0123456789abcdef0123456789abcdef".into();
        assert!(warnings(&config).is_empty());
        config.legacy.api_key = PUBLISHED_LEGACY_KEY.into();
        config.legacy.enabled = false;
        assert!(warnings(&config).is_empty());
    }
}
