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
