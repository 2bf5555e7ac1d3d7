//! Upstream connections stay with the proxy thread that used them.
//!
//! Pingora keeps idle upstream connections in one pool for all threads. With
//! `work_stealing: false` every proxy thread is a runtime of its own, so a connection released
//! by a request on one thread could be taken by a request on another, which then wakes the
//! connection's idle watcher, waits until it lets go of the connection and is woken back, across
//! threads (eventfd writes); when the watcher has not let go in time, Pingora logs "failed to
//! acquire reusable stream" and drops the connection.
//!
//! A peer's `group_key` partitions the pool ("requests with different group keys cannot share
//! connections"), so giving each thread a key of its own keeps a connection's release and reuse
//! on one thread. The idle watcher itself is spawned by Pingora on a random thread's runtime
//! (`pingora_runtime::current_handle()`), so with two threads half of its wake-ups still cross
//! (`docs/performance.md`, upstream proposal 4). The cost: up to one set of idle connections per
//! thread instead of one for all (the pool's total size is unchanged).

use pingora::upstreams::peer::HttpPeer;
use std::sync::atomic::{AtomicU64, Ordering};

/// Keys handed out so far; 0 is Pingora's default (`HttpPeer::new`), never handed out.
static NEXT: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static PARTITION: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
}

/// This thread's partition of Pingora's upstream connection pool, for `HttpPeer::group_key`.
pub fn pool_partition() -> u64 {
    PARTITION.with(|key| *key)
}

/// `peer` for a request on this thread: a copy whose connections Pingora pools in this
/// thread's partition.
pub fn pooled_here(peer: &HttpPeer) -> Box<HttpPeer> {
    let mut here = Box::new(peer.clone());
    here.group_key = pool_partition();
    here
}

#[cfg(test)]
mod tests {
    use super::{pool_partition, pooled_here};
    use pingora::upstreams::peer::{HttpPeer, Peer};

    #[test]
    fn each_thread_has_a_partition_of_its_own_and_keeps_it() {
        let here = pool_partition();
        assert_ne!(here, 0, "0 is the key every peer has by default");
        assert_eq!(pool_partition(), here);
        let there = std::thread::spawn(pool_partition).join().unwrap();
        assert_ne!(there, 0);
        assert_ne!(there, here);
    }

    #[test]
    fn a_peer_is_pooled_apart_on_each_thread_and_together_on_one() {
        // Pingora's pool keys connections by `reuse_hash`.
        let peer = HttpPeer::new("127.0.0.1:8080", false, String::new());
        let here = pooled_here(&peer);
        assert_eq!(here.reuse_hash(), pooled_here(&peer).reuse_hash());
        assert_ne!(here.reuse_hash(), peer.reuse_hash(), "Pingora's one pool");
        let there = std::thread::spawn(move || pooled_here(&peer).reuse_hash())
            .join()
            .unwrap();
        assert_ne!(here.reuse_hash(), there);
        // Everything else about the peer is kept.
        assert_eq!(here.address(), &"127.0.0.1:8080".parse().unwrap());
    }
}
