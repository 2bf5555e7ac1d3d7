//! Log lines: JSON objects (one per line) by default, or plain text. Messages that are already
//! JSON objects are merged into the line rather than quoted.
//!
//! Lines are formatted into a per-thread buffer and appended to one in memory (`Sink`), which
//! is written to stderr when it holds `WRITE_AT` bytes, every `FLUSH_EVERY` by a thread of its
//! own, and by `flush()` when the process stops: a request costs no write syscall, a refused
//! one neither (security events are warnings, held like any line). Errors are written at once.
//! Nothing is ever dropped: when stderr cannot keep up and `HOLD_AT_MOST` bytes wait, the
//! thread that logs writes them itself, so memory stays bounded.

use crate::config::{LogFormat, LogLevel};
use std::cell::RefCell;
use std::fmt;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Bytes held before a write.
const WRITE_AT: usize = 64 * 1024;
/// The longest a line waits.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Bytes held at most (then the logging thread writes them itself).
const HOLD_AT_MOST: usize = 1024 * 1024;

/// Lines not yet written, and the lock that keeps writes in order.
struct Sink {
    held: Mutex<Vec<u8>>,
    writing: Mutex<()>,
}

impl Sink {
    /// Append one line; write now when asked to or when enough is held.
    fn push(&self, line: &[u8], now: bool) {
        let size = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            held.extend_from_slice(line);
            held.len()
        };
        if now || size >= WRITE_AT {
            // Past the bound the caller waits for the write; below it, a flusher already
            // writing takes these lines too.
            self.write(size >= HOLD_AT_MOST || now);
        }
    }

    /// Write what is held, in order. `wait`: even when another thread is writing.
    fn write(&self, wait: bool) {
        let _turn = if wait {
            self.writing.lock().unwrap_or_else(|p| p.into_inner())
        } else {
            match self.writing.try_lock() {
                Ok(turn) => turn,
                Err(_) => return,
            }
        };
        let lines = std::mem::take(&mut *self.held.lock().unwrap_or_else(|p| p.into_inner()));
        if !lines.is_empty() {
            let _ = std::io::stderr().lock().write_all(&lines);
        }
    }
}

static SINK: Sink = Sink {
    held: Mutex::new(Vec::new()),
    writing: Mutex::new(()),
};

/// Write every line held (at shutdown; lines logged after it are written by the next flush).
pub fn flush() {
    SINK.write(true);
}

/// Change the level of a running process (configuration reload).
pub fn set_level(level: LogLevel) {
    log::set_max_level(level.0);
}

struct Logger {
    filter: env_filter::Filter,
    json: bool,
}

thread_local! {
    /// The line being formatted, and the message inside it (reused from line to line).
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let (line, message) = &mut *scratch;
            line.clear();
            message.clear();
            let _ = write!(message, "{}", record.args());
            self.format(line, message, record);
            SINK.push(line, record.level() == log::Level::Error);
        });
    }

    fn flush(&self) {
        flush();
    }
}

impl Logger {
    fn format(&self, line: &mut Vec<u8>, message: &[u8], record: &log::Record<'_>) {
        let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let level = record.level().as_str();
        if !self.json {
            let _ = write!(line, "{ts} {level:5} {} ", record.target());
            line.extend_from_slice(message);
            line.push(b'\n');
            return;
        }
        let _ = write!(line, "{{\"ts\":\"{ts}\",\"level\":\"{level}\",");
        let object = message.len() > 2 && message[0] == b'{' && message.ends_with(b"}");
        if object {
            line.extend_from_slice(&message[1..]);
        } else {
            line.extend_from_slice(b"\"target\":");
            let _ = serde_json::to_writer(&mut *line, record.target());
            line.extend_from_slice(b",\"message\":");
            let _ = serde_json::to_writer(&mut *line, &String::from_utf8_lossy(message));
            line.push(b'}');
        }
        line.push(b'\n');
    }
}

/// A value shown as its JSON form: `log::info!("{}", Json(&line))` serializes straight into the
/// log line, with no `serde_json::Value` in between.
pub struct Json<'a, T: serde::Serialize>(pub &'a T);

impl<T: serde::Serialize> fmt::Display for Json<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Out<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl Write for Out<'_, '_> {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                let text = std::str::from_utf8(bytes).map_err(std::io::Error::other)?;
                self.0.write_str(text).map_err(std::io::Error::other)?;
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        serde_json::to_writer(Out(f), self.0).map_err(|_| fmt::Error)
    }
}

/// Install the logger and its flusher. The logger itself passes every level the filter allows;
/// the level in effect is the `log` crate's maximum, so a reload can raise or lower it.
pub fn init(level: LogLevel, format: LogFormat) {
    let mut filter = env_filter::Builder::new();
    filter.filter_level(log::LevelFilter::Trace);
    // sqlx logs every statement at INFO; sea-orm likewise.
    filter.filter_module("sqlx", log::LevelFilter::Warn);
    filter.filter_module("sea_orm", log::LevelFilter::Warn);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        filter.parse(&spec);
    }
    let logger = Logger {
        filter: filter.build(),
        json: format == LogFormat::Json,
    };
    static FLUSHER: OnceLock<()> = OnceLock::new();
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        FLUSHER.get_or_init(|| {
            let _ = std::thread::Builder::new()
                .name("log-flush".into())
                .spawn(|| loop {
                    std::thread::sleep(FLUSH_EVERY);
                    SINK.write(false);
                });
        });
    }
    set_level(level);
}
