//! One admission step for every route of both listeners. A route declares its `Access`; this
//! runs, in order: the IP level before anything costly (a token spent by every request that
//! reaches key verification, and by every refused one), the key, the user's status and IP
//! whitelist, the role, then the user and endpoint levels (and, for metered routes, the
//! monthly quotas). Refusals are typed: `Denied` for access, `RateLimited` and
//! `QuotaExceeded` for limits.

pub mod denied;

pub use denied::Denied;

use crate::error::GatewayError;
use crate::identity::rbac::{self, Action};
use crate::identity::Identity;
use crate::limits::rules::Standing;
use crate::limits::{Admission, Refusal, Scope};
use crate::state::AppState;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// What a route needs before its handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Health, readiness, metrics: no key, no limit, no query.
    Open,
    /// The backends' source fetch: the URL's signature is its credential. An exhausted IP
    /// level refuses it; a bad signature spends an IP token (`spend_ip`).
    Signed,
    /// A key (and the role the action needs), the IP, user and endpoint rate levels.
    Key,
    /// `Key`, and the request counts against the user's monthly quotas.
    Metered,
}

/// What the request presents.
pub struct Asked<'a> {
    pub key: Option<&'a [u8]>,
    pub ip: IpAddr,
    /// The route template, for the endpoint level and the usage counts.
    pub endpoint: &'static str,
    /// The role action the route needs, and the user it concerns (admin routes).
    pub action: Option<(Action, Option<&'a str>)>,
}

/// Admit a request. The caller is written to `caller` as soon as it is known, so a request
/// refused after authentication is still logged under its user. `Some` admission for `Key`
/// and `Metered` routes.
pub async fn admit(
    state: &AppState,
    access: Access,
    asked: Asked<'_>,
    caller: &mut Option<Arc<Identity>>,
) -> Result<Option<Admission>, Refusal> {
    let config = state.config();
    match access {
        Access::Open => return Ok(None),
        Access::Signed => {
            state.limits.check_ip(&config, asked.ip, false).await?;
            return Ok(None);
        }
        Access::Key | Access::Metered => {}
    }
    let (identity, ip_spent) = authenticate(state, asked.key, asked.ip).await?;
    *caller = Some(identity.clone());
    if let Some((action, target)) = asked.action {
        if !rbac::allows(identity.role, &identity.user_id, action, target) {
            return Err(GatewayError::Denied(Denied::Role(identity.role.as_str())).into());
        }
    }
    let scope = Scope {
        ip_spent,
        metered: access == Access::Metered,
    };
    let admission = state
        .limits
        .admit(
            &config,
            &state.store,
            &identity,
            asked.endpoint,
            asked.ip,
            scope,
        )
        .await?;
    Ok(Some(admission))
}

/// Spend an IP token for a request refused before any key (a 404, a bad source signature):
/// the refusal, or 429 when the IP level is already exhausted.
pub async fn spend_ip(state: &AppState, ip: IpAddr, refusal: GatewayError) -> Refusal {
    match state.limits.check_ip(&state.config(), ip, true).await {
        Ok(_) => refusal.into(),
        Err(limited) => limited,
    }
}

/// The caller behind `key`, and where the IP level stands if it was spent already: a key not
/// in the verification cache spends its IP token before it is looked up and verified, and a
/// key that fails spends one (once).
async fn authenticate(
    state: &AppState,
    key: Option<&[u8]>,
    ip: IpAddr,
) -> Result<(Arc<Identity>, Option<Option<Standing>>), Refusal> {
    let config = state.config();
    let spent = Mutex::new(None);
    let outcome: Result<Arc<Identity>, Refusal> = state
        .auth
        .authenticate_guarded(&state.store, key, ip, || async {
            let standing = state.limits.check_ip(&config, ip, true).await?;
            *spent.lock().unwrap_or_else(|p| p.into_inner()) = Some(standing);
            Ok(())
        })
        .await;
    let spent = spent.into_inner().unwrap_or_else(|p| p.into_inner());
    match outcome {
        Ok(identity) => Ok((identity, spent)),
        Err(refusal) if spent.is_none() && matches!(refusal.error, GatewayError::Denied(_)) => {
            state.limits.check_ip(&config, ip, true).await?;
            Err(refusal)
        }
        Err(refusal) => Err(refusal),
    }
}
