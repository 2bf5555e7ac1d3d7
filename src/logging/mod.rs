//! Log lines: JSON objects (one per line) by default, or plain text. Messages that are already
//! JSON objects are merged into the line rather than quoted.
//!
//! Lines are formatted into a per-thread buffer and appended to one in memory (`Sink`), which
//! a thread of its own (the flusher) writes to stderr every `FLUSH_EVERY`, and at once when
//! it holds `WRITE_AT` bytes (the thread that logs wakes it), and `flush()` when the process
//! stops: a request costs no write syscall, a refused one neither (security events are
//! warnings, held like any line), and a stderr that blocks (a pipe its reader has stopped
//! reading) holds up the flusher, not the threads that serve requests. Errors are written at
//! once. Nothing is ever dropped: when stderr cannot keep up and `HOLD_AT_MOST` bytes wait,
//! the thread that logs writes them itself, so memory stays bounded.

mod fields;

pub use fields::Fields;

use crate::config::{LogFormat, LogLevel};
use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Bytes held before a write.
const WRITE_AT: usize = 64 * 1024;
/// The longest a line waits.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Bytes held at most (then the logging thread writes them itself).
const HOLD_AT_MOST: usize = 1024 * 1024;

/// Lines not yet written, and the lock that keeps writes in order (holding the buffer the
/// lines are swapped into while they are written, so neither buffer grows again each time).
struct Sink {
    held: Mutex<Vec<u8>>,
    writing: Mutex<Vec<u8>>,
}

impl Sink {
    /// Append one line; write now when asked to or past the bound, and have the flusher write
    /// when enough is held.
    fn push(&self, line: &[u8], now: bool) {
        let (before, size) = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            let before = held.len();
            held.extend_from_slice(line);
            (before, held.len())
        };
        if now || size >= HOLD_AT_MOST {
            self.write(true);
        } else if size >= WRITE_AT {
            match FLUSHER.get() {
                // Once per batch: the flusher takes every line held when it wakes.
                Some(Some(flusher)) if before < WRITE_AT => flusher.unpark(),
                Some(Some(_)) => {}
                // No flusher: write now, unless another thread is writing.
                _ => self.write(false),
            }
        }
    }

    /// Write what is held, in order. `wait`: even when another thread is writing.
    fn write(&self, wait: bool) {
        let mut lines = if wait {
            self.writing.lock().unwrap_or_else(|p| p.into_inner())
        } else {
            match self.writing.try_lock() {
                Ok(turn) => turn,
                Err(_) => return,
            }
        };
        std::mem::swap(
            &mut *lines,
            &mut *self.held.lock().unwrap_or_else(|p| p.into_inner()),
        );
        if !lines.is_empty() {
            let _ = std::io::stderr().lock().write_all(&lines);
        }
        lines.clear();
        // A burst's buffer is not kept.
        lines.shrink_to(2 * WRITE_AT);
    }
}

static SINK: Sink = Sink {
    held: Mutex::new(Vec::new()),
    writing: Mutex::new(Vec::new()),
};

/// The thread that writes held lines (`None` if it could not be started: then the thread that
/// logs writes them).
static FLUSHER: OnceLock<Option<std::thread::Thread>> = OnceLock::new();

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
}

/// Whether lines are JSON objects (`observability.log_format: json`) rather than plain text.
static JSON: AtomicBool = AtomicBool::new(true);

thread_local! {
    /// The line being formatted, and the message inside it (reused from line to line).
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// `YYYY-MM-DDTHH:MM:SS.` of the second last formatted on this thread.
    static SECOND: RefCell<(u64, [u8; 20])> = const { RefCell::new((u64::MAX, [0; 20])) };
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        emit(record.level(), record.target(), |message| {
            let _ = write!(message, "{}", record.args());
        });
    }

    fn flush(&self) {
        flush();
    }
}

/// Log one structured line at `level` under `target`: its fields (`Fields`) are written
/// straight into the line's buffer after the timestamp and level, as the fields of a message
/// that is a JSON object are merged; in plain text they are the message, as one JSON object.
/// The filter is the logger's own.
pub fn fields(level: log::Level, target: &'static str, write: impl FnOnce(&mut Fields<'_>)) {
    if level > log::max_level() {
        return;
    }
    let metadata = log::Metadata::builder().level(level).target(target).build();
    if !log::logger().enabled(&metadata) {
        return;
    }
    if !JSON.load(Ordering::Relaxed) {
        return emit(level, target, |message| {
            write(&mut Fields::new(message));
            match message.first_mut() {
                Some(comma) => *comma = b'{',
                None => message.push(b'{'),
            }
            message.push(b'}');
        });
    }
    SCRATCH.with(|scratch| {
        let line = &mut scratch.borrow_mut().0;
        line.clear();
        json_head(line, level.as_str());
        write(&mut Fields::new(line));
        line.extend_from_slice(b"}\n");
        SINK.push(line, level == log::Level::Error);
    });
}

