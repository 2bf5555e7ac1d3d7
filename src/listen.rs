//! Where the two listeners are. A port of 0 (`server.port: 0`, `admin.listen: 127.0.0.1:0`)
//! asks the kernel for a free port, which is reserved at once: a socket bound there with
//! SO_REUSEPORT that never listens, so it accepts nothing and no other program can take the
//! port before the listener binds beside it. Once both listeners accept connections the
//! reservations go, and one `listening` event names the real addresses (what tests and
//! scripts read instead of guessing a free port).

use pingora::listeners::TcpSocketOptions;
use pingora::protocols::l4::stream::L4BufferSettings;
use socket2::{Domain, Socket, Type};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// What an accepted plain TCP connection buffers, instead of Pingora's 64 KiB read-ahead and
/// 1460-byte write buffer (`docs/performance.md`):
/// - no read-ahead: Pingora reads a request header into a buffer of its own and an upload's
///   body streams on, so a read-ahead only adds a copy, and 64 KiB of memory per open
///   connection (64 MB at 1000 connections);
/// - an 8 KiB write buffer: a response header is buffered until its body follows, so an
///   answer under ~7 KiB (a thumbnail, a JSON answer, an error) leaves in one write instead
///   of two; a larger body is written past the buffer as before.
///
/// TLS listeners keep Pingora's defaults.
pub fn client_buffers() -> L4BufferSettings {
    L4BufferSettings::new(0, 8 * 1024)
}

/// The public and the admin listener.
pub struct Listeners {
    pub public: Listener,
    pub admin: Listener,
}

impl Listeners {
    /// `http(s)://host:port` of the public listener as a backend on this host reaches it.
    pub fn public_base_url(&self, tls: bool) -> String {
        let scheme = if tls { "https" } else { "http" };
        let mut addr = self.public.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("{scheme}://{addr}")
    }
}

pub struct Listener {
    pub addr: SocketAddr,
    /// Holds a port the kernel chose until the listener is up.
    reservation: Mutex<Option<Socket>>,
}

impl Listener {
    /// The listener for `text` (`host:port`, `[v6]:port`), reserving a port of 0.
    pub fn new(key: &str, addr: SocketAddr) -> Result<Listener, String> {
        if addr.port() != 0 {
            return Ok(Listener {
                addr,
                reservation: Mutex::new(None),
            });
        }
        let reserve = || -> std::io::Result<(SocketAddr, Socket)> {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            socket.bind(&addr.into())?;
            let bound = socket.local_addr()?.as_socket().unwrap_or(addr);
            Ok((bound, socket))
        };
        let (addr, socket) = reserve().map_err(|e| format!("{key}: cannot reserve a port: {e}"))?;
        Ok(Listener {
            addr,
            reservation: Mutex::new(Some(socket)),
        })
    }

    /// The address as Pingora binds it (and as an upgrade hands it over).
    pub fn text(&self) -> String {
        self.addr.to_string()
    }

    /// Socket options the listener needs to bind beside its reservation.
    pub fn socket_options(&self) -> Option<TcpSocketOptions> {
        let reserved = self
            .reservation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        reserved.then(|| {
            let mut options = TcpSocketOptions::default();
            options.so_reuseport = Some(true);
            options
        })
    }

    fn release(&self) {
        self.reservation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

/// Whether a socket listens on `addr`'s port (a reservation does not: it never calls listen).
/// Linux's socket tables; elsewhere a connection attempt.
fn listening(addr: SocketAddr) -> bool {
    let wanted = format!(":{:04X}", addr.port());
    let tables = ["/proc/net/tcp", "/proc/net/tcp6"].map(std::fs::read_to_string);
    if tables.iter().all(Result::is_err) {
        return std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok();
    }
    tables.iter().flatten().any(|table| {
        table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // `local_address` is the second field, the state (0A: LISTEN) the fourth.
            fields.len() > 3 && fields[1].ends_with(&wanted) && fields[3] == "0A"
        })
    })
}

/// Wait until both listeners accept, release their reservations and log where they are.
/// A listener that is not up within a minute is logged as such, never announced.
pub async fn announce(listeners: &Listeners, tls: bool) {
    let (public, admin) = (&listeners.public, &listeners.admin);
    let mut up = false;
    for _ in 0..6000 {
        up = listening(public.addr) && listening(admin.addr);
        if up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    public.release();
    admin.release();
    let (public, admin) = (public.text(), admin.text());
    if up {
        log::info!(
            "{}",
            serde_json::json!({"event": "listening", "public": public, "admin": admin, "tls": tls})
        );
    } else {
        log::error!(
            "{}",
            serde_json::json!({"event": "listeners_not_up", "public": public, "admin": admin,
                "waited_seconds": 60})
        );
    }
}
