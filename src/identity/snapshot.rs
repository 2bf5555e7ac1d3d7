//! The immutable picture of a verified key that the request pipeline needs: built once per
//! cache fill from the database, shared by every request that presents the key.

use super::model::{QuotaOverride, RateLimitOverride, Role, Status, Whitelist};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub struct Identity {
    pub user_id: String,
    /// The same id, shared by the names of the user's limit counters (made once here, not per
    /// request).
    pub user: Arc<str>,
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
pub enum Unusable {
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
            user: user_id.as_str().into(),
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

    /// An active `user` without restrictions or overrides (tests and benchmarks).
    pub fn plain(user_id: &str, key_id: &str) -> Identity {
        Identity::new(
            user_id.into(),
            key_id.into(),
            Role::User,
            Status::Active,
            Whitelist::default(),
            None,
            None,
            None,
        )
    }

    pub fn expired(&self, now: u64) -> bool {
        self.key_expires_at.is_some_and(|at| now >= at)
    }

    /// Whether this key may make a request from `client` at `now`.
    pub fn admit(&self, client: IpAddr, now: u64) -> Result<(), Unusable> {
        if self.expired(now) {
            return Err(Unusable::Expired);
        }
        match self.status {
            Status::Active => {}
            Status::Suspended => return Err(Unusable::Suspended),
            Status::Deleted => return Err(Unusable::Deleted),
        }
        if !self.whitelist.allows(client) {
            return Err(Unusable::IpNotAllowed);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(status: Status, whitelist: &[&str], expires: Option<u64>) -> Identity {
        let list: Vec<String> = whitelist.iter().map(|s| s.to_string()).collect();
        Identity::new(
            "u".into(),
            "k".into(),
            Role::User,
            status,
            Whitelist::parse(&list).unwrap(),
            None,
            None,
            expires,
        )
    }

    #[test]
    fn admission_checks_expiry_status_and_network() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let elsewhere: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(with(Status::Active, &[], None).admit(ip, 5), Ok(()));
        let expiring = with(Status::Active, &[], Some(100));
        assert_eq!(expiring.admit(ip, 99), Ok(()));
        assert_eq!(expiring.admit(ip, 100), Err(Unusable::Expired));
        assert_eq!(
            with(Status::Suspended, &[], None).admit(ip, 5),
            Err(Unusable::Suspended)
        );
        assert_eq!(
            with(Status::Deleted, &[], None).admit(ip, 5),
            Err(Unusable::Deleted)
        );
        let fenced = with(Status::Active, &["10.0.0.0/8"], None);
        assert_eq!(fenced.admit(ip, 5), Ok(()));
        assert_eq!(fenced.admit(elsewhere, 5), Err(Unusable::IpNotAllowed));
        // An expired key is refused as such even for a suspended user elsewhere.
        assert_eq!(
            with(Status::Suspended, &["10.0.0.0/8"], Some(1)).admit(elsewhere, 5),
            Err(Unusable::Expired)
        );
    }
}
