//! Who is calling: the `X-API-Key` verified through the identity cache, then admitted for its
//! key expiry, user status and IP whitelist. Shared by the public and the admin listener.

use crate::error::GatewayResult;
use crate::identity::Identity;
use crate::state::AppState;
use pingora::protocols::http::ServerSession;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

pub const API_KEY_HEADER: &str = "X-API-Key";

/// The client's address as the whitelist sees it.
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

/// The caller, or 401 (no, malformed, unknown, revoked or expired key) or 403 (suspended or
/// deleted user, client IP outside the whitelist).
pub async fn authenticate(
    state: &AppState,
    session: &ServerSession,
) -> GatewayResult<Arc<Identity>> {
    let key = session
        .req_header()
        .headers
        .get(API_KEY_HEADER)
        .map(|v| v.as_bytes());
    state
        .auth
        .authenticate(&state.store, key, client_ip(state, session))
        .await
}
