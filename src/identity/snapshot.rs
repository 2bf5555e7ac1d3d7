//! The immutable picture of a verified key that the request pipeline needs: built once per
//! cache fill from the database, shared by every request that presents the key.

use super::model::{QuotaOverride, RateLimitOverride, Role, Status, Whitelist};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct Identity {
    pub user_id: String,
    /// The key's public lookup id (the only part of a key ever logged).
    pub key_id: String,
    pub role: Role,
    pub status: Status,
    pub whitelist: Whitelist,
    pub rate_limits: Option<RateLimitOverride>,
    pub quotas: Option<QuotaOverride>,
    /// Unix seconds from which the key stops working (end of a rotation grace).
    pub key_expires_at: Option<u64>,
    /// Unix seconds of the latest use seen here, and of the latest one written to the database.
    last_used: AtomicU64,
    flushed: AtomicU64,
}

/// Why a verified key may still not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Expired,
    Suspended,
    Deleted,
    IpNotAllowed,
}

impl Identity {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        user_id: String,
        key_id: String,
        role: Role,
        status: Status,
        whitelist: Whitelist,
        rate_limits: Option<RateLimitOverride>,
        quotas: Option<QuotaOverride>,
        key_expires_at: Option<u64>,
    ) -> Identity {
        Identity {
            user_id,
            key_id,
            role,
            status,
            whitelist,
            rate_limits,
            quotas,
            key_expires_at,
            last_used: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
        }
    }

    pub fn expired(&self, now: u64) -> bool {
        self.key_expires_at.is_some_and(|at| now >= at)
    }

    /// Whether this key may make a request from `client` at `now`.
    pub fn admit(&self, client: IpAddr, now: u64) -> Result<(), Refusal> {
        if self.expired(now) {
            return Err(Refusal::Expired);
        }
        match self.status {
            Status::Active => {}
            Status::Suspended => return Err(Refusal::Suspended),
            Status::Deleted => return Err(Refusal::Deleted),
        }
        if !self.whitelist.allows(client) {
            return Err(Refusal::IpNotAllowed);
        }
        Ok(())
    }

    /// Note a use; a relaxed store, so the hot path never contends.
    pub fn touch(&self, now: u64) {
        if self.last_used.load(Ordering::Relaxed) != now {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }

    /// Whether a use happened since the last flush; marks it flushed.
    pub fn take_unflushed(&self) -> bool {
        let used = self.last_used.load(Ordering::Relaxed);
        used != 0 && self.flushed.swap(used, Ordering::Relaxed) != used
    }
}
