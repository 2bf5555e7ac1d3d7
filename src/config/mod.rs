//! Configuration: schema, loading with environment overrides, validation.

pub mod duration;
pub mod exposure;
pub mod live;
mod load;
pub mod redact;
mod schema;
mod validate;
pub mod values;

pub use duration::Span;
pub use load::{load_file, load_str, ConfigError};
pub use redact::redacted;
pub use schema::*;
pub use validate::validate;
pub use values::{BackendUrl, HexSecret, LogFormat, LogLevel, Network, TlsVersion};
