//! imgproxy-gateway command line: parse, set up logging, build, run.

use clap::Parser;
use imgproxy_gateway::cli::{Cli, Command};
use imgproxy_gateway::config::{exposure, load_file, Config, LogFormat, LogLevel};
use imgproxy_gateway::manage_cli::{self, Managed};
use imgproxy_gateway::{app, dev_mode, logging};
use std::process::ExitCode;

imgproxy_gateway::process_allocator!();

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("imgproxy-gateway: {message}");
    ExitCode::FAILURE
}

/// Log what the configuration exposes (the published legacy key on an open listener).
fn warn_exposure(config: &Config) {
    for warning in exposure::warnings(config) {
        log::warn!(
            "{}",
            serde_json::json!({"event": "insecure_default", "warning": warning})
        );
    }
}

fn serve(config: Config, path: Option<&std::path::Path>, upgrade: bool) -> ExitCode {
    let dev_mode = path.is_none();
    logging::init(
        *config.observability.log_level,
        config.observability.log_format,
    );
    match app::migrate(&config) {
        Ok(legacy_live) if legacy_live && !dev_mode => warn_exposure(&config),
        Ok(_) => {}
        Err(e) => return fail(e),
    }
    let built = match app::build(config, path.map(|p| p.to_path_buf()), upgrade) {
        Ok(built) => built,
        Err(e) => return fail(e),
    };
    let mut server = built.server;
    if dev_mode {
        if let Err(e) = dev_mode::add_backends(&mut server, &built.state.config()) {
            return fail(e);
        }
        println!("{}", dev_mode::banner(&built.state.config()));
    }
    // Until the services have stopped (a graceful stop or upgrade included), then every log
    // line still held is written.
    server.run(pingora::server::RunArgs::default());
    logging::flush();
    ExitCode::SUCCESS
}

fn manage(config: &std::path::Path, command: Managed) -> ExitCode {
    let config = match load_file(config) {
        Ok(config) => config,
        Err(e) => return fail(format!("{}: {e}", config.display())),
    };
    logging::init(
        LogLevel(log::LevelFilter::Warn),
        config.observability.log_format,
    );
    match manage_cli::run(&config, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::Run) => match load_file(&cli.run.config) {
            Ok(config) => serve(config, Some(&cli.run.config), cli.run.upgrade),
            Err(e) => fail(format!("{}: {e}", cli.run.config.display())),
        },
        Some(Command::Dev(args)) => match dev_mode::dev_config(&args) {
            Ok(config) => serve(config, None, cli.run.upgrade),
            Err(e) => fail(e),
        },
        Some(Command::DevBackend(args)) => {
            logging::init(LogLevel(log::LevelFilter::Info), LogFormat::Json);
            match dev_mode::run_backend(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Some(Command::Migrate) => match load_file(&cli.run.config) {
            Ok(config) => match app::migrate(&config) {
                Ok(_) => {
                    println!(
                        "migrations applied to {}",
                        imgproxy_gateway::config::redacted(&config.database.dsn)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            },
            Err(e) => fail(format!("{}: {e}", cli.run.config.display())),
        },
        Some(Command::User(command)) => manage(&cli.run.config, Managed::User(command)),
        Some(Command::Key(command)) => manage(&cli.run.config, Managed::Key(command)),
        Some(Command::CheckConfig { file }) => match load_file(&file) {
            Ok(config) => {
                for warning in exposure::warnings(&config) {
                    eprintln!("warning: {warning}");
                }
                println!(
                    "{}: ok ({} backends, database {:?}, public port {}, admin {})",
                    file.display(),
                    config.backends.len(),
                    config.database.driver,
                    config.server.port,
                    config.admin.listen
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("{}: {e}", file.display())),
        },
    }
}
