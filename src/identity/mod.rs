//! Who is calling and what they may do: users, API keys, their verification on the hot path,
//! role checks, and the management operations that change them.

pub mod attempts;
pub mod bootstrap;
pub mod bus;
pub mod cache;
pub mod hasher;
pub mod input;
pub mod issuing;
pub mod key;
pub mod manage;
pub mod model;
pub mod rbac;
pub mod record;
pub mod snapshot;
pub mod verify;

pub use cache::Change;
pub use snapshot::Identity;
pub use verify::Authenticator;
