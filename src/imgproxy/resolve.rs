//! The addresses a source host name stands for, as the gateway checks them before a job goes
//! to a backend: the operator's static answers (`imgproxy.source_hosts`) first, then a small
//! TTL cache, then the system resolver under a time bound. The resolver is a trait, so tests
//! give their own.

use crate::config::text::{Addresses, HostName};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How a name becomes addresses.
pub trait Resolver: Send + Sync {
    fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (getaddrinfo, on tokio's blocking pool).
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host, 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("the host `{0}` does not resolve")]
    NotFound(String),
    #[error("the host `{0}` did not resolve within {1:?}")]
    Timeout(String, Duration),
}

/// How long a resolved name is believed (names are re-checked at least this often, so a
/// rebinding name gains at most this window; imgproxy's own check closes it).
const TTL: Duration = Duration::from_secs(30);
const CAPACITY: u64 = 10_000;

pub struct SourceResolver {
    inner: Arc<dyn Resolver>,
    cache: moka::sync::Cache<String, Arc<[IpAddr]>>,
}

impl Default for SourceResolver {
    fn default() -> Self {
        SourceResolver::new(Arc::new(SystemResolver))
    }
}

impl SourceResolver {
    pub fn new(inner: Arc<dyn Resolver>) -> SourceResolver {
        SourceResolver {
            inner,
            cache: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
        }
    }

    /// Every address of `host`, never an empty list. Failures are not cached.
    pub async fn addresses<'a>(
        &self,
        host: &str,
        statics: &'a BTreeMap<HostName, Addresses>,
        timeout: Duration,
    ) -> Result<Resolved<'a>, ResolveError> {
        if let Some(fixed) = statics.get(host) {
            return Ok(Resolved::Fixed(fixed));
        }
        if let Some(hit) = self.cache.get(host) {
            return Ok(Resolved::Looked(hit));
        }
        // Boxed: a lookup's future is large and rare (the request's own stays small).
        let found = Box::pin(tokio::time::timeout(timeout, self.inner.lookup(host)))
            .await
            .map_err(|_| ResolveError::Timeout(host.to_string(), timeout))?
            .unwrap_or_default();
        if found.is_empty() {
            return Err(ResolveError::NotFound(host.to_string()));
        }
        let found: Arc<[IpAddr]> = found.into();
        self.cache.insert(host.to_string(), found.clone());
        Ok(Resolved::Looked(found))
    }
}

/// A host's addresses: the configured ones, read in place (no copy per request), or the ones
/// looked up, shared with the cache.
#[derive(Debug, PartialEq)]
pub enum Resolved<'a> {
    Fixed(&'a [IpAddr]),
    Looked(Arc<[IpAddr]>),
}

impl std::ops::Deref for Resolved<'_> {
    type Target = [IpAddr];
    fn deref(&self) -> &[IpAddr] {
        match self {
            Resolved::Fixed(fixed) => fixed,
            Resolved::Looked(looked) => looked,
        }
    }
}

#[cfg(test)]
pub mod fake {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers from a table, counting the questions; `slow` names never answer.
    #[derive(Default)]
    pub struct TableResolver {
        pub answers: BTreeMap<String, Vec<IpAddr>>,
        pub slow: Vec<String>,
        pub asked: AtomicUsize,
    }

    impl TableResolver {
        pub fn with(pairs: &[(&str, &str)]) -> TableResolver {
            let mut answers: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
            for (name, ip) in pairs {
                answers
                    .entry(name.to_string())
                    .or_default()
                    .push(ip.parse().unwrap());
            }
            TableResolver {
                answers,
                ..Default::default()
            }
        }
    }

    impl Resolver for TableResolver {
        fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if self.slow.iter().any(|s| s == host) {
                    std::future::pending::<()>().await;
                }
                self.answers
                    .get(host)
                    .cloned()
                    .ok_or_else(|| std::io::Error::other("NXDOMAIN"))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::TableResolver;
    use super::*;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn static_answers_cache_and_time_bound() {
        let mut table = TableResolver::with(&[("a.example", "93.184.216.34")]);
        table.slow.push("slow.example".into());
        let table = Arc::new(table);
        let resolver = SourceResolver::new(table.clone());
        let statics: BTreeMap<HostName, Addresses> =
            serde_yaml::from_str("pinned.example: [10.0.0.1]").unwrap();
        let t = Duration::from_millis(50);

        let first = resolver.addresses("a.example", &statics, t).await.unwrap();
        let again = resolver.addresses("a.example", &statics, t).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(
            table.asked.load(Ordering::SeqCst),
            1,
            "the second came from the cache"
        );

        let pinned = resolver
            .addresses("pinned.example", &statics, t)
            .await
            .unwrap();
        assert_eq!(&*pinned, &["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert!(
            matches!(pinned, Resolved::Fixed(_)),
            "the configured list, read in place"
        );
        assert_eq!(
            table.asked.load(Ordering::SeqCst),
            1,
            "static answers ask no resolver"
        );

        assert_eq!(
            resolver.addresses("none.example", &statics, t).await,
            Err(ResolveError::NotFound("none.example".into()))
        );
        assert_eq!(
            resolver.addresses("slow.example", &statics, t).await,
            Err(ResolveError::Timeout("slow.example".into(), t))
        );
    }
}
