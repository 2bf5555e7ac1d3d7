//! imgproxy-gateway: a multi-tenant API gateway on Pingora in front of imgproxy servers.

pub mod admin;
pub mod app;
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod dev;
pub mod devbackend;
pub mod drain;
pub mod error;
pub mod health;
pub mod identity;
pub mod imgproxy;
pub mod limits;
pub mod logging;
pub mod manage_cli;
pub mod metrics;
pub mod oneshot;
pub mod proxy;
pub mod reload;
pub mod request_id;
pub mod respond;
pub mod state;
pub mod storage;
pub mod store;
pub mod tls;
pub mod upstream;
