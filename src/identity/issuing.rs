//! One key issuance at a time per user in this process, so the live-key cap and the hourly
//! issuance limit are counted and acted on without a race (PostgreSQL adds a row lock for
//! other instances; see `store::keys::insert_capped`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Default)]
pub struct UserLocks {
    locks: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

impl UserLocks {
    /// Wait for `user`'s lock; it is released when the guard drops.
    pub async fn lock(&self, user: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, weak| weak.strong_count() > 0);
            match map.get(user).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(AsyncMutex::new(()));
                    map.insert(user.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_per_user() {
        let locks = UserLocks::default();
        let held = locks.lock("a").await;
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), locks.lock("a"))
                .await
                .is_err()
        );
        let _other = locks.lock("b").await;
        drop(held);
        let _again = locks.lock("a").await;
    }
}
