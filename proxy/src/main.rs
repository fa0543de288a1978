//! `dialtone-proxy`: flags only; everything else is in the library.

use clap::{Parser, Subcommand};
use dialtone_proxy::config::{Config, ProxyFlags};

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
    Ctl(dialtone_proxy::ctl::CtlArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Ctl(args)) = cli.command {
        return dialtone_proxy::ctl::run(&args);
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
    match dialtone_proxy::server::run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dialtone-proxy: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
