//! Smooth weighted round robin (nginx's algorithm) as a pingora-load-balancing selection.
//!
//! The smooth sequence for the whole weight cycle is computed once when the backend set
//! changes; selecting is one atomic increment and an index, so the hot path takes no lock.
//! A 70/30 pool yields `A A B A A B A B A B`-like interleaving instead of 70 `A`s in a row.

use pingora::lb::selection::{BackendIter, BackendSelection};
use pingora::lb::Backend;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct SmoothWeighted {
    backends: Box<[Backend]>,
    /// One full cycle of indexes into `backends`, in smooth order.
    sequence: Box<[u16]>,
    cursor: AtomicUsize,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// nginx's smooth weighted round robin over `weights`, for one cycle of `sum(weights)/gcd` picks.
pub fn smooth_sequence(weights: &[usize]) -> Vec<u16> {
    let divisor = weights
        .iter()
        .copied()
        .filter(|w| *w > 0)
        .fold(0, gcd)
        .max(1);
    let weights: Vec<i64> = weights.iter().map(|w| (*w / divisor) as i64).collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut sequence = Vec::with_capacity(total.max(0) as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += w;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        sequence.push(best as u16);
    }
    sequence
}

impl BackendSelection for SmoothWeighted {
    type Iter = SmoothIter;
    type Config = ();

    fn build(backends: &BTreeSet<Backend>) -> Self {
        let backends: Box<[Backend]> = backends.iter().cloned().collect();
        let weights: Vec<usize> = backends.iter().map(|b| b.weight).collect();
        SmoothWeighted {
            sequence: smooth_sequence(&weights).into_boxed_slice(),
            backends,
            cursor: AtomicUsize::new(0),
        }
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> Self::Iter {
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        SmoothIter {
            selection: Arc::clone(self),
            position: start,
            steps: 0,
        }
    }
}

/// Walks the smooth sequence from this request's slot; when the first pick is refused
/// (unhealthy or already tried) the next slots offer the other backends in weighted order.
pub struct SmoothIter {
    selection: Arc<SmoothWeighted>,
    position: usize,
    steps: usize,
}

impl BackendIter for SmoothIter {
    fn next(&mut self) -> Option<&Backend> {
        let sequence = &self.selection.sequence;
        if sequence.is_empty() || self.steps >= sequence.len() {
            return None;
        }
        let index = sequence[self.position % sequence.len()] as usize;
        self.position = self.position.wrapping_add(1);
        self.steps += 1;
        self.selection.backends.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn longest_run(picks: &[u16]) -> usize {
        picks
            .chunk_by(|a, b| a == b)
            .map(<[u16]>::len)
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn smooth_sequence_interleaves_by_weight() {
        let seq = smooth_sequence(&[70, 30]);
        assert_eq!(seq.len(), 10);
        assert_eq!(seq.iter().filter(|i| **i == 0).count(), 7);
        assert!(longest_run(&seq.repeat(3)) <= 3, "{seq:?}");
        assert_eq!(smooth_sequence(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn selection_follows_the_weights_over_many_picks() {
        let set: BTreeSet<Backend> = [
            Backend::new_with_weight("127.0.0.1:1", 70).unwrap(),
            Backend::new_with_weight("127.0.0.1:2", 30).unwrap(),
        ]
        .into_iter()
        .collect();
        let selection = Arc::new(SmoothWeighted::build(&set));
        let picks: Vec<u16> = (0..1000)
            .map(|_| {
                let mut iter = selection.iter(b"");
                iter.next().unwrap().addr.as_inet().unwrap().port() - 1
            })
            .collect();
        assert_eq!(picks.iter().filter(|p| **p == 0).count(), 700);
        assert!(longest_run(&picks) <= 3);
    }

    #[test]
    fn iterator_offers_every_backend_once_per_cycle() {
        let set: BTreeSet<Backend> = (1..=3)
            .map(|p| Backend::new_with_weight(&format!("127.0.0.1:{p}"), p as usize).unwrap())
            .collect();
        let selection = Arc::new(SmoothWeighted::build(&set));
        let mut iter = selection.iter(b"");
        let mut seen = BTreeSet::new();
        while let Some(b) = iter.next() {
            seen.insert(b.addr.clone());
        }
        assert_eq!(seen.len(), 3);
    }
}
