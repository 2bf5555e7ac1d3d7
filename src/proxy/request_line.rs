//! The log line of every public request (`"event":"request"`), written straight from the
//! request's own values into the line (`logging::Fields`): no JSON tree, no serializer, and
//! borrowed strings.

use crate::logging::Fields;
use std::net::IpAddr;
use std::time::Duration;

#[cfg_attr(test, derive(serde::Serialize))]
pub struct RequestLine<'a> {
    pub event: &'static str,
    pub request_id: &'a str,
    pub method: &'a str,
    pub endpoint: &'static str,
    pub path: &'a str,
    pub status: u16,
    /// Written as `duration_ms`, milliseconds with three decimals.
    #[cfg_attr(test, serde(skip))]
    pub duration: Duration,
    pub user_id: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
    pub backend: Option<&'a str>,
    pub bytes_in: usize,
    pub bytes_out: usize,
    pub backend_status: Option<u16>,
    pub attempts: u32,
    pub image_id: Option<&'a str>,
    pub error: Option<&'a str>,
}

impl RequestLine<'_> {
    /// Log the line at INFO under `target`.
    pub fn log(&self, target: &'static str) {
        crate::logging::fields(log::Level::Info, target, |f| self.write(f));
    }

    fn write(&self, f: &mut Fields<'_>) {
        f.str("event", self.event)
            .str("request_id", self.request_id)
            .str("method", self.method)
            .str("endpoint", self.endpoint)
            .str("path", self.path)
            .uint("status", self.status.into())
            .millis("duration_ms", self.duration)
            .opt_str("user_id", self.user_id)
            .opt_str("key_id", self.key_id)
            .opt_ip("client_ip", self.client_ip)
            .opt_str("backend", self.backend)
            .uint("bytes_in", self.bytes_in as u64)
            .uint("bytes_out", self.bytes_out as u64)
            .opt_uint("backend_status", self.backend_status.map(u64::from))
            .uint("attempts", self.attempts.into())
            .opt_str("image_id", self.image_id)
            .opt_str("error", self.error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line as written, and as serde would have written the same struct.
    fn both(line: &RequestLine<'_>) -> (serde_json::Value, serde_json::Value) {
        let mut out = Vec::new();
        line.write(&mut Fields::new(&mut out));
        out[0] = b'{';
        out.push(b'}');
        let written = serde_json::from_slice(&out).expect("one JSON object");
        (written, serde_json::to_value(line).expect("serializable"))
    }

    #[test]
    fn the_same_fields_and_values_as_a_serialized_line() {
        let hostile = RequestLine {
            event: "request",
            request_id: "r-1",
            method: "GET",
            endpoint: "/api/v1/convert",
            path: "/api/v1/convert/\"\\\n\u{1}é",
            status: 502,
            duration: Duration::from_micros(1_500),
            user_id: Some("u1"),
            key_id: Some("k1"),
            client_ip: Some("203.0.113.9".parse().unwrap()),
            backend: Some("http://127.0.0.1:9000"),
            bytes_in: 10,
            bytes_out: 2048,
            backend_status: Some(500),
            attempts: 2,
            image_id: Some("img"),
            error: Some("ConnectRefused"),
        };
        let anonymous = RequestLine {
            user_id: None,
            key_id: None,
            client_ip: None,
            backend: None,
            backend_status: None,
            image_id: None,
            error: None,
            ..hostile
        };
        for line in [&hostile, &anonymous] {
            let (mut written, serialized) = both(line);
            let map = written.as_object_mut().unwrap();
            let duration = map.remove("duration_ms").and_then(|d| d.as_f64());
            assert_eq!(duration, Some(1.5));
            assert_eq!(written, serialized);
        }
    }
}
