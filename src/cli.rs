//! Command-line interface: `run` (default), `dev`, `dev-backend`, `migrate`, `check-config`.

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
}
