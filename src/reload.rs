//! Configuration reload, on SIGHUP and when the file changes (checked every second).
//!
//! The file is loaded and validated like at start. If anything is wrong (bad YAML, a value out of
//! range, a backend that does not resolve, an unreadable certificate), the running
//! configuration stays in effect and the log says why. Otherwise the reloadable settings apply
//! at once (see `config::reload`), and settings that need a restart are named in the log.

use crate::config::{load_str, reload, Config};
use crate::state::AppState;
use crate::{logging, tls};
use pingora::server::ShutdownWatch;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};

const POLL: Duration = Duration::from_secs(1);

pub struct Reloader {
    /// `None` in dev mode, whose configuration is generated.
    path: Option<PathBuf>,
    /// The file's bytes when last read, to notice a change.
    seen: Option<Vec<u8>>,
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
        Reloader { path, seen }
    }

    /// Reload on every SIGHUP and file change until shutdown.
    pub async fn run(mut self, state: &AppState, hup: Option<Signal>, mut shutdown: ShutdownWatch) {
        let mut hup = hup;
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(()) = async { hup.as_mut()?.recv().await } => self.reload(state, "sighup"),
                _ = poll.tick() => {
                    if self.changed() {
                        self.reload(state, "file_change");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    fn changed(&self) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        // An unreadable file is reported by the reload it triggers.
        std::fs::read(path).ok().as_ref() != self.seen.as_ref()
    }

    fn reload(&mut self, state: &AppState, trigger: &str) {
        let Some(path) = &self.path else {
            log::warn!(
                "{}",
                json!({"event": "config_reload_failed", "trigger": trigger,
                    "error": "dev mode has no configuration file to reload"})
            );
            return;
        };
        let outcome = std::fs::read(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|bytes| {
                self.seen = Some(bytes.clone());
                let text = String::from_utf8(bytes).map_err(|_| "the file is not UTF-8")?;
                load_str(&text, std::env::vars()).map_err(|e| e.to_string())
            })
            .and_then(|file| apply(state, &file));
        match outcome {
            Ok(plan) => {
                // Written at the level in effect before the reload, then the new one applies.
                log::info!(
                    "{}",
                    json!({"event": "config_reloaded", "trigger": trigger,
                        "file": path.display().to_string(), "applied": plan.applied,
                        "restart_required": plan.restart_required})
                );
                if !plan.restart_required.is_empty() {
                    log::warn!(
                        "{}",
                        json!({"event": "config_restart_required",
                            "settings": plan.restart_required,
                            "message": "these settings keep their running value until the gateway restarts"})
                    );
                }
                logging::set_level(&plan.config.observability.log_level);
            }
            Err(error) => log::error!(
                "{}",
                json!({"event": "config_reload_failed", "trigger": trigger,
                    "file": path.display().to_string(), "error": error,
                    "message": "the running configuration stays in effect"})
            ),
        }
    }
}

/// Put the reloadable settings of `file` in effect; nothing changes unless all of them can.
fn apply(state: &AppState, file: &Config) -> Result<reload::Plan, String> {
    let plan = reload::plan(&state.config(), file);
    let next = &plan.config;
    // Re-read even when the paths are unchanged: renewing a certificate rewrites the files.
    let certificate = match (&state.tls, &next.tls.cert, &next.tls.key) {
        (Some(_), Some(cert), Some(key)) => Some(tls::read(cert, key)?),
        _ => None,
    };
    if plan.changes("backends") || plan.changes("health_check") {
        state.pool.reload(next)?;
    }
    if let (Some(certs), Some(certificate)) = (&state.tls, certificate) {
        certs.install(certificate);
    }
    state.set_config(plan.config.clone());
    Ok(plan)
}
