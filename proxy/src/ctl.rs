//! `dialtone-proxy ctl`: the operator's client of the admin HTTP API, in the spirit of
//! Kamailio's `kamcmd ul.dump`: a table for people, `--json` for scripts. `ctl trace CALL-ID`
//! prints one call's messages as a ladder, like the seed's figures D-1 to D-4. `ctl mwi USER
//! [NEW[/OLD]]` shows or sets a user's voicemail counts (`POST /api/mwi/USER`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::trace::{CallTrace, Direction};

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
    /// One call's messages as a ladder: time, from, to, first line.
    Trace {
        /// The Call-ID (see `ctl calls`).
        call_id: String,
    },
    /// A user's voicemail counts: shown, or set with `NEW[/OLD]` (OLD defaults to 0), which
    /// saves them and sends the user's phones a message-summary NOTIFY (RFC 3842).
    Mwi {
        /// The user (the AOR's user part, e.g. 9000).
        user: String,
        /// `NEW/OLD` or `NEW`, e.g. `2/1`.
        counts: Option<String>,
    },
}

/// A minimal HTTP/1.0 GET over a loopback TCP connection (the admin API is local).
pub fn http_get(addr: &str, path: &str) -> Result<String, String> {
    http_request(addr, "GET", path, None)
}

/// A minimal HTTP/1.0 request with an optional text body; the body of a 200, else an error
/// with the status line and the API's explanation.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("cannot reach {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = match body {
        Some(body) => format!(
            "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
        None => format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n"),
    };
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("write to {addr}: {e}"))?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "malformed HTTP response".to_string())?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        // The admin API explains its refusals in the body ("no trace of Call-ID ..").
        return Err(format!(
            "{path}: {} {}",
            head.lines().next().unwrap_or("no status"),
            body.trim()
        ));
    }
    Ok(body.to_string())
}

