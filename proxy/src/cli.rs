//! The `dialtone-proxy` command line: flags and subcommands, then [`crate::server::run`].
//!
//! It lives in the library so that the end-to-end test package can build the very same
//! program under its own name (`tests/src/bin/`).

use crate::config::{Config, ProxyFlags};
use clap::{Parser, Subcommand};

/// Dialtone's stateful SIP proxy/registrar.
#[derive(Debug, Parser)]
#[command(name = "dialtone-proxy", version, about)]
struct Cli {
    #[command(flatten)]
    flags: ProxyFlags,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Talk to a running proxy's admin HTTP API.
    Ctl(crate::ctl::CtlArgs),
}

/// Runs the program with the process's arguments.
pub fn main() -> std::process::ExitCode {
    main_with_args(std::env::args_os())
}

/// Runs the program with `args` (the program name first, as in `std::env::args_os`).
pub fn main_with_args<I, T>(args: I) -> std::process::ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    if let Some(Command::Ctl(args)) = cli.command {
        return crate::ctl::run(&args);
    }
    let config = match Config::from_flags(&cli.flags) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("dialtone-proxy: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    crate::allocator::tune();
    match crate::server::run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dialtone-proxy: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
