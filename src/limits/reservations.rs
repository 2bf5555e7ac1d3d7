//! Storage quota under concurrency: an upload reserves the bytes it may store before it writes
//! any, and gives them back when it is stored or fails. The quota holds when
//! `stored (rows) + reserved (all uploads in flight, this one included) <= limit`.
//!
//! The order makes it exact without a lock around the database: the reservation is added
//! first, the stored bytes read after, and an upload gives its reservation back only after its
//! row is committed. So an upload that finished before this one read the rows is in the rows,
//! and one that had not finished is in the reservations (or in both, which only errs on the
//! side of refusing). In shared mode reservations are a Redis counter per user (with an
//! expiry, so an instance that dies holding one frees it); in embedded mode, and while Redis
//! is unreachable, a counter in this process.

use super::shared::Shared;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A Redis reservation counter outlives its last change by this much (seconds): longer than
/// any upload that still makes progress, short enough that a dead instance's reservations go.
const SHARED_TTL: u64 = 15 * 60;

#[derive(Default)]
pub struct Ledger {
    local: Mutex<HashMap<String, u64>>,
}

impl Ledger {
    /// Add `bytes` to the user's reservations; their total, this one included.
    fn add_local(&self, user: &str, bytes: u64) -> u64 {
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let total = map.entry(user.to_string()).or_insert(0);
        *total += bytes;
        *total
    }

    fn remove_local(&self, user: &str, bytes: u64) {
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(total) = map.get_mut(user) {
            *total = total.saturating_sub(bytes);
            if *total == 0 {
                map.remove(user);
            }
        }
    }
}

fn shared_key(user: &str) -> String {
    format!("storage_reserved:{}", super::rules::user_tag(user))
}

fn expires_at() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64 + SHARED_TTL
}

/// Where a reservation was made.
enum Place {
    Local(Arc<Ledger>),
    Shared(Arc<Shared>),
}

/// Bytes an upload holds against its user's storage quota until `release` or drop.
pub struct Reservation {
    user: String,
    pub bytes: u64,
    place: Option<Place>,
}

/// Reserve `bytes` for `user`: the reservation and the total now reserved for the user.
pub async fn reserve(
    ledger: &Arc<Ledger>,
    shared: Option<&Arc<Shared>>,
    user: &str,
    bytes: u64,
) -> (Reservation, u64) {
    let key = shared_key(user);
    let in_redis = match shared {
        Some(shared) => shared
            .add(&key, bytes as i64, expires_at())
            .await
            .map(|total| (shared.clone(), total)),
        None => None,
    };
    let (place, total) = match in_redis {
        Some((shared, total)) => (Place::Shared(shared), total.max(0) as u64),
        None => (Place::Local(ledger.clone()), ledger.add_local(user, bytes)),
    };
    let reservation = Reservation {
        user: user.to_string(),
        bytes,
        place: Some(place),
    };
    (reservation, total)
}

impl Reservation {
    /// Give the bytes back (once the upload's row is committed, or it failed).
    pub async fn release(mut self) {
        match self.place.take() {
            Some(Place::Shared(shared)) => {
                let _ = shared
                    .add(&shared_key(&self.user), -(self.bytes as i64), expires_at())
                    .await;
            }
            Some(Place::Local(ledger)) => ledger.remove_local(&self.user, self.bytes),
            None => {}
        }
    }
}

impl Drop for Reservation {
    /// An upload that ends without `release` (an error, a dropped request) still gives its
    /// bytes back.
    fn drop(&mut self) {
        match self.place.take() {
            Some(Place::Local(ledger)) => ledger.remove_local(&self.user, self.bytes),
            Some(Place::Shared(shared)) => {
                let (user, bytes) = (std::mem::take(&mut self.user), self.bytes);
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let _ = shared
                            .add(&shared_key(&user), -(bytes as i64), expires_at())
                            .await;
                    });
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_add_up_and_go_back() {
        let ledger = Arc::new(Ledger::default());
        let (a, total) = reserve(&ledger, None, "u", 300).await;
        assert_eq!(total, 300);
        let (b, total) = reserve(&ledger, None, "u", 200).await;
        assert_eq!(total, 500);
        let (_other, total) = reserve(&ledger, None, "v", 7).await;
        assert_eq!(total, 7, "users do not share reservations");
        a.release().await;
        drop(b);
        let (_c, total) = reserve(&ledger, None, "u", 1).await;
        assert_eq!(total, 1, "released and dropped reservations are gone");
    }
}
