//! From a presented `X-API-Key` to an admitted identity. The hot path is a parse, a SHA-256 and
//! a cache read. A miss costs one or two indexed queries and at most one bcrypt (none when the
//! same secret was proven against the same hash before); concurrent misses for one key share a
//! single verification; wrong keys are remembered so they cost nothing the second time.

use super::attempts::Attempts;
use super::cache::{CacheLimits, Change, KeyCache};
use super::hasher::Hasher;
use super::issuing::UserLocks;
use super::key::{self, Fingerprint, ParsedKey};
use super::record::User;
use super::snapshot::{Identity, Unusable};
use crate::access::Denied;
use crate::db::{keys, users, Store};
use crate::error::{GatewayError, GatewayResult};
use crate::state::unix_now;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

type Outcome = GatewayResult<Arc<Identity>>;

pub struct Authenticator {
    cache: KeyCache,
    hasher: Hasher,
    /// The legacy key's value while `legacy.enabled`.
    legacy: Option<String>,
    inflight: Inflight,
    /// bcrypt verifications per key id.
    attempts: Attempts,
    /// Key issuance, one at a time per user.
    pub issuing: UserLocks,
}

const MISSING: GatewayError = GatewayError::Denied(Denied::MissingKey);
const MALFORMED: GatewayError = GatewayError::Denied(Denied::MalformedKey);
const INVALID: GatewayError = GatewayError::Denied(Denied::InvalidKey);
const EXPIRED: GatewayError = GatewayError::Denied(Denied::ExpiredKey);

impl From<Unusable> for GatewayError {
    fn from(refusal: Unusable) -> GatewayError {
        GatewayError::Denied(match refusal {
            Unusable::Expired => Denied::ExpiredKey,
            Unusable::Suspended => Denied::UserSuspended,
            Unusable::Deleted => Denied::UserDeleted,
            Unusable::IpNotAllowed => Denied::IpNotAllowed,
        })
    }
}

type Inflight = Mutex<HashMap<Fingerprint, Arc<OnceCell<Outcome>>>>;

/// One verification shared by concurrent requests for the same key; its map entry goes when
/// the request that made it finishes or is dropped.
struct InflightSlot<'a> {
    map: &'a Inflight,
    fp: Fingerprint,
    cell: Arc<OnceCell<Outcome>>,
}

impl Drop for InflightSlot<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&self.fp)
            .is_some_and(|c| Arc::ptr_eq(c, &self.cell))
        {
            map.remove(&self.fp);
        }
    }
}

impl Authenticator {
    pub fn new(limits: &CacheLimits, hasher: Hasher, legacy: Option<String>) -> Authenticator {
        Authenticator {
            cache: KeyCache::new(limits),
            hasher,
            legacy,
            inflight: Mutex::new(HashMap::new()),
            attempts: Attempts::default(),
            issuing: UserLocks::default(),
        }
    }

    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// The caller behind `key` (the raw header value), if it may call from `client` now.
    pub async fn authenticate(&self, store: &Store, key: Option<&[u8]>, client: IpAddr) -> Outcome {
        self.authenticate_guarded(store, key, client, || async { Ok::<(), GatewayError>(()) })
            .await
    }

    /// Like `authenticate`, with `before_miss` run before a key is looked up and verified (the
    /// expensive path), so a caller can refuse it first.
    pub async fn authenticate_guarded<E, G>(
        &self,
        store: &Store,
        key: Option<&[u8]>,
        client: IpAddr,
        before_miss: impl FnOnce() -> G,
    ) -> Result<Arc<Identity>, E>
    where
        E: From<GatewayError>,
        G: std::future::Future<Output = Result<(), E>>,
    {
        let key = key.ok_or(MISSING)?;
        let key = std::str::from_utf8(key).map_err(|_| MALFORMED)?;
        let identity = match self.cached(key)? {
            Some(identity) => identity,
            // The miss path (a database read, a bcrypt check) is boxed: its futures are large,
            // and the request's own future, moved into a box per request, stays small.
            None => {
                Box::pin(before_miss()).await?;
                Box::pin(self.verify(store, key)).await?
            }
        };
        let now = unix_now();
        identity.admit(client, now).map_err(GatewayError::from)?;
        identity.touch(now);
        Ok(identity)
    }

    /// The hot path, without I/O: the identity of a cached key, an error for a malformed or
    /// known-bad key, `None` when the key must be looked up.
    pub fn cached(&self, key: &str) -> GatewayResult<Option<Arc<Identity>>> {
        key::parse(key, self.legacy.as_deref()).ok_or(MALFORMED)?;
        let fp = key::fingerprint(key);
        if let Some(identity) = self.cache.get(&fp) {
            return Ok(Some(identity));
        }
        if self.cache.is_rejected(&fp) {
            return Err(INVALID);
        }
        Ok(None)
    }

    /// Look a key up in the database and prove its secret; concurrent calls for one key share
    /// one verification.
    pub async fn verify(&self, store: &Store, key: &str) -> Outcome {
        let parsed = key::parse(key, self.legacy.as_deref()).ok_or(MALFORMED)?;
        let fp = key::fingerprint(key);
        let cell = self
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(fp)
            .or_default()
            .clone();
        // Removes the shared slot however this ends, a dropped request included.
        let _slot = InflightSlot {
            map: &self.inflight,
            fp,
            cell: cell.clone(),
        };
        let outcome = cell
            .get_or_init(|| self.load(store, &parsed, fp))
            .await
            .clone();
        outcome
    }

    /// Put a verified identity in the cache directly (benchmarks and tests).
    #[doc(hidden)]
    pub fn prime(&self, key: &str, identity: Identity) {
        self.cache.fill(
            key::fingerprint(key),
            Arc::new(identity),
            self.cache.epoch(),
        );
    }

    async fn load(&self, store: &Store, parsed: &ParsedKey<'_>, fp: Fingerprint) -> Outcome {
        let epoch = self.cache.epoch();
        let row = keys::find(store, &parsed.lookup_id())
            .await?
            .filter(|row| row.user_id == parsed.user_id && row.revoked_at.is_none());
        let Some(row) = row else {
            self.cache.reject(fp);
            return Err(INVALID);
        };
        if row.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
            self.cache.reject(fp);
            return Err(EXPIRED);
        }
        let hash: Arc<str> = row.hash.as_str().into();
        if self.cache.proven_hash(&fp).as_deref() != Some(&*hash) {
            // An unproven secret: bcrypt, within this key id's attempts.
            if !self.attempts.begin(&row.id) {
                return Err(GatewayError::Denied(Denied::KeyLockedOut));
            }
            match self.hasher.verify(parsed.secret, hash.clone()).await {
                Ok(true) => {
                    self.attempts.proven(&row.id);
                    self.cache.prove(fp, hash)
                }
                Ok(false) => {
                    self.cache.reject(fp);
                    return Err(INVALID);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let user = users::find(store, &row.user_id).await?.ok_or(INVALID)?;
        let identity = User::from_row(user)
            .and_then(|user| user.snapshot(&row))
            .map_err(GatewayError::Internal)?;
        let identity = Arc::new(identity);
        self.cache.fill(fp, identity.clone(), epoch);
        Ok(identity)
    }

    /// Drop what `change` makes stale, here and now.
    pub fn invalidate(&self, change: &Change) {
        self.cache.invalidate(change);
    }

    /// Key ids used since the last call (for the batched `last_used_at` write).
    pub fn take_used(&self) -> Vec<String> {
        self.cache.take_used()
    }
}
