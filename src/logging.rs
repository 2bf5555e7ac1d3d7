//! Log lines: JSON objects (one per line) by default, or plain text. Messages that are already
//! JSON objects are merged into the line rather than quoted.

use std::io::Write;

pub fn init(level: &str, format: &str) {
    let json = format == "json";
    let mut builder = env_logger::Builder::new();
    // DEBUG, INFO, WARN (or WARNING), ERROR, in any case.
    let level = level.to_ascii_lowercase().replace("warning", "warn");
    builder.parse_filters(&level);
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
}
