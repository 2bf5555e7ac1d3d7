//! The in-process limiter: counters in 64 shards, each behind its own short-held mutex (never
//! held across an await). A check locks the shards of its rules in index order, evaluates every
//! rule, and consumes only when all admit: a refused request consumes nothing anywhere.

use super::rules::{CounterKey, Decision, Rule, Shape, Standing};
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use smallvec::SmallVec;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

const SHARDS: usize = 64;
// `lock` names the shards a decision needs by the bits of one u64.
const _: () = assert!(SHARDS <= 64);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    Bucket { tokens: f64, at_ms: u64 },
    Count { value: u64, expires: u64 },
}

/// A key's hash, computed once per key and request: it picks the shard (bits 32 to 37, which
/// the table's own bucket index and tag leave alone) and finds the key in it. The hasher is
/// keyed at random per process (the keys hold client-chosen parts: IPv6 networks, user ids).
#[derive(Clone, Copy)]
struct Hashed(u64);

impl Hashed {
    fn shard(self) -> usize {
        (self.0 >> 32) as usize % SHARDS
    }
}

/// A counter's place in its shard's table, valid until the table next grows or shrinks.
#[derive(Clone, Copy)]
struct Position(usize);

/// The counters of one shard, by key.
#[derive(Default)]
struct Shard(HashTable<(CounterKey, Slot)>);

impl Shard {
    fn get(&self, hash: Hashed, key: &CounterKey) -> Option<Slot> {
        self.find(hash, key).map(|(_, slot)| slot)
    }

    /// Where a counter sits in the table, and its value: a check writes it back by position,
    /// without hashing and comparing its key again.
    fn find(&self, hash: Hashed, key: &CounterKey) -> Option<(Position, Slot)> {
        let at = self.0.find_bucket_index(hash.0, |(k, _)| k == key)?;
        let (_, slot) = self.0.get_bucket(at)?;
        Some((Position(at), *slot))
    }

    /// Write the counter found at `at` (no insertion into this table since).
    fn write_at(&mut self, at: Position, next: Slot) {
        if let Some((_, slot)) = self.0.get_bucket_mut(at.0) {
            *slot = next;
        }
    }

    fn get_mut(&mut self, hash: Hashed, key: &CounterKey) -> Option<&mut Slot> {
        self.0
            .find_mut(hash.0, |(k, _)| k == key)
            .map(|(_, slot)| slot)
    }

    /// Write a counter's new value: in place when it exists (no key is cloned), else inserted.
    fn put(&mut self, hasher: &RandomState, hash: Hashed, key: &CounterKey, next: Slot) {
        match self.get_mut(hash, key) {
            Some(slot) => *slot = next,
            None => self.insert(hasher, hash, key, next),
        }
    }

    /// Add a counter this shard does not hold.
    fn insert(&mut self, hasher: &RandomState, hash: Hashed, key: &CounterKey, slot: Slot) {
        self.0
            .insert_unique(hash.0, (key.clone(), slot), |(k, _)| hasher.hash_one(k));
    }
}

/// Scratch of one decision, on the stack for up to 6 rules.
type PerRule<T> = SmallVec<[T; 6]>;

pub struct LocalLimiter {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        LocalLimiter {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: Default::default(),
        }
    }
}

/// What a rule would do to its slot.
struct Evaluation {
    /// Where its counter is, when it exists.
    found: Option<Position>,
    admitted: bool,
    next: Slot,
    /// The counter's value before this request (a bucket's tokens after refill).
    current: f64,
    standing: Standing,
}

fn evaluate(rule: &Rule, found: Option<(Position, Slot)>, now_ms: u64, divisor: u64) -> Evaluation {
    let (found, slot) = found.unzip();
    let current = match (rule.shape, slot) {
        (Shape::Bucket { .. }, Some(Slot::Bucket { tokens, at_ms })) => {
            rule.refill(tokens, now_ms.saturating_sub(at_ms), divisor)
        }
        (Shape::Bucket { .. }, _) => rule.capacity(divisor) as f64,
        (_, Some(Slot::Count { value, .. })) => value as f64,
        (Shape::Period { seed, .. }, _) => seed as f64,
        (Shape::Window { .. }, _) => 0.0,
    };
    let (admitted, standing) = rule.judge(current, now_ms, divisor);
    let next = match rule.shape {
        Shape::Bucket { .. } => Slot::Bucket {
            tokens: if admitted { current - 1.0 } else { current },
            at_ms: now_ms,
        },
        Shape::Window { start, secs } => Slot::Count {
            value: current as u64 + u64::from(admitted),
            expires: start + secs,
        },
        Shape::Period { end, .. } => Slot::Count {
            value: current as u64 + u64::from(admitted),
            expires: end,
        },
    };
    Evaluation {
        found,
        admitted,
        next,
        current,
        standing,
    }
}

