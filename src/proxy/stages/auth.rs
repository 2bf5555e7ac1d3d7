//! The client's address as limits, whitelists and logs see it, and the header its key comes
//! in. Shared by the public and the admin listener.

use crate::state::AppState;
use pingora::protocols::http::ServerSession;
use std::net::{IpAddr, Ipv4Addr};

pub const API_KEY_HEADER: &str = "X-API-Key";

/// The client's address: the peer, or what a trusted proxy says it forwards for.
pub fn client_ip(state: &AppState, session: &ServerSession) -> IpAddr {
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let forwarded = session
        .req_header()
        .headers
        .get_all(crate::client_ip::FORWARDED_FOR)
        .into_iter()
        .map(|v| v.as_bytes());
    state.trusted_proxies.client_ip(peer, forwarded)
}

/// The presented key, if any.
pub fn api_key(session: &ServerSession) -> Option<&[u8]> {
    session
        .req_header()
        .headers
        .get(API_KEY_HEADER)
        .map(|v| v.as_bytes())
}
