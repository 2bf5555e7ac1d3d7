//! Text settings with a required shape (a path, a host name, a URL, a header value), checked
//! while the file is read like the values of `values.rs`. Each reads as `&str` where it is used
//! and serializes back to the text it was read from.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;

/// A text type: `$check` returns why a text is refused.
macro_rules! shaped_text {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<$name, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(text).map(|()| $name(text.to_string()))
            }

            /// A default of the schema (`every_default_is_within_its_bounds` checks it).
            #[allow(dead_code)] // Not every shape has a default.
            pub(super) fn preset(text: &str) -> $name {
                $name(text.to_string())
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

shaped_text!(
    /// The path of a backend's health check (`/health`).
    UrlPath,
    |t| match t.starts_with('/') && !t.bytes().any(|b| b <= b' ' || b == 0x7f) {
        true => Ok(()),
        false => Err(format!("`{t}` must start with / and hold no spaces")),
    }
);

shaped_text!(
    /// The prefix of every Redis key and channel. No braces: a key's hash tag (which Redis
    /// Cluster shard holds it) is the first `{…}` in it, and comes after the prefix.
    KeyPrefix,
    |t| {
        let plain = !t
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '{' || c == '}');
        match t.len() <= 64 && plain {
            true => Ok(()),
            false => Err("must be at most 64 characters without spaces or braces".into()),
        }
    }
);

shaped_text!(
    /// A header value of printable ASCII (`imgproxy.cache_control`).
    HeaderText,
    |t| match !t.trim().is_empty() && t.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        true => Ok(()),
        false => Err("must be a non-empty Cache-Control value of printable ASCII".into()),
    }
);

shaped_text!(
    /// A host name as the resolver is asked for it: lower case, no trailing dot.
    HostName,
    |t| {
        let plain = !t.is_empty()
            && !t.ends_with('.')
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
        match plain {
            true => Ok(()),
            false => Err(format!(
                "`{t}` must be a lower-case host name without a trailing dot"
            )),
        }
    }
);

shaped_text!(
    /// A route of the public API (`/api/v1/upload`).
    RouteTemplate,
    |t| match t.starts_with("/api/") {
        true => Ok(()),
        false => Err(format!("`{t}` must be a route like /api/v1/upload")),
    }
);

shaped_text!(
    /// A directory path (`storage.dir`).
    DirPath,
    |t| match t.trim().is_empty() {
        false => Ok(()),
        true => Err("must not be empty".into()),
    }
);

shaped_text!(
    /// `redis://` or `rediss://` with a host, or `redis-cluster://` (`rediss-cluster://`) for
    /// Redis Cluster, more seed nodes given as `?node=host:port` (the password never appears
    /// in a message).
    RedisUrl,
    |t| {
        let schemes = ["redis://", "rediss://", "redis-cluster://", "rediss-cluster://"];
        match schemes.iter().any(|s| t.starts_with(s)) {
            true => Ok(()),
            false => Err(format!(
                "`{}` must start with redis://, rediss://, redis-cluster:// or rediss-cluster://",
                super::redacted(t)
            )),
        }
    }
);

shaped_text!(
    /// An `http(s)://` URL with a host (`quotas.webhook_url`, `storage.source_base_url`).
    HttpUrl,
    |t| {
        let url = url::Url::parse(t).map_err(|e| format!("`{t}`: {e}"))?;
        match matches!(url.scheme(), "http" | "https") && url.host_str().is_some() {
            true => Ok(()),
            false => Err(format!("`{t}` must be an http(s) URL with a host")),
        }
    }
);

/// A host's fixed addresses (`imgproxy.source_hosts`): at least one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Addresses(Vec<IpAddr>);

impl Deref for Addresses {
    type Target = [IpAddr];
    fn deref(&self) -> &[IpAddr] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Addresses {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let all = Vec::<IpAddr>::deserialize(d)?;
        if all.is_empty() {
            return Err(serde::de::Error::custom("needs at least one address"));
        }
        Ok(Addresses(all))
    }
}

/// An address to listen on, `127.0.0.1:9090` or `[::1]:9090` (port 0: the kernel picks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(ListenAddr).map_err(|_| {
            serde::de::Error::custom(format!("`{text}` is not an address like 127.0.0.1:9090"))
        })
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The address the public listener binds (`server.host`): an IP, `0.0.0.0` or `::` for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostAddr(pub IpAddr);

impl<'de> Deserialize<'de> for HostAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bare = text.trim_start_matches('[').trim_end_matches(']');
        bare.parse().map(HostAddr).map_err(|_| {
            serde::de::Error::custom(format!("`{text}` is not an IP address like 0.0.0.0 or ::"))
        })
    }
}

impl Serialize for HostAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shape_refuses_with_a_reason() {
        assert!(UrlPath::parse("/health").is_ok());
        assert!(UrlPath::parse("health").is_err() && UrlPath::parse("/a b").is_err());
        assert!(KeyPrefix::parse("gw:").is_ok() && KeyPrefix::parse("a b").is_err());
        // A brace would make the prefix every key's hash tag: one cluster shard for all.
        assert!(KeyPrefix::parse("gw{1}:").is_err());
        assert!(RedisUrl::parse("redis-cluster://h:7000?node=h:7001").is_ok());
        assert!(HeaderText::parse("public, max-age=60").is_ok());
        assert!(HeaderText::parse(" ").is_err() && HeaderText::parse("a\u{e9}").is_err());
        assert!(HostName::parse("images.example").is_ok());
        assert!(HostName::parse("Images.example").is_err() && HostName::parse("a.").is_err());
        assert!(RouteTemplate::parse("/upload").is_err());
        assert!(DirPath::parse("  ").is_err());
        let err = RedisUrl::parse("http://u:secret@h").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
        assert!(HttpUrl::parse("ftp://h/x").is_err() && HttpUrl::parse("http://h/x").is_ok());
        assert!(serde_yaml::from_str::<Addresses>("[]").is_err());
        assert!(serde_yaml::from_str::<ListenAddr>("localhost").is_err());
        let host: HostAddr = serde_yaml::from_str("'[::]'").unwrap();
        assert!(host.0.is_unspecified());
    }
}
