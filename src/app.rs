//! `build(config) -> Server`: one Pingora server with the state service, the health-check
//! service, the public proxy and the admin app. Shared by `main` and the dev mode.

use crate::admin::AdminApp;
use crate::config::Config;
use crate::identity::Change;
use crate::listen::{Listener, Listeners};
use crate::proxy::Gateway;
use crate::reloader::{self, Reloader};
use crate::state::AppState;
use crate::{db, tls};
use async_trait::async_trait;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{ExecutionPhase, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use pingora::services::ServiceReadyNotifier;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Opens the database pool on its own long-lived runtime and keeps it until shutdown.
struct StateService {
    state: Arc<AppState>,
    /// Pingora's life cycle, followed to start draining (taken once, at start).
    phases: std::sync::Mutex<Option<broadcast::Receiver<ExecutionPhase>>>,
    /// Watches the configuration file (taken once, at start).
    reloader: std::sync::Mutex<Option<Reloader>>,
}

#[async_trait]
impl BackgroundService for StateService {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        // Before anything else: a SIGHUP without a handler would end the process.
        let hangups = reloader::hangups();
        if !connect(&self.state, &mut shutdown).await {
            return;
        }
        ready.notify_ready();
        let state = Arc::clone(&self.state);
        tokio::spawn(async move {
            let tls = state.tls.is_some();
            crate::listen::announce(&state.listeners, tls).await;
        });
        write_pid(&self.state.config().server.pid_file);
        self.run(hangups, shutdown).await;
        finish(&self.state).await;
    }
}

/// Open the database (retrying until it answers or the process stops) and connect to Redis.
/// False when the process stopped first.
async fn connect(state: &AppState, shutdown: &mut ShutdownWatch) -> bool {
    let mut delay = Duration::from_millis(200);
    loop {
        match db::connect(&state.config().database).await {
            Ok(db) => {
                state.store.install(db);
                state.store.ping().await;
                break;
            }
            Err(e) => {
                log::error!(
                    "{}",
                    serde_json::json!({"event": "database_unavailable", "error": e.to_string(), "retry_in_ms": delay.as_millis() as u64})
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return false,
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    for connected in [state.limits.connect(), state.bus.connect_publisher()] {
        if let Err(e) = connected {
            log::error!(
                "{}",
                serde_json::json!({"event": "redis_unavailable", "error": e})
            );
        }
    }
    true
}

impl StateService {
    /// Everything that runs beside the requests, until shutdown: draining, the quota webhook,
    /// configuration reload, identity invalidations from other instances, and the flushers.
    async fn run(&self, hangups: Option<tokio::signal::unix::Signal>, shutdown: ShutdownWatch) {
        let state = &self.state;
        if let Some(phases) = self.phases.lock().ok().and_then(|mut p| p.take()) {
            let state = Arc::clone(state);
            tokio::spawn(async move { state.drain.follow(phases).await });
        }
        let webhook = state.webhook.lock().ok().and_then(|mut w| w.take());
        if let Some(sender) = webhook {
            tokio::spawn(sender.run());
        }
        let reloader = self.reloader.lock().ok().and_then(|mut r| r.take());
        let reload_shutdown = shutdown.clone();
        let reload_state = Arc::clone(state);
        tokio::join!(
            async move {
                if let Some(reloader) = reloader {
                    reloader.run(reload_state, hangups, reload_shutdown).await;
                }
            },
            state.bus.subscribe(
                |change| {
                    state.auth.invalidate(change);
                    if let Change::QuotaReset(user) = change {
                        state.limits.forget(user);
                    }
                },
                stopped(shutdown.clone()),
            ),
            flush_last_used(state, shutdown.clone()),
            watch_database(state, shutdown.clone()),
            flush_usage(state, shutdown),
        );
    }
}

/// After shutdown: wait for requests in flight, write what was counted, close the database.
async fn finish(state: &AppState) {
    settle(state).await;
    flush_once(state).await;
    if let Err(e) = state.limits.flush(&state.store).await {
        log::error!(
            "{}",
            serde_json::json!({"event": "usage_flush_failed", "error": e.to_string(), "at": "shutdown"})
        );
    }
    if let Ok(db) = state.store.db() {
        let _ = db.clone().close().await;
    }
}

/// Name this process in `server.pid_file` once it serves (after an upgrade the file names the
/// new process, for the next upgrade and for SIGHUP).
fn write_pid(path: &str) {
    if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
        log::warn!(
            "{}",
            serde_json::json!({"event": "pid_file_unwritable", "path": path, "error": e.to_string()})
        );
    }
}

/// After the shutdown broadcast, requests already admitted still run; wait for them so the final
/// usage flush counts them too. Pingora shuts the runtimes down `grace_period` after the
/// broadcast, which drops every task still running (requests and this service alike), so the
/// wait ends at three quarters of it and leaves the rest to the flush.
async fn settle(state: &AppState) {
    let deadline = Instant::now() + state.config().server.grace_period.get() * 3 / 4;
    while state.metrics.active_connections.get() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Active health checks of whatever backends the pool has now.
struct HealthChecks {
    state: Arc<AppState>,
}

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.state.pool.run_checks(shutdown).await;
    }
}

async fn stopped(mut shutdown: ShutdownWatch) {
    let _ = shutdown.changed().await;
}

/// Ping the database each second for health and readiness, so no request has to.
async fn watch_database(state: &AppState, mut shutdown: ShutdownWatch) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                state.store.ping().await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Write `last_used_at` of keys seen in use, one statement per interval, until shutdown.
async fn flush_last_used(state: &AppState, mut shutdown: ShutdownWatch) {
    let mut every = tokio::time::interval(state.config().auth.last_used_flush.get());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => flush_once(state).await,
            _ = shutdown.changed() => return,
        }
    }
}

