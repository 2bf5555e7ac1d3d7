//! Command-line interface: `run` (default), `dev`, `dev-backend`, `migrate`, `check-config`,
//! and the bootstrap commands `user` and `key`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "imgproxy-gateway",
    version,
    about = "Multi-tenant API gateway in front of imgproxy servers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Configuration file.
    #[arg(long, short = 'c', default_value = "conf/gateway.yaml", global = true)]
    pub config: PathBuf,
    /// Take over the listeners of a running instance (Pingora graceful upgrade).
    #[arg(long, short = 'u', global = true)]
    pub upgrade: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (the default).
    Run,
    /// Run the gateway with two built-in development backends and embedded state in ./data.
    Dev(DevArgs),
    /// Run an imgproxy-compatible development backend.
    DevBackend(DevBackendArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Validate a configuration file without starting.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Manage users in the configured database.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API keys in the configured database.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user and print its first API key (shown only this once).
    Create {
        /// `[a-z0-9_-]{1,64}`.
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        /// admin, viewer or user.
        #[arg(long, default_value = "user")]
        role: String,
        /// Allowed client network (CIDR or address); repeat for several. None: anywhere.
        #[arg(long = "ip")]
        ip_whitelist: Vec<String>,
    },
    /// List every user.
    List,
    /// Suspend a user: its keys get 403 until it is active again.
    Suspend { id: String },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Issue another key for a user and print it (shown only this once).
    Create {
        user: String,
        #[arg(long)]
        label: Option<String>,
    },
    /// Issue a new key; the old one keeps working for the grace period.
    Rotate {
        user: String,
        #[arg(long)]
        grace_seconds: Option<u64>,
        /// The key to rotate when the user has several.
        #[arg(long)]
        key_id: Option<String>,
    },
    /// Revoke a key at once.
    Revoke { user: String, key_id: String },
}

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Directory for the SQLite database and stored uploads.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
}

#[derive(Args, Debug)]
pub struct DevBackendArgs {
    /// Address to listen on, e.g. 127.0.0.1:48080.
    #[arg(long)]
    pub listen: String,
    /// Hex key of imgproxy URL signatures (with --salt).
    #[arg(long)]
    pub key: Option<String>,
    /// Hex salt of imgproxy URL signatures (with --key).
    #[arg(long)]
    pub salt: Option<String>,
    /// Bytes of the signature checked (imgproxy's IMGPROXY_SIGNATURE_SIZE).
    #[arg(long, default_value_t = 32)]
    pub signature_size: usize,
    /// Root directory of local:// sources.
    #[arg(long)]
    pub local_root: Option<PathBuf>,
    /// Fetch sources on loopback addresses (default: $IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES,
    /// else false, as imgproxy).
    #[arg(long, value_name = "BOOL")]
    pub allow_loopback_source_addresses: Option<bool>,
    /// Fetch sources on link-local addresses (default:
    /// $IMGPROXY_ALLOW_LINK_LOCAL_SOURCE_ADDRESSES, else false).
    #[arg(long, value_name = "BOOL")]
    pub allow_link_local_source_addresses: Option<bool>,
    /// Fetch sources on private addresses (default: $IMGPROXY_ALLOW_PRIVATE_SOURCE_ADDRESSES,
    /// else true, as imgproxy).
    #[arg(long, value_name = "BOOL")]
    pub allow_private_source_addresses: Option<bool>,
}
