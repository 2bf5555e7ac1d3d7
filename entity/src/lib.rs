//! sea-orm entities of the gateway's database.

pub mod api_keys;
pub mod audit_log;
pub mod images;
pub mod usage;
pub mod users;
