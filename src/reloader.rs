//! Configuration reload, on SIGHUP and when the file changes.
//!
//! The file is loaded and validated like at start. If anything is wrong (bad YAML, a value out of
//! range, a backend that does not resolve, an unreadable certificate), the running
//! configuration stays in effect and the log says why. Otherwise the reloadable settings apply
//! at once (see `config::live`), and settings that need a restart are named in the log.
//!
//! A change of the file is acted on once two checks a second apart read the same bytes, so a
//! file still being written is not half applied. SIGHUP reloads at once. The work (file reads,
//! name resolution of backends) runs off the async threads.

use crate::config::live::{self, Effect};
use crate::config::{load_str, validate, Config};
use crate::state::AppState;
use crate::{logging, tls};
use pingora::server::ShutdownWatch;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};

const POLL: Duration = Duration::from_secs(1);

pub struct Reloader {
    /// `None` in dev mode, whose configuration is generated.
    path: Option<PathBuf>,
    /// The file's bytes when last loaded, to notice a change.
    seen: Option<Vec<u8>>,
    /// New bytes seen by the last check, applied if the next check reads them again.
    pending: Option<Vec<u8>>,
}

/// Listen for SIGHUP. Done before the process reports ready: a SIGHUP without a handler would
/// end the process.
pub fn hangups() -> Option<Signal> {
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            log::error!(
                "{}",
                json!({"event": "sighup_unavailable", "error": e.to_string()})
            );
            None
        }
    }
}

impl Reloader {
    pub fn new(path: Option<PathBuf>) -> Reloader {
        let seen = path.as_ref().and_then(|p| std::fs::read(p).ok());
        Reloader {
            path,
            seen,
            pending: None,
        }
    }

    /// Reload on every SIGHUP and settled file change until shutdown.
    pub async fn run(
        mut self,
        state: Arc<AppState>,
        hup: Option<Signal>,
        mut shutdown: ShutdownWatch,
    ) {
        let mut hup = hup;
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(()) = async { hup.as_mut()?.recv().await } => {
                    self.reload(&state, "sighup").await;
                }
                _ = poll.tick() => {
                    if self.settled_change().await {
                        self.reload(&state, "file_change").await;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Whether the file differs from what was loaded and has stayed the same for one check.
    async fn settled_change(&mut self) -> bool {
        let Some(path) = self.path.clone() else {
            return false;
        };
        // An unreadable file is reported by the reload it triggers.
        let now = tokio::fs::read(path).await.ok();
        if now == self.seen {
            self.pending = None;
            return false;
        }
        let settled = self.pending == now;
        self.pending = now;
        settled
    }

    async fn reload(&mut self, state: &Arc<AppState>, trigger: &str) {
        self.pending = None;
        let Some(path) = self.path.clone() else {
            log::warn!(
                "{}",
                json!({"event": "config_reload_failed", "trigger": trigger,
                    "error": "dev mode has no configuration file to reload"})
            );
            return;
        };
        let work = {
            let (path, state) = (path.clone(), Arc::clone(state));
            tokio::task::spawn_blocking(move || {
                let bytes = std::fs::read(&path);
                let outcome = match &bytes {
                    Ok(bytes) => String::from_utf8(bytes.clone())
                        .map_err(|_| "the file is not UTF-8".to_string())
                        .and_then(|text| {
                            load_str(&text, std::env::vars()).map_err(|e| e.to_string())
                        })
                        .and_then(|file| apply(&state, &file)),
                    Err(e) => Err(format!("cannot read {}: {e}", path.display())),
                };
                (bytes.ok(), outcome)
            })
        };
        let (bytes, outcome) = match work.await {
            Ok(done) => done,
            Err(e) => (None, Err(format!("reload task failed: {e}"))),
        };
        if bytes.is_some() {
            self.seen = bytes;
        }
        let file = path.display().to_string();
        match outcome {
            Ok(plan) => {
                // Written at the level in effect before the reload, then the new one applies.
                log::info!(
                    "{}",
                    json!({"event": "config_reloaded", "trigger": trigger, "file": file,
                        "applied": plan.applied, "restart_required": plan.restart_required})
                );
                if !plan.restart_required.is_empty() {
                    log::warn!(
                        "{}",
                        json!({"event": "config_restart_required",
                            "settings": plan.restart_required,
                            "message": "these settings keep their running value until the gateway restarts"})
                    );
                }
                if plan.changes(Effect::LogLevel) {
                    logging::set_level(*plan.config.observability.log_level);
                }
            }
            Err(error) => log::error!(
                "{}",
                json!({"event": "config_reload_failed", "trigger": trigger, "file": file,
                    "error": error, "message": "the running configuration stays in effect"})
            ),
        }
    }
}

/// Put the reloadable settings of `file` in effect; nothing changes unless all of them can.
/// Blocking: reads certificate files and resolves backend names.
fn apply(state: &AppState, file: &Config) -> Result<live::Plan, String> {
    let plan = live::plan(&state.config(), file, state.tls.is_some());
    let next = &plan.config;
    // The file was valid on its own; the running settings it is merged with must agree too.
    validate(next).map_err(|e| e.to_string())?;
    // Re-read even when the paths are unchanged: renewing a certificate rewrites the files.
    let certificate = match (&state.tls, &*next.tls.cert, &*next.tls.key) {
        (Some(_), Some(cert), Some(key)) => Some(tls::read(cert, key)?),
        _ => None,
    };
    if plan.changes(Effect::Pool) {
        state.pool.reload(next)?;
    }
    if let (Some(certs), Some(certificate)) = (&state.tls, certificate) {
        certs.install(certificate);
    }
    state.set_config(plan.config.clone());
    Ok(plan)
}