impl LocalLimiter {
    fn hash(&self, key: &CounterKey) -> Hashed {
        Hashed(self.hasher.hash_one(key))
    }

    fn shard(&self, hash: Hashed) -> MutexGuard<'_, Shard> {
        self.shards[hash.shard()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Lock the shards of `hashes` in index order (each once); for each hash, the position of
    /// its shard's guard: the number of locked shards below its own.
    fn lock(&self, hashes: &[Hashed]) -> (PerRule<MutexGuard<'_, Shard>>, PerRule<usize>) {
        let wanted = hashes.iter().fold(0u64, |m, h| m | 1 << h.shard());
        let at = hashes
            .iter()
            .map(|h| (wanted & ((1u64 << h.shard()) - 1)).count_ones() as usize)
            .collect();
        let mut guards = PerRule::new();
        let mut rest = wanted;
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            guards.push(self.shards[i].lock().unwrap_or_else(|p| p.into_inner()));
            rest &= rest - 1;
        }
        (guards, at)
    }

    /// Check every rule and consume all or nothing. `divisor` splits each limit (the share of
    /// one instance while the shared store is unreachable; 1 otherwise).
    pub fn check(&self, rules: &[Rule], now_ms: u64, divisor: u64) -> Decision {
        self.run(rules, now_ms, divisor, true)
    }

    /// Where the rules stand, consuming nothing.
    pub fn peek(&self, rules: &[Rule], now_ms: u64, divisor: u64) -> Decision {
        self.run(rules, now_ms, divisor, false)
    }

    fn run(&self, rules: &[Rule], now_ms: u64, divisor: u64, consume: bool) -> Decision {
        let hashes: PerRule<Hashed> = rules.iter().map(|r| self.hash(&r.key)).collect();
        let (mut guards, at) = self.lock(&hashes);
        let evaluations: PerRule<Evaluation> = rules
            .iter()
            .zip(&hashes)
            .zip(&at)
            .map(|((rule, &h), &g)| evaluate(rule, guards[g].find(h, &rule.key), now_ms, divisor))
            .collect();
        let rejected = rules
            .iter()
            .zip(&evaluations)
            .find(|(_, e)| !e.admitted)
            .map(|(rule, _)| rule.kind);
        let consumed = consume && rejected.is_none();
        if consumed {
            // Counters that exist are written where they were found, before any new one is
            // inserted (an insertion can move every counter of its shard).
            for (e, &g) in evaluations.iter().zip(&at) {
                if let Some(found) = e.found {
                    guards[g].write_at(found, e.next);
                }
            }
            for (((rule, e), &h), &g) in rules.iter().zip(&evaluations).zip(&hashes).zip(&at) {
                if e.found.is_none() {
                    guards[g].put(&self.hasher, h, &rule.key, e.next);
                }
            }
        }
        Decision {
            rejected,
            standings: rules
                .iter()
                .zip(evaluations)
                .map(|(rule, e)| match consumed {
                    true => e.standing,
                    false => rule.look(e.current, now_ms, divisor),
                })
                .collect(),
            shared: false,
        }
    }

    /// The current value of a counter (quota usage), if this process holds it.
    pub fn value(&self, key: &CounterKey) -> Option<u64> {
        let hash = self.hash(key);
        match self.shard(hash).get(hash, key) {
            Some(Slot::Count { value, .. }) => Some(value),
            _ => None,
        }
    }

    /// Set a counter (quota reset, or a lowered limit re-read from the database).
    pub fn set(&self, key: &CounterKey, value: u64, expires: u64) {
        let hash = self.hash(key);
        self.shard(hash)
            .put(&self.hasher, hash, key, Slot::Count { value, expires });
    }

    /// Raise a counter to at least `value` (a shared total seen).
    pub fn raise(&self, key: &CounterKey, value: u64, expires: u64) {
        self.update(key, Slot::Count { value, expires }, |slot| match slot {
            Slot::Count { value: v, .. } => *v = (*v).max(value),
            Slot::Bucket { .. } => *slot = Slot::Count { value, expires },
        });
    }

