//! Configuration values parsed once, while the file is read: each type refuses a bad value
//! with a message, and serde_path_to_error puts the key in front of it
//! (`tls.min_version: `1.4` is not 1.2 or 1.3`). Code that uses a value gets the type, never
//! the text. Each serializes back to the text it was read from (reload diffs, the admin API).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;

/// Read a value as text (a YAML number too: `1.3`) and parse it.
fn parse_text<'de, D, T>(d: D, parse: impl Fn(&str) -> Result<T, String>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        String(String),
        Number(f64),
    }
    let text = match Text::deserialize(d)? {
        Text::String(s) => s,
        Text::Number(n) => n.to_string(),
    };
    parse(&text).map_err(serde::de::Error::custom)
}

/// `observability.log_level`: DEBUG, INFO, WARN (or WARNING), ERROR or TRACE, in any case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLevel(pub log::LevelFilter);

impl LogLevel {
    pub fn parse(text: &str) -> Result<LogLevel, String> {
        let level = text.to_ascii_lowercase().replace("warning", "warn");
        match level.parse::<log::LevelFilter>() {
            Ok(filter) if filter != log::LevelFilter::Off => Ok(LogLevel(filter)),
            _ => Err(format!("`{text}` is not DEBUG, INFO, WARN or ERROR")),
        }
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, LogLevel::parse)
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.as_str().to_ascii_lowercase())
    }
}

/// `observability.log_format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, |t| match t {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err(format!("`{t}` is not json or text")),
        })
    }
}

/// `tls.min_version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, |t| match t {
            "1.2" => Ok(TlsVersion::V1_2),
            "1.3" => Ok(TlsVersion::V1_3),
            _ => Err(format!("`{t}` is not 1.2 or 1.3")),
        })
    }
}

impl Serialize for TlsVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        })
    }
}

/// A network in CIDR notation, or one address (`10.0.0.7` is `10.0.0.7/32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network(pub ipnet::IpNet);

impl Network {
    pub fn parse(text: &str) -> Result<Network, String> {
        let text = text.trim();
        text.parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map(Network)
            .map_err(|_| format!("`{text}` is not a CIDR or an IP address"))
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, Network::parse)
    }
}

impl Serialize for Network {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A secret given in hexadecimal (`imgproxy.key`, `imgproxy.salt`, `storage.source_secret`):
/// its bytes. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct HexSecret(Vec<u8>);

impl HexSecret {
    pub fn parse(text: &str) -> Result<HexSecret, String> {
        match hex::decode(text.trim()) {
            Ok(bytes) if !bytes.is_empty() => Ok(HexSecret(bytes)),
            _ => Err("must be non-empty hexadecimal".into()),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The hexadecimal form (what the development backend is given).
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl fmt::Debug for HexSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HexSecret(<{} bytes>)", self.0.len())
    }
}

impl<'de> Deserialize<'de> for HexSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, HexSecret::parse)
    }
}

impl Serialize for HexSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// An imgproxy backend: `http(s)://host[:port]` with nothing after the authority. Written
/// without a trailing slash; its parts are parsed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendUrl {
    text: String,
    host: String,
    port: u16,
    explicit_port: bool,
    tls: bool,
}

impl BackendUrl {
    pub fn parse(text: &str) -> Result<BackendUrl, String> {
        let url = url::Url::parse(text).map_err(|e| format!("`{text}`: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{text}` must use http or https"));
        }
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host.trim_matches(['[', ']']).to_string(),
            _ => return Err(format!("`{text}` has no host")),
        };
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!("`{text}` must not have a path, query or fragment"));
        }
        Ok(BackendUrl {
            text: text.trim_end_matches('/').to_string(),
            host,
            port: url.port_or_known_default().unwrap_or(80),
            explicit_port: url.port().is_some(),
            tls: url.scheme() == "https",
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host name or address (an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn tls(&self) -> bool {
        self.tls
    }

    /// `Host` as the backend expects it: the host, with the port when the URL names one.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.explicit_port {
            format!("{host}:{}", self.port)
        } else {
            host
        }
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for BackendUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_text(d, BackendUrl::parse)
    }
}

impl Serialize for BackendUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_parses_once_and_says_what_is_wrong() {
        assert_eq!(
            LogLevel::parse("WARNING").unwrap().0,
            log::LevelFilter::Warn
        );
        assert!(LogLevel::parse("off").unwrap_err().contains("`off`"));
        assert_eq!(
            Network::parse("10.0.0.7").unwrap().0.to_string(),
            "10.0.0.7/32"
        );
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert_eq!(HexSecret::parse("0a0b").unwrap().bytes(), [10, 11]);
        assert!(HexSecret::parse("").is_err() && HexSecret::parse("xyz").is_err());
        let v: TlsVersion = serde_yaml::from_str("1.3").unwrap();
        assert_eq!(v, TlsVersion::V1_3);
        let v: TlsVersion = serde_yaml::from_str("\"1.2\"").unwrap();
        assert_eq!(v, TlsVersion::V1_2);
        assert!(serde_yaml::from_str::<TlsVersion>("1.4").is_err());
        assert_eq!(
            format!("{:?}", HexSecret::parse("abcd").unwrap()),
            "HexSecret(<2 bytes>)"
        );
    }
}
