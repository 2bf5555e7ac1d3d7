//! Shared limits on a Redis Cluster, where one script can only touch keys of one slot. A
//! request's rules are split by hash tag: everything of one user (`{u:<id>}`: minute and hour
//! windows, the request quota) is decided by one script on one shard, all or nothing, as on a
//! single Redis; the IP level (`{ip:<bucket>}`) by another. The endpoint level, one global
//! counter per route and the hottest key at scale, is spent from budget this instance leases
//! in chunks (`Leases`), so its shard sees one call per chunk, not one per request.
//!
//! The steps run in the rules' order. When a later step refuses (or Redis fails), what the
//! earlier steps took is given back, so a refused request is charged nothing. Between a step
//! and its refund (one round trip) another request can see the taken count and be refused by
//! it: the cluster errs on refusing, never on admitting (`docs/decisions.md`).

use super::rules::{CounterKey, Decision, Kind, Rule, Shape};
use super::shared::Shared;
use std::collections::HashMap;
use std::sync::Mutex;

/// One step of a decision: rules decided together.
enum Step {
    /// Rules whose keys share one slot: one script.
    Script(Vec<usize>),
    /// An endpoint rule: spent from this instance's lease.
    Lease(usize),
}

/// Split `rules` into steps, in order of first appearance.
fn steps(redis: &Shared, rules: &[Rule]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let mut slots: Vec<(u16, usize)> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        if rule.kind == Kind::Api {
            out.push(Step::Lease(i));
            continue;
        }
        let slot = redis.slot(&rule.key);
        match slots.iter().find(|(s, _)| *s == slot) {
            Some(&(_, at)) => {
                if let Step::Script(group) = &mut out[at] {
                    group.push(i);
                }
            }
            None => {
                slots.push((slot, out.len()));
                out.push(Step::Script(vec![i]));
            }
        }
    }
    out
}

/// What a step took (by position in the request's rules), to give back when a later one
/// refuses.
enum Taken {
    Script(Vec<usize>),
    Lease(usize),
}

/// Decide `rules` step by step; `None` when Redis cannot answer (nothing stays taken, unless the
/// refund itself cannot reach Redis: then the count errs on refusing).
pub async fn check(
    redis: &Shared,
    leases: &Leases,
    rules: &[Rule],
    consume: bool,
    now: u64,
) -> Option<Decision> {
    let mut decision = Decision {
        shared: true,
        ..Decision::default()
    };
    let mut taken: Vec<Taken> = Vec::new();
    for step in steps(redis, rules) {
        let (outcome, took) = match step {
            Step::Script(group) => {
                let subset: Vec<&Rule> = group.iter().map(|&i| &rules[i]).collect();
                let outcome = redis.run_script(&subset, consume, now).await;
                (outcome, Taken::Script(group))
            }
            Step::Lease(i) => {
                let outcome = leases.spend(redis, &rules[i], consume, now).await;
                (outcome, Taken::Lease(i))
            }
        };
        if consume && outcome.as_ref().is_some_and(Decision::admitted) {
            taken.push(took);
        }
        let Some(part) = outcome else {
            give_back(redis, leases, rules, taken).await;
            return None;
        };
        decision.standings.extend(part.standings);
        if let Some(kind) = part.rejected {
            decision.rejected = Some(kind);
            give_back(redis, leases, rules, taken).await;
            return Some(decision);
        }
    }
    Some(decision)
}

async fn give_back(redis: &Shared, leases: &Leases, rules: &[Rule], taken: Vec<Taken>) {
    for step in taken {
        match step {
            Taken::Script(group) => {
                let subset: Vec<&Rule> = group.iter().map(|&i| &rules[i]).collect();
                let _ = redis.refund(&subset).await;
            }
            Taken::Lease(i) => leases.give_back(&rules[i].key),
        }
    }
}

/// Budget of endpoint windows this instance leased from Redis and has not spent.
#[derive(Default)]
pub struct Leases(Mutex<HashMap<CounterKey, Lease>>);

