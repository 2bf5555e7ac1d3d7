//! Servers a failure test may stop and start at will: a private PostgreSQL cluster (`initdb`
//! on an ephemeral port), a private Redis, and a small tmpfs that fills up. Under CI each must
//! work; elsewhere a test that cannot have one says so and skips.

use super::process::{free_port, wait_for_port, Proc};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Fail under CI, skip with a note elsewhere.
pub fn unavailable<T>(what: &str, why: impl std::fmt::Display) -> Option<T> {
    if under_ci() {
        panic!("{what} is required under CI: {why}");
    }
    eprintln!("SKIPPED: {what}: {why}; set CI=true to make this a failure");
    None
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Run `program args` as the `postgres` user (PostgreSQL refuses to run as root).
fn as_postgres(program: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command.args(args).stdin(Stdio::null()).output()
}

/// A PostgreSQL cluster of its own: trust authentication for `root`, database `postgres`.
pub struct PrivatePostgres {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl PrivatePostgres {
    pub fn start() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .flatten()
                    .map(|v| v.path().join("bin"))
                    .find(|b| b.join("initdb").exists())
            });
        let Some(bin) = bin else {
            return unavailable(
                "a private PostgreSQL",
                "no initdb under /usr/lib/postgresql",
            );
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
            if !status.is_ok_and(|s| s.success()) {
                return unavailable("a private PostgreSQL", "cannot chown its directory");
            }
        }
        let data_arg = data.to_str().unwrap();
        let init = as_postgres(
            &bin.join("initdb"),
            &["-D", data_arg, "-A", "trust", "-U", "root", "--no-sync"],
        );
        match init {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return unavailable(
                    "a private PostgreSQL",
                    format!("initdb: {}", String::from_utf8_lossy(&out.stderr)),
                )
            }
            Err(e) => return unavailable("a private PostgreSQL", format!("initdb: {e}")),
        }
        let pg = PrivatePostgres {
            port: free_port(),
            bin,
            data,
            _dir: dir,
        };
        pg.up();
        Some(pg)
    }

    pub fn dsn(&self) -> String {
        format!("postgres://root@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut all = vec!["-D", self.data.to_str().unwrap(), "-w", "-t", "30"];
        all.extend_from_slice(args);
        let out = as_postgres(&self.bin.join("pg_ctl"), &all).expect("pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start (again) on the same port; returns once it accepts connections.
    pub fn up(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c log_statement=all",
            self.port
        );
        let log = self.data.join("server.log");
        self.pg_ctl(&["-o", &options, "-l", log.to_str().unwrap(), "start"]);
    }

    /// Statements the server has logged so far that contain `text` (every statement is
    /// logged).
    pub fn statements(&self, text: &str) -> usize {
        std::fs::read_to_string(self.data.join("server.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("statement:") && l.contains(text))
            .count()
    }

    /// Stop now (`-m fast`: open connections are cut).
    pub fn down(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }
}

/// A Redis of its own on an ephemeral port, keeping nothing on disk.
pub struct PrivateRedis {
    pub port: u16,
    proc: Proc,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let port = free_port();
        let proc = Self::spawn(port);
        wait_for_port(port).await;
        PrivateRedis { port, proc }
    }

    fn spawn(port: u16) -> Proc {
        Proc::spawn(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null()),
        )
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: every counter it held is gone.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    pub async fn restart(&mut self) {
        self.proc = Self::spawn(self.port);
        wait_for_port(self.port).await;
    }
}

/// A Redis Cluster of three masters (no replicas) on ephemeral loopback ports, made with
/// `redis-cli --cluster create`; its nodes keep nothing on disk but their cluster files.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    buses: Vec<u16>,
    nodes: Vec<Proc>,
    dir: tempfile::TempDir,
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let buses: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let nodes = (0..3)
            .map(|i| Self::spawn(dir.path(), ports[i], buses[i]))
            .collect();
        for &port in &ports {
            wait_for_port(port).await;
        }
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let made = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(made.success(), "redis-cli --cluster create failed");
        let cluster = RedisCluster {
            ports,
            buses,
            nodes,
            dir,
        };
        cluster.wait_ok().await;
        cluster
    }

    fn spawn(dir: &Path, port: u16, bus: u16) -> Proc {
        Proc::spawn(
            Command::new("redis-server")
                .current_dir(dir)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-port", &bus.to_string()])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--cluster-node-timeout", "1000"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null()),
        )
    }

    /// Until every node reports `cluster_state:ok` (slots assigned and agreed).
    async fn wait_ok(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        for &port in &self.ports {
            loop {
                let out = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .expect("run redis-cli cluster info");
                if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "cluster not ok");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }

    /// `redis-cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let rest: Vec<String> = self.ports[1..]
            .iter()
            .map(|p| format!("node=127.0.0.1:{p}"))
            .collect();
        format!(
            "redis-cluster://127.0.0.1:{}?{}",
            self.ports[0],
            rest.join("&")
        )
    }

    /// The node that holds the keys of hash tag `tag` (from `CLUSTER KEYSLOT` and the slot
    /// ranges of `CLUSTER NODES`).
    pub fn owner(&self, tag: &str) -> usize {
        let cli = |args: &[&str]| {
            let out = Command::new("redis-cli")
                .args(["-p", &self.ports[0].to_string()])
                .args(args)
                .output()
                .expect("run redis-cli");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let slot: u16 = cli(&["cluster", "keyslot", tag]).trim().parse().unwrap();
        let nodes = cli(&["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let holds = fields.iter().skip(8).any(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
            });
            if holds {
                let port: u16 = fields[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
                return self.ports.iter().position(|&p| p == port).unwrap();
            }
        }
        panic!("no node holds slot {slot}: {nodes}");
    }

    /// SIGKILL one master: its slots have no owner until it returns.
    pub fn kill(&mut self, node: usize) {
        self.nodes[node].kill();
    }

    /// Start a killed master again: it rejoins with its slots (and none of its data).
    pub async fn restart(&mut self, node: usize) {
        self.nodes[node] = Self::spawn(self.dir.path(), self.ports[node], self.buses[node]);
        wait_for_port(self.ports[node]).await;
        self.wait_ok().await;
    }
}

/// A tmpfs of `size` (e.g. `1m`) mounted on a fresh directory, unmounted on drop.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk { dir }),
            Ok(o) => unavailable(
                "a tmpfs mount (root)",
                String::from_utf8_lossy(&o.stderr).trim().to_string(),
            ),
            Err(e) => unavailable("a tmpfs mount (root)", e),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// `conf/haproxy.cfg`, the compose topology's balancer, as shipped but on loopback: listening
/// on `port` and balancing to one gateway at `gateway_port`.
pub struct Balancer {
    pub port: u16,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Balancer {
    pub async fn start(gateway_port: u16) -> Option<Balancer> {
        if Command::new("haproxy").arg("-v").output().is_err() {
            return unavailable("haproxy", "not installed (Debian package haproxy)");
        }
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/haproxy.cfg"))
                .unwrap();
        let port = free_port();
        let config: String = shipped
            .lines()
            .filter(|l| !l.contains("server gateway-2"))
            .map(|l| {
                l.replace("bind :8080", &format!("bind 127.0.0.1:{port}"))
                    .replace("gateway-1:8080", &format!("127.0.0.1:{gateway_port}"))
                    .replace("maxconn 20000", "maxconn 256")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, config + "\n").unwrap();
        let proc = Proc::spawn(
            Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&file)
                .stdout(Stdio::null()),
        );
        wait_for_port(port).await;
        Some(Balancer {
            port,
            _proc: proc,
            _dir: dir,
        })
    }
}
