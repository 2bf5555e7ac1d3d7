//! Test harness: start the gateway binary, development backends and in-process stub backends
//! on ephemeral loopback ports; everything stops when dropped.
#![allow(dead_code)]

pub mod calls;
pub mod db;
pub mod load;
pub mod log_valve;
pub mod process;
pub mod raw;
pub mod servers;
pub mod stub;
pub mod uploads;

#[allow(unused_imports)] // each test binary uses some of them
pub use calls::*;
pub use db::TestDb;
pub use log_valve::LogValve;
pub use process::{free_port, wait_for_port, Proc};
#[allow(unused_imports)]
pub use uploads::*;

use serde_json::{json, Value};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

pub const KEY: &str = "a8e77f84e2729dc6728889d4be31b123";
/// The binary under test: cargo's build of this checkout, or with `IMGPROXY_GATEWAY_BIN` another
/// build of it, so that the suite can check the release build (README, "Build for production").
pub static BIN: LazyLock<String> = LazyLock::new(|| {
    std::env::var("IMGPROXY_GATEWAY_BIN")
        .ok()
        .filter(|path| !path.is_empty())
        .map(|path| {
            std::fs::canonicalize(&path)
                .unwrap_or_else(|e| panic!("IMGPROXY_GATEWAY_BIN={path}: {e}"))
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_imgproxy-gateway").to_string())
});
/// The address the test source names stand for (example.com's, never fetched: backends here
/// are stubs or dev backends serving loopback sources).
pub const PUBLIC_SOURCE: &str = "93.184.216.34";
/// A convert request the stub backends answer.
pub const CONVERT: &str = "/api/v1/convert?url=http://example.com/a.jpg";

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `imgproxy-gateway dev-backend` as a separate process.
pub struct DevBackend {
    pub port: u16,
    pub proc: Proc,
    args: Vec<String>,
}

impl DevBackend {
    pub async fn start(extra: &[&str]) -> DevBackend {
        let port = free_port();
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let proc = Self::spawn(port, &args);
        wait_for_port(port).await;
        DevBackend { port, proc, args }
    }

    fn spawn(port: u16, args: &[String]) -> Proc {
        Proc::spawn(
            Command::new(&*BIN)
                .args(["dev-backend", "--listen", &format!("127.0.0.1:{port}")])
                .args(args)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null()),
        )
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        self.proc.kill();
    }

    pub async fn restart(&mut self) {
        self.proc = Self::spawn(self.port, &self.args);
        wait_for_port(self.port).await;
    }
}

/// The gateway as a separate process with its own directory.
pub struct Gateway {
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    /// `storage.dir`.
    images: PathBuf,
    pub proc: Proc,
    tls: Option<Tls>,
}

/// How the test reaches a TLS listener: the certificate to trust, and whether admin uses TLS.
#[derive(Clone)]
pub struct Tls {
    pub root_pem: Vec<u8>,
    pub admin: bool,
}

pub struct GatewayBuilder {
    backends: Vec<(String, u32)>,
    yaml: String,
    database: Option<(&'static str, String)>,
    auth: String,
    server: String,
    admin: String,
    tls: Option<Tls>,
    storage_dir: Option<PathBuf>,
    database_lines: String,
    imgproxy: String,
    source_hosts: String,
    log_valve: Option<LogValve>,
}

impl GatewayBuilder {
    /// Lines of the `imgproxy:` section (unindented, one setting a line), e.g.
    /// `allow_loopback_sources: true`. The section always pins the test source names
    /// (`example.com`, `img.example.com`) to a public address, as no DNS answers here.
    pub fn imgproxy(mut self, lines: &str) -> Self {
        for line in lines.lines().filter(|l| !l.trim().is_empty()) {
            self.imgproxy.push_str("  ");
            self.imgproxy.push_str(line);
            self.imgproxy.push('\n');
        }
        self
    }

    /// Pin a source host name to addresses (`imgproxy.source_hosts`), e.g.
    /// `("rebind.test", "[93.184.216.34, 10.0.0.7]")`.
    pub fn source_host(mut self, name: &str, addresses: &str) -> Self {
        self.source_hosts
            .push_str(&format!("    {name}: {addresses}\n"));
        self
    }

    /// Extra lines of the `database:` section, e.g. `  timeout: 2s`.
    pub fn database_line(mut self, line: &str) -> Self {
        self.database_lines.push_str(line);
        self.database_lines.push('\n');
        self
    }

    /// Keep uploads in `dir` (e.g. a small tmpfs) instead of the gateway's own directory.
    pub fn storage_dir(mut self, dir: &Path) -> Self {
        self.storage_dir = Some(dir.to_path_buf());
        self
    }

    pub fn backend(mut self, url: impl Into<String>, weight: u32) -> Self {
        self.backends.push((url.into(), weight));
        self
    }

    /// Use this database (`driver`, `dsn`) instead of a fresh SQLite file in the gateway's
    /// directory.
    pub fn database(mut self, db: &TestDb) -> Self {
        self.database = Some((db.driver, db.dsn.clone()));
        self
    }

    /// Extra lines of the `server:` section, e.g. `  trusted_proxies: [127.0.0.1]`.
    pub fn server(mut self, lines: &str) -> Self {
        self.server.push_str(lines);
        self.server.push('\n');
        self
    }

    /// Extra lines of the `admin:` section, e.g. `  metrics_token: x`.
    pub fn admin_line(mut self, line: &str) -> Self {
        self.admin.push_str(line);
        self.admin.push('\n');
        self
    }

    /// Lines of the `auth:` section (default: bcrypt cost 4, so tests do not wait on bcrypt).
    pub fn auth(mut self, lines: &str) -> Self {
        self.auth = lines.to_string();
        self
    }

    /// Extra top-level YAML sections (must not repeat `server`, `admin`, `backends`,
    /// `database`, `storage` or `auth`, which the builder writes).
    pub fn yaml(mut self, text: &str) -> Self {
        self.yaml.push_str(text);
        self.yaml.push('\n');
        self
    }

    /// The gateway's stderr goes through a pipe read while `valve` is open (a log reader that
    /// can fall behind), then to its log file as usual.
    pub fn log_valve(mut self, valve: &LogValve) -> Self {
        self.log_valve = Some(valve.clone());
        self
    }

    /// The listeners speak TLS (the `tls:` section comes through `yaml`): trust `root_pem`.
    pub fn tls(mut self, root_pem: &[u8], admin: bool) -> Self {
        self.tls = Some(Tls {
            root_pem: root_pem.to_vec(),
            admin,
        });
        self
    }

    pub async fn start(self) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let backends: String = self
            .backends
            .iter()
            .map(|(url, w)| format!("  - url: {url}\n    weight: {w}\n"))
            .collect();
        let images = self
            .storage_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("images"));
        let (driver, dsn) = self
            .database
            .unwrap_or(("sqlite", format!("sqlite://{d}/gateway.db?mode=rwc")));
        let config = format!(
            "server:\n  host: 127.0.0.1\n  port: 0\n  threads: 2\n  pid_file: {d}/gw.pid\n  upgrade_sock: {d}/upgrade.sock\n{}\
admin:\n  listen: 127.0.0.1:0\n{}\
database:\n  driver: {driver}\n  dsn: {dsn}\n{}\
storage:\n  dir: {}\n\
auth:\n{}\n\
imgproxy:\n  source_hosts:\n    example.com: [{PUBLIC_SOURCE}]\n    img.example.com: [{PUBLIC_SOURCE}]\n{}{}\
backends:\n{backends}{}",
            self.server,
            self.admin,
            self.database_lines,
            images.display(),
            self.auth,
            self.source_hosts,
            self.imgproxy,
            self.yaml
        );
        std::fs::write(dir.path().join("gateway.yaml"), config).unwrap();
        let proc = Gateway::spawn_logging(dir.path(), &[], self.log_valve.as_ref());
        // Port 0: the gateway says which ports it got.
        let (port, admin_port) = listening(dir.path()).await;
        let gateway = Gateway {
            port,
            admin_port,
            dir,
            images,
            proc,
            tls: self.tls,
        };
        gateway.wait_healthy().await;
        gateway
    }
}