/// Format one line from the message `write` puts in the buffer, and hand it to the sink.
fn emit(level: log::Level, target: &str, write: impl FnOnce(&mut Vec<u8>)) {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let (line, message) = &mut *scratch;
        line.clear();
        message.clear();
        write(message);
        format(line, message, level, target);
        SINK.push(line, level == log::Level::Error);
    });
}

fn format(line: &mut Vec<u8>, message: &[u8], level: log::Level, target: &str) {
    let level = level.as_str();
    if !JSON.load(Ordering::Relaxed) {
        timestamp(line);
        let _ = write!(line, " {level:5} {target} ");
        line.extend_from_slice(message);
        line.push(b'\n');
        return;
    }
    json_head(line, level);
    let object = message.len() > 2 && message[0] == b'{' && message.ends_with(b"}");
    if object {
        line.push(b',');
        line.extend_from_slice(&message[1..]);
    } else {
        json_message(line, target, message);
    }
    line.push(b'\n');
}

/// `{"ts":"…","level":"…"`: the start of every JSON line.
fn json_head(line: &mut Vec<u8>, level: &str) {
    line.extend_from_slice(b"{\"ts\":\"");
    timestamp(line);
    line.extend_from_slice(b"\",\"level\":\"");
    line.extend_from_slice(level.as_bytes());
    line.push(b'"');
}

/// `,"target":…,"message":…}`: the rest of a line whose message is not a JSON object.
fn json_message(line: &mut Vec<u8>, target: &str, message: &[u8]) {
    line.extend_from_slice(b",\"target\":");
    let _ = serde_json::to_writer(&mut *line, target);
    line.extend_from_slice(b",\"message\":");
    let _ = serde_json::to_writer(&mut *line, &String::from_utf8_lossy(message));
    line.push(b'}');
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC); the date and time are formatted once a second.
fn timestamp(line: &mut Vec<u8>) {
    let now = crate::state::since_epoch();
    let (secs, millis) = (now.as_secs(), now.subsec_millis());
    SECOND.with(|second| {
        let mut second = second.borrow_mut();
        if second.0 != secs {
            let at = chrono::DateTime::from_timestamp(secs as i64, 0).unwrap_or_default();
            let mut prefix = [0u8; 20];
            let _ = write!(&mut prefix[..], "{}", at.format("%Y-%m-%dT%H:%M:%S."));
            *second = (secs, prefix);
        }
        line.extend_from_slice(&second.1);
    });
    let digits = [millis / 100, millis / 10 % 10, millis % 10].map(|d| b'0' + d as u8);
    line.extend_from_slice(&digits);
    line.push(b'Z');
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
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    let logger = Logger {
        filter: filter.build(),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        FLUSHER.get_or_init(|| {
            std::thread::Builder::new()
                .name("log-flush".into())
                .spawn(|| loop {
                    // Woken early by `Sink::push` when a batch is held.
                    std::thread::park_timeout(FLUSH_EVERY);
                    SINK.write(false);
                })
                .ok()
                .map(|flusher| flusher.thread().clone())
        });
    }
    set_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str) -> serde_json::Value {
        let mut line = Vec::new();
        format(&mut line, message.as_bytes(), log::Level::Warn, "gw::x");
        assert_eq!(line.last(), Some(&b'\n'));
        serde_json::from_slice(&line).expect("one JSON object")
    }

    #[test]
    fn an_object_message_is_merged_and_any_other_is_quoted() {
        let merged = line(r#"{"event":"rate_limited","n":2}"#);
        assert_eq!(merged["level"], "WARN");
        assert_eq!(merged["event"], "rate_limited");
        assert_eq!(merged["n"], 2);
        assert!(merged.get("message").is_none());
        let quoted = line("said \"hi\"\n");
        assert_eq!(quoted["target"], "gw::x");
        assert_eq!(quoted["message"], "said \"hi\"\n");
        let ts = quoted["ts"].as_str().unwrap_or_default();
        assert_eq!(ts.len(), "2026-12-04T18:21:03.977Z".len(), "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    }
}
