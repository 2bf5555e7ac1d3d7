//! Series handles cached per thread. A prometheus vector keeps its series in a map behind a
//! lock that every `with_label_values` takes; on the request path the gateway asks this
//! thread's cache instead, so recording a request touches no shared lock and allocates nothing
//! once the thread has met the series. Pingora runs one runtime per thread without work
//! stealing, so each thread meets each series once.

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};
use rustc_hash::FxHasher;
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};

/// A series and the label values it was found by (compared on every hit: a hash alone could
/// collide and count into the wrong series).
struct Entry {
    labels: Box<[Box<str>]>,
    series: Box<dyn Any>,
}

type Table = HashMap<u64, Vec<Entry>, BuildHasherDefault<FxHasher>>;

thread_local! {
    static SERIES: RefCell<Table> = RefCell::default();
}

static NEXT_VEC: AtomicU64 = AtomicU64::new(1);

/// A labelled family: how to find one of its series.
pub trait Family {
    type Series: 'static;
    fn series(&self, labels: &[&str]) -> Self::Series;
}

impl Family for IntCounterVec {
    type Series = IntCounter;
    fn series(&self, labels: &[&str]) -> IntCounter {
        self.with_label_values(labels)
    }
}

impl Family for HistogramVec {
    type Series = Histogram;
    fn series(&self, labels: &[&str]) -> Histogram {
        self.with_label_values(labels)
    }
}

/// A labelled metric family whose series the hot path finds through the per-thread cache.
pub struct Cached<V> {
    vec: V,
    /// Tells this family from every other one (of every `Metrics`) in the cache.
    id: u64,
}

impl<V: Family> Cached<V> {
    pub fn new(vec: V) -> Cached<V> {
        Cached {
            vec,
            id: NEXT_VEC.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Run `f` on the series with these label values (in the family's label order).
    pub fn with(&self, labels: &[&str], f: impl FnOnce(&V::Series)) {
        let mut hasher = FxHasher::default();
        self.id.hash(&mut hasher);
        labels.hash(&mut hasher);
        let key = hasher.finish();
        SERIES.with(|table| {
            let mut table = table.borrow_mut();
            let bucket = table.entry(key).or_default();
            let found = bucket.iter().find(|e| {
                e.labels.len() == labels.len()
                    && e.labels.iter().zip(labels).all(|(a, b)| &**a == *b)
            });
            if let Some(series) = found.and_then(|e| e.series.downcast_ref::<V::Series>()) {
                return f(series);
            }
            let series = self.vec.series(labels);
            f(&series);
            bucket.push(Entry {
                labels: labels.iter().map(|l| Box::from(*l)).collect(),
                series: Box::new(series),
            });
        });
    }
}

impl<V> Deref for Cached<V> {
    type Target = V;
    fn deref(&self) -> &V {
        &self.vec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    fn family() -> Cached<IntCounterVec> {
        Cached::new(IntCounterVec::new(Opts::new("t", "t"), &["a", "b"]).unwrap())
    }

    #[test]
    fn counts_land_in_the_series_named_by_the_labels() {
        let (one, two) = (family(), family());
        for _ in 0..3 {
            one.with(&["x", "y"], |c| c.inc());
        }
        one.with(&["x", "z"], |c| c.inc());
        two.with(&["x", "y"], |c| c.inc());
        assert_eq!(one.with_label_values(&["x", "y"]).get(), 3);
        assert_eq!(one.with_label_values(&["x", "z"]).get(), 1);
        assert_eq!(two.with_label_values(&["x", "y"]).get(), 1);
        // Another thread finds the same series.
        std::thread::scope(|s| {
            s.spawn(|| one.with(&["x", "y"], |c| c.inc()));
        });
        assert_eq!(one.with_label_values(&["x", "y"]).get(), 4);
    }
}
