//! `dialtone-ata ctl`: the control API's command-line client (blocking, `ureq`). Prints the
//! line status as a one-line summary, or the JSON with `--json`. See `control.rs` for the API.

use std::net::SocketAddr;
use std::time::Duration;

use crate::line::LineStatus;

/// One ctl command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlCommand {
    /// Lift the handset.
    OffHook,
    /// Put it down.
    OnHook,
    /// Press keys.
    Dial(String),
    /// Hook flash.
    Flash,
    /// Answer.
    Answer,
    /// Blind transfer of the connected call to a number or SIP URI.
    Transfer(String),
    /// Attended transfer: the held call to the consultation call.
    TransferAttended,
    /// Show the line.
    Status,
    /// Show the calls of every line.
    Calls,
}

/// Runs `command` against the control API at `control`, on line `line`; returns what to print.
pub fn run(
    control: SocketAddr,
    line: usize,
    command: &CtlCommand,
    json: bool,
) -> Result<String, String> {
    let base = format!("http://{control}");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let request = match command {
        CtlCommand::OffHook => agent.post(&format!("{base}/lines/{line}/offhook")),
        CtlCommand::OnHook => agent.post(&format!("{base}/lines/{line}/onhook")),
        CtlCommand::Flash => agent.post(&format!("{base}/lines/{line}/flash")),
        CtlCommand::Answer => agent.post(&format!("{base}/lines/{line}/answer")),
        CtlCommand::Dial(digits) => agent
            .post(&format!("{base}/lines/{line}/dial"))
            .query("digits", digits),
        CtlCommand::Transfer(target) => agent
            .post(&format!("{base}/lines/{line}/transfer"))
            .query("target", target),
        CtlCommand::TransferAttended => agent
            .post(&format!("{base}/lines/{line}/transfer"))
            .query("attended", "true"),
        CtlCommand::Status => agent.get(&format!("{base}/lines/{line}")),
        CtlCommand::Calls => agent.get(&format!("{base}/calls")),
    };
    let response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let body = r.into_string().unwrap_or_default();
            return Err(format!("{code}: {}", body.trim()));
        }
        Err(e) => return Err(format!("cannot reach {base}: {e}")),
    };
    let body = response
        .into_string()
        .map_err(|e| format!("bad response: {e}"))?;
    if json {
        return Ok(body);
    }
    match command {
        CtlCommand::Calls => {
            let lines: Vec<LineStatus> =
                serde_json::from_str(&body).map_err(|e| format!("bad response: {e}"))?;
            Ok(lines.iter().map(summary).collect::<Vec<_>>().join("\n"))
        }
        _ => {
            let status: LineStatus =
                serde_json::from_str(&body).map_err(|e| format!("bad response: {e}"))?;
            Ok(summary(&status))
        }
    }
}

/// One line of text for a status.
pub fn summary(status: &LineStatus) -> String {
    let mut text = format!(
        "line {} ({}): {}, hook {}, registration {}",
        status.line, status.user, status.state, status.hook, status.registration
    );
    if let Some(proxy) = &status.proxy {
        text.push_str(&format!(" at {proxy}"));
    }
    if let Some(tone) = &status.tone {
        text.push_str(&format!(", tone {tone}"));
    }
    if status.ringing {
        text.push_str(", ringing");
    }
    if let Some(call) = &status.call {
        text.push_str(&format!(
            ", {} call {} {}",
            call.direction,
            call.party,
            if call.connected {
                "connected"
            } else {
                "setting up"
            }
        ));
        if let Some(codec) = &call.codec {
            text.push_str(&format!(" ({codec})"));
        }
    }
    let others: Vec<String> = status
        .calls
        .iter()
        .filter(|c| {
            status
                .call
                .as_ref()
                .is_none_or(|a| a.id.to_string() != c.id)
        })
        .map(|c| format!("{} {} {}", c.direction, c.remote.number, c.state))
        .collect();
    if !others.is_empty() {
        text.push_str(&format!(", also {}", others.join(", ")));
    }
    if let Some(pattern) = &status.ring_pattern {
        text.push_str(&format!(" ({pattern})"));
    }
    if status.mwi.waiting {
        text.push_str(&format!(", messages {}/{}", status.mwi.new, status.mwi.old));
    }
    if let Some(all) = &status.forward.all {
        text.push_str(&format!(", forward all to {all}"));
    }
    if status.dnd {
        text.push_str(", do not disturb");
    }
    if let Some(outcome) = &status.last_outcome {
        text.push_str(&format!(", last call {outcome}"));
    }
    text
}
