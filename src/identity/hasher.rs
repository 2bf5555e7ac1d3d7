//! bcrypt, off the proxy's worker threads and with bounded concurrency: a flood of keys that
//! need verifying queues here instead of taking every core from valid traffic.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashError {
    /// No bcrypt slot freed up in time.
    Busy,
    Failed,
}

impl From<HashError> for crate::error::GatewayError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => crate::error::GatewayError::AuthBusy,
            HashError::Failed => crate::error::GatewayError::Internal("bcrypt failed".into()),
        }
    }
}

pub struct Hasher {
    slots: Arc<Semaphore>,
    cost: u32,
    wait: Duration,
}

impl Hasher {
    pub fn new(cost: u32, concurrency: usize, wait: Duration) -> Hasher {
        Hasher {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            cost,
            wait,
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Failed)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|_| HashError::Failed)
    }

    pub async fn hash(&self, secret: &str) -> Result<String, HashError> {
        let (secret, cost) = (secret.to_string(), self.cost);
        self.run(move || bcrypt::hash(secret, cost))
            .await?
            .map_err(|_| HashError::Failed)
    }

    /// Whether `secret` matches `hash`; a malformed stored hash matches nothing.
    pub async fn verify(&self, secret: &str, hash: Arc<str>) -> Result<bool, HashError> {
        let secret = secret.to_string();
        self.run(move || bcrypt::verify(secret, &hash).unwrap_or(false))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_a_full_queue_is_busy() {
        let hasher = Hasher::new(4, 1, Duration::from_millis(50));
        let hash: Arc<str> = hasher.hash("s3cret").await.unwrap().into();
        assert!(hash.starts_with("$2b$04$"));
        assert!(hasher.verify("s3cret", hash.clone()).await.unwrap());
        assert!(!hasher.verify("s3cre", hash.clone()).await.unwrap());
        assert!(!hasher.verify("x", "not a hash".into()).await.unwrap());

        let slow = Hasher::new(12, 1, Duration::from_millis(20));
        let held = slow.slots.clone().acquire_owned().await.unwrap();
        assert_eq!(slow.verify("s3cret", hash).await, Err(HashError::Busy));
        drop(held);
    }
}
