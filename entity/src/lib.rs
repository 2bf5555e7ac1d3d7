//! sea-orm entities of the gateway's database.

pub mod images;
