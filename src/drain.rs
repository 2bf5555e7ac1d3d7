//! Draining before the process goes away. Pingora drops connections that sit idle in
//! keep-alive when it closes its listeners, so a client would lose the request it sends on such
//! a connection a moment later. Once Pingora starts handing the listeners to a new process
//! (SIGQUIT) or stops (SIGTERM), every answer carries `Connection: close`: each client's next
//! request ends its connection and the one after opens a new one, which the new process takes.

use pingora::server::ExecutionPhase;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::broadcast;

#[derive(Default)]
pub struct Drain(AtomicBool);

impl Drain {
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Start draining; true the first time.
    pub fn start(&self) -> bool {
        !self.0.swap(true, Ordering::Relaxed)
    }

    /// Follow Pingora's life cycle and start draining when it begins to hand over or stop.
    pub async fn follow(&self, mut phases: broadcast::Receiver<ExecutionPhase>) {
        loop {
            let reason = match phases.recv().await {
                Ok(ExecutionPhase::GracefulUpgradeTransferringFds) => "upgrade",
                Ok(ExecutionPhase::GracefulTerminate) => "terminate",
                Ok(ExecutionPhase::ShutdownStarted) => "shutdown",
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if self.start() {
                log::info!(
                    "{}",
                    serde_json::json!({"event": "draining", "reason": reason})
                );
            }
        }
    }
}
