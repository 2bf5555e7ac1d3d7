//! A gateway's stderr through a pipe whose reader a test can stop and start again: a log reader
//! (journald, a log shipper) that falls behind. What it reads goes on to the gateway's log file.

use std::io::{PipeWriter, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Whether the reader is stopped (shared with the thread that reads).
#[derive(Clone, Default)]
pub struct LogValve(Arc<AtomicBool>);

impl LogValve {
    /// Stop reading. A read already waiting for data still takes what arrives first (at most
    /// 64 KiB), then the pipe fills.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// A pipe for the gateway's stderr, read into `log` by a thread of its own while not
    /// stopped; the thread ends with the pipe (when the gateway exits).
    pub fn pipe_into(&self, mut log: std::fs::File) -> PipeWriter {
        let (mut reader, writer) = std::io::pipe().expect("a pipe");
        let stopped = self.0.clone();
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                while stopped.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => log.write_all(&chunk[..n]).expect("the log file"),
                }
            }
        });
        writer
    }
}