#[derive(Clone, Copy)]
struct Lease {
    /// Requests this instance may still admit.
    left: u64,
    /// The route's total leased by all instances, as of this instance's last lease.
    total: u64,
    /// End of the window (Unix s): the lease is forgotten after it.
    end: u64,
    /// Redis had nothing left to lease: the window is spent everywhere.
    exhausted: bool,
}

/// Requests leased at once for a limit shared by `instances`: a tenth of each one's share, at
/// least 1 and at most 1000. An instance holds at most this much unspent.
pub fn chunk(limit: u64, instances: u64) -> u64 {
    (limit / (10 * instances.max(1))).clamp(1, 1000)
}

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CounterKey, Lease>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take one request of `rule`'s window from the lease, leasing a chunk when it is empty.
    async fn spend(
        &self,
        redis: &Shared,
        rule: &Rule,
        consume: bool,
        now: u64,
    ) -> Option<Decision> {
        let Shape::Window { start, secs } = rule.shape else {
            return redis
                .run_script(std::slice::from_ref(rule), consume, now)
                .await;
        };
        let end = start + secs;
        if let Some(decision) = self.take(rule, consume, now) {
            return Some(decision);
        }
        if !consume || self.exhausted(&rule.key) {
            // A look leases nothing; an exhausted window stays so (leases are never returned).
            return Some(self.without_budget(rule, consume, now));
        }
        let (granted, total) = redis
            .lease(
                &rule.key,
                chunk(rule.limit, redis.instances()),
                rule.limit,
                end + 60,
            )
            .await?;
        {
            let mut leases = self.lock();
            leases.retain(|_, l| l.end > now / 1000);
            let lease = leases.entry(rule.key.clone()).or_insert(Lease {
                left: 0,
                total: 0,
                end,
                exhausted: false,
            });
            lease.left += granted;
            lease.total = lease.total.max(total);
            lease.exhausted = granted == 0;
        }
        Some(
            self.take(rule, consume, now)
                .unwrap_or_else(|| self.without_budget(rule, consume, now)),
        )
    }

    fn exhausted(&self, key: &CounterKey) -> bool {
        self.lock().get(key).is_some_and(|l| l.exhausted)
    }

    /// The answer when this instance has no budget for `rule`: a request is refused; a look
    /// is refused only when the window is spent everywhere.
    fn without_budget(&self, rule: &Rule, consume: bool, now: u64) -> Decision {
        let (known, exhausted) = self
            .lock()
            .get(&rule.key)
            .map_or((0, false), |l| (l.total, l.exhausted));
        Decision {
            rejected: (consume || exhausted).then_some(rule.kind),
            standings: smallvec::smallvec![rule.look(known as f64, now, 1)],
            shared: true,
        }
    }

    /// Spend from an existing lease; `None` when it has nothing left (or a look finds none).
    fn take(&self, rule: &Rule, consume: bool, now: u64) -> Option<Decision> {
        let mut leases = self.lock();
        let lease = leases.get_mut(&rule.key).filter(|l| l.left > 0)?;
        // Counted so far, as far as this instance knows: all leased, less what it holds.
        let current = lease.total.saturating_sub(lease.left) as f64;
        if consume {
            lease.left -= 1;
        }
        let standing = if consume {
            rule.judge(current, now, 1).1
        } else {
            rule.look(current, now, 1)
        };
        Some(Decision {
            rejected: None,
            standings: smallvec::smallvec![standing],
            shared: true,
        })
    }

    fn give_back(&self, key: &CounterKey) {
        if let Some(lease) = self.lock().get_mut(key) {
            lease.left += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chunk;

    #[test]
    fn chunks_are_a_tenth_of_a_share() {
        assert_eq!(chunk(100, 2), 5);
        assert_eq!(chunk(5, 2), 1);
        assert_eq!(chunk(10_000_000, 1), 1000);
    }
}
