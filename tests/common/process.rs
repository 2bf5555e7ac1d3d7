//! Child processes of the tests: started, signalled, waited for, killed on drop; free ports.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now, and never handed out before in this test binary: the
/// kernel may offer a port again right after it was released, before the gateway it was meant
/// for binds it; a test whose gateway then failed to bind would talk to another test's gateway.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A child process killed (SIGKILL) on drop.
pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn imgproxy-gateway");
        Proc { child: Some(child) }
    }

    /// No process (a placeholder after one was moved out).
    pub fn none() -> Proc {
        Proc { child: None }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Wait for the process to exit by itself (after a signal), up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        if let Some(child) = self.child.as_mut() {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("the process did not exit within {limit:?}");
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Send a signal by name (`QUIT`, `TERM`, `HUP`).
    pub fn signal(&self, name: &str) {
        let pid = self.pid().expect("process running").to_string();
        let status = Command::new("kill")
            .args([format!("-{name}"), pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "nothing listens on port {port} after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