    /// Add `delta` to a counter (counts another process stored); a counter not held yet is
    /// created at `base + delta`, so a request whose rules carry the older seed still counts
    /// from the new total. Under the shard lock, like a check creating the counter.
    pub fn add(&self, key: &CounterKey, delta: u64, base: u64, expires: u64) {
        let fresh = Slot::Count {
            value: base + delta,
            expires,
        };
        self.update(key, fresh, |slot| match slot {
            Slot::Count { value, .. } => *value += delta,
            Slot::Bucket { .. } => *slot = fresh,
        });
    }

    /// Change a held counter in place, or create it as `fresh`.
    fn update(&self, key: &CounterKey, fresh: Slot, change: impl FnOnce(&mut Slot)) {
        let hash = self.hash(key);
        let mut shard = self.shard(hash);
        match shard.get_mut(hash, key) {
            Some(slot) => change(slot),
            None => shard.insert(&self.hasher, hash, key, fresh),
        }
    }

    /// Drop counters whose window has ended and buckets idle for an hour (full by then).
    pub fn sweep(&self, now_ms: u64) {
        let now = now_ms / 1000;
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .0
                .retain(|(_, slot)| match slot {
                    Slot::Count { expires, .. } => *expires > now,
                    Slot::Bucket { at_ms, .. } => now_ms.saturating_sub(*at_ms) < 3_600_000,
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::rules::Kind;

    fn bucket(burst: u64, per_minute: u64) -> Rule {
        Rule {
            kind: Kind::Ip,
            key: "ip:1".into(),
            limit: burst,
            shape: Shape::Bucket { per_minute },
        }
    }

    fn minute(kind: Kind, key: &str, limit: u64) -> Rule {
        Rule {
            kind,
            key: key.into(),
            limit,
            shape: Shape::Window { start: 0, secs: 60 },
        }
    }

    #[test]
    fn a_bucket_gives_its_burst_then_refills_at_the_rate() {
        let l = LocalLimiter::default();
        let rules = [bucket(20, 60)];
        let t0 = 1_000_000;
        for i in 0..20 {
            let d = l.check(&rules, t0, 1);
            assert!(d.admitted(), "burst request {i}");
            assert_eq!(d.standings[0].remaining, 19 - i);
        }
        let refused = l.check(&rules, t0, 1);
        assert_eq!(refused.rejected, Some(Kind::Ip));
        assert_eq!(
            refused.standings[0].reset,
            t0 / 1000 + 1,
            "next token in 1 s"
        );
        assert!(!l.check(&rules, t0 + 999, 1).admitted());
        assert!(
            l.check(&rules, t0 + 1000, 1).admitted(),
            "one token per second"
        );
        assert!(!l.check(&rules, t0 + 1500, 1).admitted());
        assert!(l.check(&rules, t0 + 2000, 1).admitted());
    }

    #[test]
    fn a_refusal_at_any_level_consumes_nothing_anywhere() {
        let l = LocalLimiter::default();
        let user = minute(Kind::UserMinute, "um:u", 5);
        let api = minute(Kind::Api, "api:/x", 2);
        let t = 10_000;
        assert!(l
            .check(&[bucket(100, 60), user.clone(), api.clone()], t, 1)
            .admitted());
        assert!(l
            .check(&[bucket(100, 60), user.clone(), api.clone()], t, 1)
            .admitted());
        let refused = l.check(&[bucket(100, 60), user.clone(), api.clone()], t, 1);
        assert_eq!(refused.rejected, Some(Kind::Api));
        // The user level still has 3: the refused request took nothing.
        let d = l.check(std::slice::from_ref(&user), t, 1);
        assert_eq!(d.standings[0].remaining, 2);
        assert_eq!(l.check(&[bucket(100, 60)], t, 1).standings[0].remaining, 97);
    }

    #[test]
    fn windows_reset_and_quota_counters_start_from_their_seed() {
        let l = LocalLimiter::default();
        let quota = Rule {
            kind: Kind::Requests,
            key: "qr:u:1".into(),
            limit: 10,
            shape: Shape::Period {
                start: 0,
                end: 100,
                seed: 8,
            },
        };
        assert!(l.check(std::slice::from_ref(&quota), 5_000, 1).admitted());
        let last = l.check(std::slice::from_ref(&quota), 5_000, 1);
        assert_eq!((last.admitted(), last.standings[0].remaining), (true, 0));
        assert_eq!(
            l.check(std::slice::from_ref(&quota), 5_000, 1).rejected,
            Some(Kind::Requests)
        );
        assert_eq!(l.value(&"qr:u:1".into()), Some(10));
        l.sweep(200_000);
        assert_eq!(l.value(&"qr:u:1".into()), None);
    }

    #[test]
    fn a_divisor_splits_each_limit() {
        let l = LocalLimiter::default();
        let rule = minute(Kind::UserMinute, "um:d", 10);
        let admitted = (0..10)
            .filter(|_| l.check(std::slice::from_ref(&rule), 1_000, 2).admitted())
            .count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn the_tightest_rate_limit_is_reported() {
        let l = LocalLimiter::default();
        let d = l.check(
            &[bucket(100, 60), minute(Kind::UserMinute, "um:t", 3)],
            1_000,
            1,
        );
        assert_eq!(d.tightest().unwrap().kind, Kind::UserMinute);
        assert_eq!(d.tightest().unwrap().remaining, 2);
    }

    #[test]
    fn rules_sharing_a_shard_lock_it_once_and_each_counts_its_own() {
        let l = LocalLimiter::default();
        // The hash is keyed at random over 64 shards: among 200 keys none shared the first
        // one's shard in (63/64)^199 ≈ 4 % of runs; among 4 000, in (63/64)^3999 ≈ 4e-28.
        let keys: Vec<String> = (0..4_000).map(|i| format!("um:k{i}")).collect();
        let shard = |k: &String| l.hash(&k.as_str().into()).shard();
        let first = &keys[0];
        let twin = keys[1..].iter().find(|k| shard(k) == shard(first)).unwrap();
        let other = keys[1..].iter().find(|k| shard(k) != shard(first)).unwrap();
        let rules = [
            minute(Kind::UserMinute, other, 5),
            minute(Kind::UserHour, first, 3),
            minute(Kind::Api, twin, 4),
        ];
        let hashes: Vec<Hashed> = rules.iter().map(|r| l.hash(&r.key)).collect();
        let (guards, at) = l.lock(&hashes);
        assert_eq!(guards.len(), 2);
        assert_eq!(at[1], at[2]);
        assert_ne!(at[0], at[1]);
        assert_eq!(at[0], usize::from(shard(other) > shard(first)));
        drop(guards);
        for _ in 0..2 {
            assert!(l.check(&rules, 1_000, 1).admitted());
        }
        let d = l.check(&rules, 1_000, 1);
        let remaining: Vec<u64> = d.standings.iter().map(|s| s.remaining).collect();
        assert_eq!(remaining, [2, 0, 1]);
        assert_eq!(l.check(&rules, 1_000, 1).rejected, Some(Kind::UserHour));
        assert_eq!(l.value(&twin.as_str().into()), Some(3));
        l.raise(&twin.as_str().into(), 9, 10);
        l.add(&twin.as_str().into(), 1, 0, 10);
        l.add(&"um:new".into(), 2, 5, 10);
        assert_eq!(l.value(&twin.as_str().into()), Some(10));
        assert_eq!(l.value(&"um:new".into()), Some(7));
    }

    #[test]
    fn a_counter_found_keeps_its_count_when_a_new_one_grows_its_shard() {
        let l = LocalLimiter::default();
        let kept = minute(Kind::UserMinute, "um:kept", 1_000);
        let shard = |k: &str| l.hash(&k.into()).shard();
        // New counters in the kept one's shard, one per check beside it: the shard's table
        // grows (and moves every counter) several times while `kept` is written by position.
        let newcomers: Vec<String> = (0..20_000)
            .map(|i| format!("api:n{i}"))
            .filter(|k| shard(k) == shard("um:kept"))
            .take(40)
            .collect();
        assert_eq!(newcomers.len(), 40);
        assert!(l.check(std::slice::from_ref(&kept), 1_000, 1).admitted());
        for (i, key) in newcomers.iter().enumerate() {
            let d = l.check(&[minute(Kind::Api, key, 5), kept.clone()], 1_000, 1);
            assert!(d.admitted());
            assert_eq!(d.standings[1].remaining, 1_000 - 2 - i as u64, "check {i}");
        }
        assert_eq!(l.value(&"um:kept".into()), Some(41));
        for key in &newcomers {
            assert_eq!(l.value(&key.as_str().into()), Some(1), "{key}");
        }
    }
}
