//! `dialtone-proxy ctl`: the operator's client of the admin HTTP API, in the spirit of
//! Kamailio's `kamcmd ul.dump`: a table for people, `--json` for scripts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

/// `ctl` arguments.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The proxy's admin HTTP address.
    #[arg(long, default_value = "127.0.0.1:8060")]
    pub http: String,
    /// Print the raw JSON.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// What to show.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Registered contacts.
    Registrations,
    /// Active and recent calls.
    Calls,
    /// Counters.
    Stats,
}

/// A minimal HTTP/1.0 GET over a loopback TCP connection (the admin API is local).
pub fn http_get(addr: &str, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("cannot reach {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| format!("write to {addr}: {e}"))?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "malformed HTTP response".to_string())?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!(
            "{path}: {}",
            head.lines().next().unwrap_or("no status")
        ));
    }
    Ok(body.to_string())
}

/// Runs a `ctl` command.
pub fn run(args: &CtlArgs) -> ExitCode {
    let path = match args.command {
        CtlCommand::Registrations => "/api/registrations",
        CtlCommand::Calls => "/api/calls",
        CtlCommand::Stats => "/api/stats",
    };
    let body = match http_get(&args.http, path) {
        Ok(body) => body,
        Err(e) => {
            eprintln!("dialtone-proxy ctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        println!("{body}");
        return ExitCode::SUCCESS;
    }
    let value: serde_json::Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("dialtone-proxy ctl: bad JSON from the proxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.command {
        CtlCommand::Registrations => {
            println!(
                "{:<12} {:<48} {:>8} {:<22} {:<4}",
                "AOR", "CONTACT", "EXPIRES", "SOURCE", "TRANSPORT"
            );
            for r in value.as_array().into_iter().flatten() {
                println!(
                    "{:<12} {:<48} {:>8} {:<22} {:<4}",
                    r["aor"].as_str().unwrap_or(""),
                    r["contact"].as_str().unwrap_or(""),
                    r["expires_in"],
                    r["source"].as_str().unwrap_or(""),
                    r["transport"].as_str().unwrap_or("")
                );
            }
        }
        CtlCommand::Calls => {
            for (title, key) in [("ACTIVE", "active"), ("RECENT", "recent")] {
                println!("{title}");
                for c in value[key].as_array().into_iter().flatten() {
                    println!(
                        "  {:<40} {:<32} -> {:<32}",
                        c["call_id"].as_str().unwrap_or(""),
                        c["from"].as_str().unwrap_or(""),
                        c["to"].as_str().unwrap_or("")
                    );
                }
            }
        }
        CtlCommand::Stats => {
            if let Some(map) = value.as_object() {
                for (k, v) in map {
                    println!("{k:<16} {v}");
                }
            }
        }
    }
    ExitCode::SUCCESS
}