/// The ports of the gateway in `dir`, from its `listening` event (it listens on port 0).
async fn listening(dir: &Path) -> (u16, u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = |line: &Value, key: &str| {
        let addr: std::net::SocketAddr = line[key].as_str().unwrap().parse().unwrap();
        addr.port()
    };
    loop {
        let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
        let event = log
            .lines()
            .filter(|l| l.contains("\"event\":\"listening\""))
            .find_map(|l| serde_json::from_str::<Value>(l).ok());
        if let Some(line) = event {
            return (port(&line, "public"), port(&line, "admin"));
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never said where it listens; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two image stubs, `a` and `b`.
pub async fn image_stubs() -> (stub::Stub, stub::Stub) {
    (
        stub::Stub::start("a", stub::Mode::Image).await,
        stub::Stub::start("b", stub::Mode::Image).await,
    )
}

impl Gateway {
    /// A builder with these backends, weight 1 each.
    pub fn over(backends: &[&stub::Stub]) -> GatewayBuilder {
        backends
            .iter()
            .fold(Self::builder(), |b, stub| b.backend(stub.url(), 1))
    }

    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            backends: Vec::new(),
            yaml: String::new(),
            database: None,
            auth: "  bcrypt_cost: 4".into(),
            server: String::new(),
            admin: String::new(),
            tls: None,
            storage_dir: None,
            database_lines: String::new(),
            imgproxy: String::new(),
            source_hosts: String::new(),
            log_valve: None,
        }
    }

    fn spawn(dir: &Path) -> Proc {
        Self::spawn_with(dir, &[])
    }

    /// The first step of an upgrade: a new process (`-u`) with this configuration, waiting on
    /// the upgrade socket for the running one's listeners. Returns once it waits there.
    pub async fn spawn_successor(&self) -> Proc {
        self.pin_ports();
        let socket = self.dir.path().join("upgrade.sock");
        let _ = std::fs::remove_file(&socket);
        let successor = Self::spawn_with(self.dir.path(), &["-u"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "successor never waited on {socket:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        successor
    }

    fn spawn_with(dir: &Path, extra: &[&str]) -> Proc {
        Self::spawn_logging(dir, extra, None)
    }

    /// Output to `gateway.log` in `dir`, stderr through `valve`'s pipe when given.
    fn spawn_logging(dir: &Path, extra: &[&str], valve: Option<&LogValve>) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("gateway.log"))
            .unwrap();
        let stderr: Stdio = match valve {
            Some(valve) => valve.pipe_into(log.try_clone().unwrap()).into(),
            None => log.try_clone().unwrap().into(),
        };
        Proc::spawn(
            Command::new(&*BIN)
                .args(["run", "--config"])
                .arg(dir.join("gateway.yaml"))
                .args(extra)
                .current_dir(dir)
                .stdout(log)
                .stderr(stderr),
        )
    }

    /// Stop (SIGKILL) and start again with the same configuration and ports.
    pub async fn restart(&mut self) {
        self.pin_ports();
        self.proc.kill();
        self.proc = Gateway::spawn(self.dir.path());
        self.wait_healthy().await;
    }

    /// Write the ports this gateway got into its configuration, so that a restart or an
    /// upgrade's successor listens where it did (an upgrade hands listeners over by address).
    fn pin_ports(&self) {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).unwrap();
        let pinned = text
            .replacen("\n  port: 0\n", &format!("\n  port: {}\n", self.port), 1)
            .replacen(
                "\n  listen: 127.0.0.1:0\n",
                &format!("\n  listen: 127.0.0.1:{}\n", self.admin_port),
                1,
            );
        if pinned != text {
            std::fs::write(path, pinned).unwrap();
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.yaml")
    }

    /// Both listeners answer (the admin service may bind a moment after the proxy).
    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.answers(self.url("/api/v1/health")).await
                && self.answers(self.admin_url("/api/v1/health")).await
            {
                return;
            }
            if Instant::now() > deadline {
                panic!("gateway did not start; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn answers(&self, url: String) -> bool {
        matches!(self.client().get(url).send().await, Ok(r) if r.status() == 200)
    }

    /// A client for this gateway (trusting its certificate when it speaks TLS).
    pub fn client(&self) -> reqwest::Client {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
        if let Some(tls) = &self.tls {
            builder = builder
                .use_rustls_tls()
                .add_root_certificate(reqwest::Certificate::from_pem(&tls.root_pem).unwrap());
        }
        builder.build().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        let tls = self.tls.as_ref().is_some_and(|t| t.admin);
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Rewrite the configuration file (a running gateway notices within a second).
    pub fn edit_config(&self, edit: impl FnOnce(&str) -> String) {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = edit(&text);
        assert_ne!(edited, text, "the edit changed nothing");
        std::fs::write(path, edited).unwrap();
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Wait (up to 10 s) until `needle` is in at least `count` log lines; the last such line.
    pub async fn wait_log(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
            if lines.len() >= count {
                return lines[lines.len() - 1].to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no {count}th `{needle}` in the log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    pub fn images_dir(&self) -> PathBuf {
        self.images.clone()
    }

    /// Stored originals (files directly under the storage directory).
    pub fn stored_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for sub in [self.images_dir(), self.images_dir().join(".partial")] {
            if let Ok(entries) = std::fs::read_dir(sub) {
                files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
            }
        }
        files
    }

    /// `GET /api/v1/backends` as JSON.
    pub async fn backends(&self) -> serde_json::Value {
        get_json(self.admin_url("/api/v1/backends"), Some(KEY)).await
    }
}

/// A gateway with two image stubs on a fresh database of `engine` (identity and access tests).
pub struct Env {
    pub gw: Gateway,
    pub _backends: (stub::Stub, stub::Stub),
    pub _db: TestDb,
}

pub async fn env(
    engine: db::Engine,
    configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
) -> Option<Env> {
    let db = TestDb::new(engine).await?;
    let a = stub::Stub::start("a", stub::Mode::Image).await;
    let b = stub::Stub::start("b", stub::Mode::Image).await;
    let builder = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .database(&db);
    let gw = configure(builder).start().await;
    Some(Env {
        gw,
        _backends: (a, b),
        _db: db,
    })
}

pub async fn convert_status(gw: &Gateway, key: &str) -> u16 {
    convert(gw, key).await.status().as_u16()
}

/// Each named `async fn(Engine)` as a `sqlite::` and a `postgres::` test.
#[allow(unused_macros)]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() { super::$name(crate::common::db::Engine::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() { super::$name(crate::common::db::Engine::Postgres).await })*
        }
    };
}

#[allow(unused_imports)]
pub(crate) use on_both_databases;