/// Runs a `ctl` command.
pub fn run(args: &CtlArgs) -> ExitCode {
    let path = match &args.command {
        CtlCommand::Registrations => "/api/registrations".to_string(),
        CtlCommand::Calls => "/api/calls".to_string(),
        CtlCommand::Stats => "/api/stats".to_string(),
        CtlCommand::Trace { call_id } => format!("/api/trace/{}", percent_encode(call_id)),
        CtlCommand::Mwi { user, .. } => format!("/api/mwi/{}", percent_encode(user)),
    };
    let result = match &args.command {
        CtlCommand::Mwi {
            counts: Some(counts),
            ..
        } => http_request(&args.http, "POST", &path, Some(counts)),
        _ => http_get(&args.http, &path),
    };
    let body = match result {
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
    match &args.command {
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
        CtlCommand::Mwi { .. } => println!(
            "{}: {} new, {} old (Messages-Waiting: {})",
            value["user"].as_str().unwrap_or(""),
            value["new"],
            value["old"],
            if value["new"].as_u64().unwrap_or(0) > 0 {
                "yes"
            } else {
                "no"
            }
        ),
        CtlCommand::Trace { .. } => match serde_json::from_value::<CallTrace>(value) {
            Ok(trace) => print!("{}", ladder(&trace)),
            Err(e) => {
                eprintln!("dialtone-proxy ctl: unexpected trace JSON: {e}");
                return ExitCode::FAILURE;
            }
        },
    }
    ExitCode::SUCCESS
}

/// A path segment: Call-IDs may hold characters that mean something in a URL (RFC 3986 2.1).
fn percent_encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@:!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Width of one party's column in the ladder.
const COLUMN: usize = 26;

/// The ladder of one call: a column per party (the caller, the proxy, then the others in the
/// order they appear), an arrow per message labelled with its method or status, and the time
/// and full first line beside it.
pub fn ladder(trace: &CallTrace) -> String {
    let proxy = trace
        .messages
        .first()
        .map(|m| m.local.to_string())
        .unwrap_or_default();
    let mut parties: Vec<String> = Vec::new();
    if let Some(first) = trace.messages.first() {
        if first.direction == Direction::In {
            parties.push(first.remote.to_string());
        }
    }
    parties.push("proxy".into());
    for m in &trace.messages {
        let peer = m.remote.to_string();
        if !parties.contains(&peer) {
            parties.push(peer);
        }
    }
    let column = |name: &str| parties.iter().position(|p| p == name).unwrap_or(0);
    let mut out = format!("Call-ID {}\n{:<14}", trace.call_id, "TIME");
    for party in &parties {
        let title = if party == "proxy" {
            format!("proxy {proxy}")
        } else {
            party.clone()
        };
        out.push_str(&format!("{title:<COLUMN$}"));
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    for m in &trace.messages {
        let peer = m.remote.to_string();
        let (from, to) = match m.direction {
            Direction::In => (column(&peer), column("proxy")),
            Direction::Out => (column("proxy"), column(&peer)),
        };
        out.push_str(&format!("{:<14}", clock(m.at_us)));
        out.push_str(&arrow_row(parties.len(), from, to, &m.label()));
        out.push_str(&format!("  {} {}\n", m.transport, m.first_line));
    }
    if trace.dropped > 0 {
        out.push_str(&format!("({} more messages not kept)\n", trace.dropped));
    }
    out
}

/// `|-----INVITE---->|` between two lifelines, `|` on the others.
fn arrow_row(columns: usize, from: usize, to: usize, label: &str) -> String {
    let width = COLUMN * (columns - 1) + 1;
    let mut row: Vec<char> = vec![' '; width];
    for c in 0..columns {
        row[c * COLUMN] = '|';
    }
    let (lo, hi) = (from.min(to) * COLUMN, from.max(to) * COLUMN);
    for cell in row.iter_mut().take(hi).skip(lo + 1) {
        *cell = '-';
    }
    if to > from {
        row[hi - 1] = '>';
    } else {
        row[lo + 1] = '<';
    }
    let room = hi - lo - 3;
    let label: String = label.chars().take(room.saturating_sub(2)).collect();
    let start = lo + 2 + (room - label.chars().count()) / 2;
    for (i, c) in label.chars().enumerate() {
        row[start + i] = c;
    }
    row.into_iter().collect()
}

/// `HH:MM:SS.mmm` (UTC) of microseconds since the epoch.
fn clock(at_us: u64) -> String {
    let ms = at_us / 1000;
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TracedMessage;

    fn message(direction: Direction, remote: u16, first_line: &str, at_us: u64) -> TracedMessage {
        TracedMessage {
            at_us,
            direction,
            transport: "udp".into(),
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: format!("127.0.0.1:{remote}").parse().unwrap(),
            first_line: first_line.into(),
            call_id: "c1".into(),
            text: String::new(),
            truncated: false,
        }
    }

    #[test]
    fn draws_a_column_per_party_and_an_arrow_per_message() {
        let trace = CallTrace {
            call_id: "c1".into(),
            messages: vec![
                message(
                    Direction::In,
                    5062,
                    "INVITE sip:9000@127.0.0.1 SIP/2.0",
                    3_600_000_000,
                ),
                message(Direction::Out, 5062, "SIP/2.0 100 Trying", 3_600_001_000),
                message(
                    Direction::Out,
                    5064,
                    "INVITE sip:9000@127.0.0.1:5064 SIP/2.0",
                    3_600_002_000,
                ),
                message(Direction::In, 5064, "SIP/2.0 180 Ringing", 3_600_003_000),
            ],
            dropped: 0,
        };
        let text = ladder(&trace);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Call-ID c1");
        assert!(lines[1].starts_with("TIME          127.0.0.1:5062"));
        assert!(lines[1].contains("proxy 127.0.0.1:5060"));
        assert!(lines[2].starts_with("01:00:00.000  |"));
        assert!(lines[2].contains("INVITE"));
        assert!(lines[2].contains("->|"));
        assert!(lines[3].contains("|<-") && lines[3].contains("100 Trying"));
        // The second INVITE goes from the proxy's column to the callee's, the third.
        let invite = lines[4];
        let proxy_col = 14 + COLUMN;
        assert_eq!(&invite[proxy_col..proxy_col + 2], "|-");
        assert!(invite.contains("->|  udp INVITE sip:9000@127.0.0.1:5064"));
        assert!(lines[5].contains("180 Ringing"));
    }

    #[test]
    fn encodes_call_ids_for_the_path() {
        assert_eq!(percent_encode("a1@127.0.0.1"), "a1@127.0.0.1");
        assert_eq!(percent_encode("x/y z?#%"), "x%2Fy%20z%3F%23%25");
    }
}
