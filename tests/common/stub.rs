//! In-process stub backends speaking just enough HTTP/1.1 (keep-alive, GET without body) to
//! script what a backend does: answer with its name, an error, nothing, or too late.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 `image/webp` whose body is the stub's name.
    Image,
    /// This status with a plain-text body, as imgproxy answers errors.
    Status(u16, &'static str),
    /// Accept and close without answering.
    Close,
    /// Answer after this long.
    Sleep(Duration),
    /// 200 with these bytes and this content type: a source server for real backends.
    File(Arc<Vec<u8>>, &'static str),
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: HashMap<String, String>,
    /// The request body (by Content-Length), e.g. a webhook's JSON.
    pub body: Vec<u8>,
}

pub struct Stub {
    pub name: String,
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    tasks: Option<JoinSet<()>>,
}

impl Stub {
    pub async fn start(name: &str, mode: Mode) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut stub = Stub {
            name: name.to_string(),
            port,
            mode: Arc::new(Mutex::new(mode)),
            requests: Arc::new(Mutex::new(Vec::new())),
            tasks: None,
        };
        stub.serve(listener);
        stub
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Image requests served so far (health checks excluded).
    pub fn served(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Stop listening and drop every open connection, like a killed process.
    pub fn kill(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
        }
    }

    /// Listen again on the same port.
    pub async fn restart(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        let (name, mode, requests) = (self.name.clone(), self.mode.clone(), self.requests.clone());
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let held = connections.clone();
        tasks.spawn(async move {
            let _held = held;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (name, mode, requests) = (name.clone(), mode.clone(), requests.clone());
                connections
                    .lock()
                    .unwrap()
                    .spawn(connection(stream, name, mode, requests));
            }
        });
        self.tasks = Some(tasks);
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn connection(
    mut stream: TcpStream,
    name: String,
    mode: Arc<Mutex<Mode>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
) {
    let mut buffer = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_string();
        buffer.drain(..end);
        let mut lines = head.split("\r\n");
        let path = lines
            .next()
            .unwrap_or("")
            .split(' ')
            .nth(1)
            .unwrap_or("")
            .to_string();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buffer.len() < length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buffer.drain(..length).collect();
        let (status, content_type, body) = if path == "/health" {
            (200, "text/plain", b"imgproxy is running".to_vec())
        } else {
            requests.lock().unwrap().push(Recorded {
                path,
                headers,
                body,
            });
            let mode = mode.lock().unwrap().clone();
            match mode {
                Mode::Image => (200, "image/webp", name.as_bytes().to_vec()),
                Mode::Status(code, text) => (code, "text/plain", text.as_bytes().to_vec()),
                Mode::Close => return,
                Mode::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    (200, "image/webp", name.as_bytes().to_vec())
                }
                Mode::File(bytes, content_type) => (200, content_type, bytes.to_vec()),
            }
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nServer: imgproxy\r\n\r\n",
            body.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err()
            || stream.write_all(&body).await.is_err()
        {
            return;
        }
    }
}
