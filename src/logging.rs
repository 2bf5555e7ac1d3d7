//! Log lines: JSON objects (one per line) by default, or plain text. Messages that are already
//! JSON objects are merged into the line rather than quoted.

use crate::config::{LogFormat, LogLevel};
use std::io::Write;

/// Change the level of a running process (configuration reload).
pub fn set_level(level: LogLevel) {
    log::set_max_level(level.0);
}

/// Install the logger. The logger itself passes every level; the level in effect is the
/// `log` crate's maximum, so a reload can raise or lower it.
pub fn init(level: LogLevel, format: LogFormat) {
    let json = format == LogFormat::Json;
    let mut builder = env_logger::Builder::new();
    builder.filter_level(log::LevelFilter::Trace);
    // sqlx logs every statement at INFO; pingora is chatty at INFO about its own life cycle.
    builder.filter_module("sqlx", log::LevelFilter::Warn);
    builder.filter_module("sea_orm", log::LevelFilter::Warn);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    builder.format(move |buf, record| {
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let message = record.args().to_string();
        if !json {
            return writeln!(buf, "{ts} {:5} {} {message}", record.level(), record.target());
        }
        let level = record.level().as_str();
        match message.strip_prefix('{').filter(|_| message.ends_with('}')) {
            Some(rest) if rest.len() > 1 => {
                writeln!(buf, "{{\"ts\":\"{ts}\",\"level\":\"{level}\",{rest}")
            }
            _ => writeln!(
                buf,
                "{}",
                serde_json::json!({"ts": ts, "level": level, "target": record.target(), "message": message})
            ),
        }
    });
    let _ = builder.try_init();
    set_level(level);
}