/// Write counted quota usage every `quotas.flush_interval`; forget ended windows each minute.
async fn flush_usage(state: &AppState, mut shutdown: ShutdownWatch) {
    let mut every = tokio::time::interval(state.config().quotas.flush_interval.get());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweep = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = state.limits.flush(&state.store).await {
                    log::warn!("{}", serde_json::json!({"event": "usage_flush_failed", "error": e.to_string()}));
                }
            }
            _ = sweep.tick() => state.limits.sweep(),
            _ = shutdown.changed() => return,
        }
    }
}

async fn flush_once(state: &AppState) {
    let used = state.auth.take_used();
    if let Err(e) = db::keys::touch(&state.store, used, chrono::Utc::now()).await {
        log::warn!(
            "{}",
            serde_json::json!({"event": "last_used_flush_failed", "error": e.to_string()})
        );
    }
}

fn server_conf(config: &Config) -> ServerConf {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    ServerConf {
        threads: match *config.server.threads {
            0 => cores,
            n => n,
        },
        work_stealing: false,
        // Pingora's I/O timeouts (the keep-alive wait, the read and write timeouts, each
        // backend leg's and each idle pooled connection's) on the timer of the runtime that
        // waits, not on Pingora's "fast" timers: those keep each thread's deadlines in a map
        // behind a lock, served by a clock thread that wakes every 10 ms, and every wait that
        // pends (about three per proxied request) locks the map, clones two `Arc`s and parks
        // on a `Notify`. Without work stealing each proxy thread is a runtime of its own, whose
        // tokio timer only that thread touches. (Pingora compares whole seconds: a timeout
        // under one second keeps its fast timer.)
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        upstream_keepalive_pool_size: *config.upstream.keepalive_pool_size,
        grace_period_seconds: Some(config.server.grace_period.get().as_secs()),
        graceful_shutdown_timeout_seconds: Some(
            config.server.graceful_shutdown_timeout.get().as_secs(),
        ),
        pid_file: config.server.pid_file.clone(),
        upgrade_sock: config.server.upgrade_sock.clone(),
        daemon: false,
        ..ServerConf::default()
    }
}

/// Everything `run` needs: the Pingora server and the shared state.
pub struct Built {
    pub server: Server,
    pub state: Arc<AppState>,
}

/// Apply pending migrations and turn the legacy key into a user, on a short-lived runtime,
/// before any service starts. Whether the configured legacy key still works (a rotation may
/// have retired it).
pub fn migrate(config: &Config) -> Result<bool, String> {
    crate::oneshot::block_on(async {
        let store = db::open_migrated(&config.database).await?;
        let auth = crate::state::authenticator(config);
        let legacy =
            crate::identity::bootstrap::legacy_user(&store, auth.hasher(), &config.legacy).await;
        let live = crate::identity::bootstrap::legacy_key_live(&store, &config.legacy).await;
        store.close().await;
        legacy.map_err(|e| format!("legacy key: {e}"))?;
        Ok(live)
    })?
}

/// Build the server for `config`, read from `config_path` (watched for reloads; `None` in dev
/// mode). `upgrade` takes the listeners over from a running old process (Pingora's `-u`).
pub fn build(
    config: Config,
    config_path: Option<std::path::PathBuf>,
    upgrade: bool,
) -> Result<Built, String> {
    let listeners = Listeners {
        public: Listener::new("server.port", config.server.public_addr())?,
        admin: Listener::new("admin.listen", config.admin.listen.0)?,
    };
    let (public_addr, admin_addr) = (listeners.public.text(), listeners.admin.text());
    let (public_options, admin_options) = (
        listeners.public.socket_options(),
        listeners.admin.socket_options(),
    );
    let admin_tls = config.tls.admin;
    let state = Arc::new(AppState::build(config, listeners)?);
    let opt = Opt {
        upgrade,
        daemon: false,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&state.config()));
    server.bootstrap();

    let state_service = background_service(
        "state",
        StateService {
            state: Arc::clone(&state),
            phases: std::sync::Mutex::new(Some(server.watch_execution_phase())),
            reloader: std::sync::Mutex::new(Some(Reloader::new(config_path))),
        },
    );
    let state_handle = server.add_service(state_service);

    server.add_service(background_service(
        "health checks",
        HealthChecks {
            state: Arc::clone(&state),
        },
    ));

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(Arc::clone(&state)),
        "proxy",
    );
    match &state.tls {
        Some(certs) => tls::listen(&mut proxy, &public_addr, public_options, certs),
        None => add_tcp(&mut proxy, &public_addr, public_options),
    }
    let proxy_handle = server.add_service(proxy);
    proxy_handle.add_dependency(&state_handle);

    let mut admin = Service::new("admin".into(), AdminApp::new(Arc::clone(&state)));
    match &state.tls {
        Some(certs) if admin_tls => tls::listen(&mut admin, &admin_addr, admin_options, certs),
        _ => add_tcp(&mut admin, &admin_addr, admin_options),
    }
    let admin_handle = server.add_service(admin);
    admin_handle.add_dependency(&state_handle);

    Ok(Built { server, state })
}

/// A plain TCP endpoint on `addr`, with the socket options a reserved port needs.
fn add_tcp<A>(
    service: &mut pingora::services::listening::Service<A>,
    addr: &str,
    options: Option<pingora::listeners::TcpSocketOptions>,
) {
    let mut endpoint =
        pingora::listeners::ListenerConfig::tcp(addr).l4_buffer(crate::listen::client_buffers());
    if let Some(options) = options {
        endpoint = endpoint.tcp_socket_options(options);
    }
    service.add_listener(endpoint);
}
