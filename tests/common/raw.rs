//! A bare HTTP/1.1 keep-alive client that never retries: one request on the connection it has,
//! a new connection only when the server said `Connection: close` (or before the first
//! request). Any error after a request was written is a failed request, which is what a strict
//! client sees. (reqwest/hyper silently resend a request whose pooled connection was closed,
//! which would hide exactly the losses an upgrade test must count.)

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct RawClient {
    port: u16,
    request: Vec<u8>,
    conn: Option<BufReader<TcpStream>>,
    /// Connections opened so far.
    pub connects: u64,
}

/// What one request ended as.
#[derive(Debug)]
pub enum Outcome {
    /// Status, body length and whether the server closed the connection after it.
    Answer {
        status: u16,
        body: usize,
        close: bool,
    },
    /// The connection failed after the request was sent (reset, EOF, garbage, timeout).
    Failed(String),
}

impl RawClient {
    /// `GET path` with these extra header lines (`Name: value`) on every request.
    pub fn new(port: u16, path: &str, headers: &[(&str, &str)]) -> RawClient {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        RawClient {
            port,
            request: request.into_bytes(),
            conn: None,
            connects: 0,
        }
    }

    pub async fn send(&mut self) -> Outcome {
        if self.conn.is_none() {
            match TcpStream::connect(("127.0.0.1", self.port)).await {
                Ok(stream) => {
                    stream.set_nodelay(true).ok();
                    self.conn = Some(BufReader::new(stream));
                    self.connects += 1;
                }
                Err(e) => return Outcome::Failed(format!("connect: {e}")),
            }
        }
        let conn = self.conn.as_mut().expect("connected");
        let result = tokio::time::timeout(Duration::from_secs(10), exchange(conn, &self.request))
            .await
            .unwrap_or_else(|_| Err("no answer within 10 s".into()));
        match result {
            Ok((status, body, close)) => {
                if close {
                    self.conn = None;
                }
                Outcome::Answer {
                    status,
                    body,
                    close,
                }
            }
            Err(e) => {
                self.conn = None;
                Outcome::Failed(e)
            }
        }
    }
}

impl RawClient {
    /// Wait up to `limit` for the server to close the connection this client holds, idle:
    /// `Some(bytes it sent before closing)`, or `None` when it was still open after `limit`.
    pub async fn closed_by_server_within(&mut self, limit: Duration) -> Option<Vec<u8>> {
        let conn = self.conn.as_mut().expect("a connection to watch");
        let mut sent = Vec::new();
        let read = async {
            let mut buf = [0u8; 1024];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => sent.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(limit, read).await.ok()?;
        self.conn = None;
        Some(sent)
    }
}

async fn exchange(
    conn: &mut BufReader<TcpStream>,
    request: &[u8],
) -> Result<(u16, usize, bool), String> {
    conn.get_mut()
        .write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut line = String::new();
    read_line(conn, &mut line).await?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let (mut length, mut close) = (None, false);
    loop {
        line.clear();
        read_line(conn, &mut line).await?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked answers are not expected here".into());
        }
    }
    let length = length.ok_or("answer without Content-Length")?;
    let mut body = vec![0; length];
    conn.read_exact(&mut body)
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok((status, length, close))
}

async fn read_line(conn: &mut BufReader<TcpStream>, line: &mut String) -> Result<(), String> {
    match conn.read_line(line).await {
        Ok(0) => Err("connection closed before the answer".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("read: {e}")),
    }
}
