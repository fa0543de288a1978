//! Debian's Kamailio as the SIP server of interop tests: [`Kamailio::start`] runs
//! `/usr/sbin/kamailio` with `tests/kamailio/ata-lab.cfg` (a minimal registrar and
//! loose-routing proxy without authentication) in the foreground (`-DD -E`) on a free
//! loopback UDP port, with a temporary working and runtime directory; dropping it stops
//! Kamailio by its PID with SIGTERM (its main process then stops its children). The cfg logs
//! every request Kamailio sends, as it goes on the wire; [`Kamailio::relayed`] reads them back
//! from its stderr, for tests that must see what a peer was sent.
//!
//! A test first checks `tool_available(PROGRAM)` ([`crate::tool_available`]): without
//! Kamailio it is skipped locally and fails in CI.

use std::net::SocketAddr;
use std::time::Duration;

use crate::sip_client::Msg;
use crate::{free_port, wait_until, workspace_root, Process};

/// Where Debian installs Kamailio.
pub const PROGRAM: &str = "/usr/sbin/kamailio";

/// Kamailio stopped with SIGTERM (not SIGKILL, which would orphan its children) on drop.
pub struct Kamailio {
    process: Process,
    pub sip: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Kamailio {
    pub fn start() -> Kamailio {
        let dir = tempfile::tempdir().expect("temp dir");
        let sip: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let config = workspace_root().join("tests/kamailio/ata-lab.cfg");
        let work = dir.path().to_str().expect("utf8").to_owned();
        let args: Vec<String> = [
            "-DD",
            "-E",
            "-f",
            config.to_str().expect("utf8"),
            "-l",
            &format!("udp:{sip}"),
            "-m",
            "64",
            "-M",
            "8",
            "-w",
            &work,
            "-Y",
            &work,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut process = Process::start(PROGRAM, &args, "kamailio");
        // Kamailio logs "INFO: ... init_tcp" etc.; readiness is simplest seen as an answer to
        // OPTIONS-free probing: its UDP port is taken once it listens.
        let listening = wait_until(Duration::from_secs(10), || {
            std::net::UdpSocket::bind(sip).is_err()
        });
        if !listening {
            process.terminate();
            panic!("kamailio did not listen on {sip}; see its log in the temp dir");
        }
        Kamailio {
            process,
            sip,
            _dir: dir,
        }
    }

    /// The requests Kamailio has sent to `to` so far, byte for byte as they went on the wire,
    /// oldest first; a retransmission (the same bytes again) counts once. The cfg's
    /// `onsend_route` logs each as a line `relayed to IP:PORT, LEN bytes:` and the LEN bytes.
    pub fn relayed(&self, to: SocketAddr) -> Vec<Msg> {
        let log = self.process.log_text();
        let marker = format!("relayed to {}:{}, ", to.ip(), to.port());
        let mut sent = Vec::new();
        let mut rest = log.as_str();
        while let Some(at) = rest.find(&marker) {
            rest = &rest[at + marker.len()..];
            let Some((length, after)) = rest.split_once(" bytes:\n") else {
                break;
            };
            let Some(message) = length.parse::<usize>().ok().and_then(|n| after.get(..n)) else {
                continue;
            };
            let raw = message.as_bytes().to_vec();
            if !sent.iter().any(|earlier: &Msg| earlier.raw == raw) {
                sent.push(Msg {
                    raw,
                    from: self.sip,
                });
            }
        }
        sent
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.process.terminate();
    }
}
