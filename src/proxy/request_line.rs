//! The log line of every public request (`"event":"request"`), serialized straight from the
//! request's own values: no JSON tree, and borrowed strings.

use serde::Serialize;
use std::net::IpAddr;

#[derive(Serialize)]
pub struct RequestLine<'a> {
    pub event: &'static str,
    pub request_id: &'a str,
    pub method: &'a str,
    pub endpoint: &'static str,
    pub path: &'a str,
    pub status: u16,
    pub duration_ms: f64,
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
