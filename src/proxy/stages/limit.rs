//! Who may make this request now: authentication guarded by the IP level (checked before an
//! expensive key verification, consumed by a request that fails authentication), then every
//! rate limit and quota, consumed all or nothing.

use crate::identity::Identity;
use crate::limits::{Admission, Refusal};
use crate::proxy::stages::auth::API_KEY_HEADER;
use crate::state::AppState;
use pingora::protocols::http::ServerSession;
use std::net::IpAddr;
use std::sync::Arc;

pub async fn authenticate(
    state: &AppState,
    session: &ServerSession,
    ip: IpAddr,
) -> Result<Arc<Identity>, Refusal> {
    let key = session
        .req_header()
        .headers
        .get(API_KEY_HEADER)
        .map(|v| v.as_bytes());
    let config = state.config();
    let outcome = state
        .auth
        .authenticate_guarded(&state.store, key, ip, || {
            state.limits.check_ip(&config, ip, false)
        })
        .await;
    match outcome {
        Err(refusal) if matches!(refusal.error.status().as_u16(), 401 | 403) => {
            state.limits.check_ip(&config, ip, true).await?;
            Err(refusal)
        }
        other => other,
    }
}

pub async fn admit(
    state: &AppState,
    identity: &Identity,
    endpoint: &str,
    ip: IpAddr,
) -> Result<Admission, Refusal> {
    state
        .limits
        .admit(&state.config(), &state.store, identity, endpoint, ip)
        .await
}
