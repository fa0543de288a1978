//! One ATA of a feature lab: a `dialtone-ata` with one virtual line that plays its own tone
//! into the call and records its earpiece, registered at a SIP server (`dialtone-proxy` or
//! Kamailio) and driven through its control API as a person at the phone would (`ctl dial`,
//! `flash`, `onhook`). The feature tests (`ata_features.rs` through our proxy,
//! `ata_kamailio_features.rs` through Kamailio) run three of them and judge each phase's
//! audio on the line's [`Recording`].

use std::net::SocketAddr;
use std::path::Path;

use dialtone_ata::ctl::CtlCommand;
use dialtone_ata::line::LineStatus;

use crate::recording::Recording;
use crate::{ata_line_command, start_ata, wait_for_line, AtaProcess};

/// A registered ATA line with its earpiece recording.
pub struct Line {
    pub ata: AtaProcess,
    pub earpiece: Recording,
}

impl Line {
    /// Starts the ATA `program` as user `user` (password `pw<user>`) at `server`, playing a
    /// tone of `hz`, recording to `<dir>/<user>.wav`, answering by itself after 0.3 s when
    /// `answers`; returns once it is registered.
    pub fn start(
        program: &str,
        server: SocketAddr,
        user: &str,
        hz: u32,
        answers: bool,
        dir: &Path,
    ) -> Line {
        let wav = dir.join(format!("{user}.wav"));
        let line = format!("{user}:pw{user}");
        let server = server.to_string();
        let tone = format!("tone:{hz}");
        let mut args = vec![
            "--line",
            &line,
            "--proxy",
            &server,
            "--register-interval",
            "300",
            "--audio-in",
            &tone,
            "--audio-out",
            wav.to_str().expect("utf8"),
        ];
        if answers {
            args.extend(["--auto-answer", "0.3"]);
        }
        let ata = start_ata(program, &args);
        wait_for_line(ata.control, 1, "registration", |s| {
            s.registration == "registered"
        });
        Line {
            ata,
            earpiece: Recording::new(wav),
        }
    }

    /// Runs `command` on the line; its status afterwards.
    pub fn command(&self, command: CtlCommand) -> LineStatus {
        ata_line_command(self.ata.control, 1, command)
    }

    /// Waits (10 s at most) until the line's status satisfies `done`; panics naming `what`.
    pub fn wait(&self, what: &str, done: impl Fn(&LineStatus) -> bool) -> LineStatus {
        wait_for_line(self.ata.control, 1, what, done)
    }
}

/// The state of the call with `number` in `status`, if the line has one.
pub fn call_state(status: &LineStatus, number: &str) -> Option<String> {
    status
        .calls
        .iter()
        .find(|c| c.remote.number == number)
        .map(|c| c.state.clone())
}
