//! Verified keys, rejected keys and proven secrets, in bounded caches with a TTL, keyed by the
//! SHA-256 of the presented key. A hit is a hash and a concurrent map read: no lock held
//! across an await, no SQL, no bcrypt. The maps hash the fingerprint with foldhash, seeded at
//! random per process (a client can grind fingerprints, not guess the seed): a fingerprint
//! is already a digest, and SipHash, moka's default, would hash it again at several times
//! the cost.
//!
//! An invalidation bumps an epoch before removing entries; a fill that started before the bump
//! does not stay cached, so a change can never be undone by a verification that was in flight.

use super::key::Fingerprint;
use super::snapshot::Identity;
use foldhash::fast::RandomState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What changed, so that caches on every instance drop what depends on it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Change {
    User(String),
    Key(String),
    All,
    /// A user's quota usage was reset: every instance zeroes what it holds for the user.
    QuotaReset(String),
}

pub struct CacheLimits {
    pub capacity: u64,
    pub ttl: Duration,
    pub negative_ttl: Duration,
}

/// A bounded map keyed by fingerprint.
type Cache<V> = moka::sync::Cache<Fingerprint, V, RandomState>;

pub struct KeyCache {
    verified: Cache<Arc<Identity>>,
    rejected: Cache<()>,
    /// The bcrypt hash each fingerprint was proven against: while the stored hash is the same,
    /// a refill after the TTL needs no bcrypt.
    proven: Cache<Arc<str>>,
    epoch: AtomicU64,
}

impl KeyCache {
    pub fn new(limits: &CacheLimits) -> KeyCache {
        KeyCache {
            verified: moka::sync::Cache::builder()
                .max_capacity(limits.capacity)
                .time_to_live(limits.ttl)
                .build_with_hasher(RandomState::default()),
            rejected: moka::sync::Cache::builder()
                .max_capacity(limits.capacity)
                .time_to_live(limits.negative_ttl)
                .build_with_hasher(RandomState::default()),
            proven: moka::sync::Cache::builder()
                .max_capacity(limits.capacity)
                .time_to_idle(limits.ttl * 10)
                .build_with_hasher(RandomState::default()),
            epoch: AtomicU64::new(0),
        }
    }

    pub fn get(&self, fp: &Fingerprint) -> Option<Arc<Identity>> {
        self.verified.get(fp)
    }

    pub fn is_rejected(&self, fp: &Fingerprint) -> bool {
        self.rejected.contains_key(fp)
    }

    pub fn reject(&self, fp: Fingerprint) {
        self.rejected.insert(fp, ());
    }

    pub fn proven_hash(&self, fp: &Fingerprint) -> Option<Arc<str>> {
        self.proven.get(fp)
    }

    pub fn prove(&self, fp: Fingerprint, hash: Arc<str>) {
        self.proven.insert(fp, hash);
    }

    /// Read before loading what a fill is built from.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Cache `identity` unless something changed since `epoch` was read.
    pub fn fill(&self, fp: Fingerprint, identity: Arc<Identity>, epoch: u64) {
        if self.epoch() != epoch {
            return;
        }
        self.verified.insert(fp, identity);
        if self.epoch() != epoch {
            self.verified.invalidate(&fp);
        }
    }

    pub fn forget(&self, fp: &Fingerprint) {
        self.verified.invalidate(fp);
    }

    pub fn invalidate(&self, change: &Change) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let matches: Box<dyn Fn(&Identity) -> bool> = match change {
            Change::All => {
                self.verified.invalidate_all();
                return;
            }
            Change::User(id) => Box::new(move |i: &Identity| &i.user_id == id),
            // Usage, not identity: the limiter handles it.
            Change::QuotaReset(_) => return,
            Change::Key(id) => Box::new(move |i: &Identity| &i.key_id == id),
        };
        for (fp, identity) in self.verified.iter() {
            if matches(&identity) {
                self.verified.invalidate(&*fp);
            }
        }
    }

    /// Key ids used since the previous call, for the batched `last_used_at` write.
    pub fn take_used(&self) -> Vec<String> {
        self.verified
            .iter()
            .filter(|(_, identity)| identity.take_unflushed())
            .map(|(_, identity)| identity.key_id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> KeyCache {
        KeyCache::new(&CacheLimits {
            capacity: 100,
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(60),
        })
    }

    fn identity(user: &str, key: &str) -> Arc<Identity> {
        Arc::new(Identity::plain(user, key))
    }

    #[test]
    fn changes_drop_exactly_what_depends_on_them() {
        let c = cache();
        c.fill([1; 32], identity("ann", "k1"), c.epoch());
        c.fill([2; 32], identity("ann", "k2"), c.epoch());
        c.fill([3; 32], identity("bob", "k3"), c.epoch());
        c.invalidate(&Change::Key("k2".into()));
        assert!(c.get(&[1; 32]).is_some());
        assert!(c.get(&[2; 32]).is_none());
        c.invalidate(&Change::User("ann".into()));
        assert!(c.get(&[1; 32]).is_none());
        assert!(c.get(&[3; 32]).is_some());
        c.invalidate(&Change::All);
        assert!(c.get(&[3; 32]).is_none());
    }

    #[test]
    fn a_fill_that_started_before_a_change_is_not_kept() {
        let c = cache();
        let before = c.epoch();
        c.invalidate(&Change::User("ann".into()));
        c.fill([1; 32], identity("ann", "k1"), before);
        assert!(c.get(&[1; 32]).is_none());
        c.fill([1; 32], identity("ann", "k1"), c.epoch());
        assert!(c.get(&[1; 32]).is_some());
    }

    #[test]
    fn used_keys_are_reported_once_per_use() {
        let c = cache();
        let ann = identity("ann", "k1");
        c.fill([1; 32], ann.clone(), c.epoch());
        c.fill([2; 32], identity("bob", "k2"), c.epoch());
        assert!(c.take_used().is_empty());
        ann.touch(1_000);
        assert_eq!(c.take_used(), vec!["k1".to_string()]);
        assert!(c.take_used().is_empty());
        ann.touch(1_001);
        assert_eq!(c.take_used(), vec!["k1".to_string()]);
    }

    #[test]
    fn change_messages_round_trip() {
        for change in [
            Change::User("u-1".into()),
            Change::Key("abc".into()),
            Change::All,
        ] {
            let text = serde_json::to_string(&change).unwrap();
            assert_eq!(serde_json::from_str::<Change>(&text).unwrap(), change);
        }
    }
}
