//! How often one key id may cost a bcrypt: a few attempts per window. A key id is public (its
//! user knows it, and it sits in the key), so without this anyone could send forged secrets
//! for it, each a bcrypt, and fill every verification slot. Attempts in flight count, so a
//! burst of concurrent forgeries passes only the first few; a proven secret resets the count,
//! and a secret proven before never needs bcrypt again (`KeyCache::proven_hash`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// bcrypt verifications one key id may cost per window.
pub const MAX_ATTEMPTS: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
const CAPACITY: u64 = 100_000;

pub struct Attempts {
    /// Attempts per key id since its window opened (an entry lives one window).
    counts: moka::sync::Cache<String, Arc<AtomicU32>>,
    max: u32,
}

impl Default for Attempts {
    fn default() -> Self {
        Attempts::new(MAX_ATTEMPTS, WINDOW)
    }
}

impl Attempts {
    pub fn new(max: u32, window: Duration) -> Attempts {
        Attempts {
            counts: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(window)
                .build(),
            max,
        }
    }

    /// Count an attempt for `key_id`; false when its window has none left.
    pub fn begin(&self, key_id: &str) -> bool {
        let count = self.counts.get_with(key_id.to_string(), Arc::default);
        count.fetch_add(1, Ordering::SeqCst) < self.max
    }

    /// The secret was right: the key id starts afresh.
    pub fn proven(&self, key_id: &str) {
        self.counts.invalidate(key_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_attempts_per_key_id_then_refusals_until_proven() {
        let attempts = Attempts::new(3, Duration::from_secs(60));
        assert!((0..3).all(|_| attempts.begin("k1")));
        assert!(!attempts.begin("k1"));
        assert!(attempts.begin("k2"), "another key id has its own window");
        attempts.proven("k1");
        assert!(attempts.begin("k1"));
    }

    #[test]
    fn the_window_passes() {
        let attempts = Attempts::new(1, Duration::from_millis(50));
        assert!(attempts.begin("k"));
        assert!(!attempts.begin("k"));
        std::thread::sleep(Duration::from_millis(120));
        assert!(attempts.begin("k"));
    }
}
