//! Configuration: schema, loading with environment overrides, validation.

pub mod bounded;
pub mod duration;
pub mod exposure;
pub mod live;
mod load;
pub mod redact;
mod schema;
pub mod text;
mod validate;
pub mod values;

pub use bounded::{Bounded, Positive};
pub use duration::Span;
pub use live::Live;
pub use load::{load_file, load_str, ConfigError};
pub use redact::redacted;
pub use schema::*;
pub use validate::validate;
pub use values::{BackendUrl, HexSecret, LogFormat, LogLevel, Network, TlsVersion};
