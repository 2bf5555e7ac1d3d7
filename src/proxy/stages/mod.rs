//! The request stages, in the order `request_filter` runs them.

pub mod auth;
pub mod convert;
pub mod images;
pub mod source;
pub mod upload;
