//! Interop: linphone's console client (`linphonec` 5.1, Debian's `linphone-cli`) and a
//! `dialtone-ata` line register through `dialtone-proxy` with `--auth all` (each answers the
//! proxy's challenge with its password) and call each other through it, in both directions,
//! linphone with its default codec list (opus, speex, PCMU, PCMA, G729...), the ATA with
//! PCMU and PCMA. The ATA plays 1000 Hz and linphone 700 Hz; the call must carry RTP both
//! ways (the ATA's `dialtone_ata_rtp_packets_received_total`, linphone's recording growing),
//! and each side's recording must hold the other's tone (Goertzel), not its own.
//!
//! linphonec runs headless from a temporary directory: its configuration is
//! `tests/data/interop/linphonerc` (SIP and RTP bound to 127.0.0.1, SIP on a random port that
//! linphone binds itself), HOME is a directory of its own (linphone keeps its databases under
//! `~/.local/share/linphone` and refuses to start its SIP stack when that directory is
//! missing), and it takes commands on its stdin: `soundcard use files` (no sound card: it
//! plays `play FILE` as its microphone and writes what it receives to `record FILE`),
//! `autoanswer enable`, `call`, `terminate`, `quit`. Its console output (flushed line by
//! line) says when a call connects or fails. When a test fails, the console's last lines and
//! the SIP responses in linphone's log (`-d 6`) are printed.
//!
//! linphone's INVITE with its default codecs and its credentials is about 1290 bytes, more
//! than 1300 with the proxy's Via and Record-Route: the proxy sends it over TCP (RFC 3261
//! section 18.1.1), which the ATA does not listen on, and must then send it over UDP after
//! all. A proxy that answers 503 instead fails `linphone_calls_an_ata...`, saying so.
//!
//! Without `linphonec` installed the tests print `skipped: linphonec not installed` locally
//! and fail in CI (`tool_available`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::softphone::{render, Console, Softphone, SoftphoneLab, ATA_USER, WAIT};
use dialtone_e2e::tone::sine;
use dialtone_e2e::{
    ata_line_command, data, tool_available, wait_for_line, wait_until, write_wav_8k,
};

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");
const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const LINPHONE_USER: &str = "7100";
const LINPHONE_PASSWORD: &str = "linphone-7100-secret";
const LINPHONE_TONE: f64 = 700.0;
/// Received audio linphone must have recorded before hanging up: a WAV header and 1 s.
const LINPHONE_HEARD_BYTES: u64 = 44 + 8000 * 2;

/// One linphonec with its directory and command line (its stdin).
struct Linphone {
    console: Console,
    recording: PathBuf,
}

impl Softphone for Linphone {
    const NAME: &'static str = "linphone";
    const USER: &'static str = LINPHONE_USER;
    const PASSWORD: &'static str = LINPHONE_PASSWORD;
    const TONE: f64 = LINPHONE_TONE;

    /// Starts linphonec as 7100 in `root/linphone`, registering with `proxy`, playing its tone,
    /// recording what it receives, answering calls by itself.
    fn start(root: &Path, proxy: SocketAddr) -> Linphone {
        let dir = root.join("linphone");
        let home = dir.join("home");
        std::fs::create_dir_all(home.join(".local/share/linphone")).expect("linphone home");
        let microphone = dir.join("microphone.wav");
        // 30 s, longer than any call here.
        write_wav_8k(&microphone, &sine(LINPHONE_TONE, 30));
        let recording = dir.join("received.wav");
        let template = std::fs::read_to_string(data("interop/linphonerc")).expect("linphonerc");
        let proxy_text = proxy.to_string();
        let domain = proxy.ip().to_string();
        let config = render(
            &template,
            &[
                ("PROXY", &proxy_text),
                ("USER", LINPHONE_USER),
                ("DOMAIN", &domain),
                ("PASSWORD", LINPHONE_PASSWORD),
            ],
        );
        let rc = dir.join("linphonerc");
        std::fs::write(&rc, config).expect("linphonerc");
        let mut command = Command::new("linphonec");
        command
            .arg("-c")
            .arg(&rc)
            .args(["-d", "6", "-l"])
            .arg(dir.join("linphone.log"))
            .env("HOME", &home);
        let console = Console::start(
            "linphonec",
            command,
            &dir,
            "linphonec.out",
            "linphone.log",
            |line| line.contains("suitable soundcard"),
        );
        let mut linphone = Linphone { console, recording };
        linphone.console.command("soundcard use files");
        linphone
            .console
            .command(&format!("play {}", microphone.display()));
        let record = format!("record {}", linphone.recording.display());
        linphone.console.command(&record);
        linphone.console.command("autoanswer enable");
        linphone.console.wait_for_output("Auto answer enabled");
        linphone
    }

    fn console(&self) -> &Console {
        &self.console
    }

    /// linphone's recording of the ATA grows (linphone writes it as the call goes).
    fn wait_for_heard_audio(&self) {
        let recorded = wait_until(WAIT, || self.recorded_bytes() >= LINPHONE_HEARD_BYTES);
        assert!(
            recorded,
            "linphone recorded {} bytes of the call",
            self.recorded_bytes()
        );
    }

    /// What linphone received, once the call has ended and linphone has written the WAV
    /// header (zeros until then). Its data chunk claims 44 bytes more than the file holds
    /// (linphone 5.1 counts its header in it), so reading stops where the samples do.
    fn received_audio(&self) -> Vec<i16> {
        let mut samples = Vec::new();
        let complete = wait_until(WAIT, || {
            samples = hound::WavReader::open(&self.recording)
                .ok()
                .map(|reader| {
                    let spec = reader.spec();
                    assert_eq!(
                        (spec.sample_rate, spec.channels),
                        (8000, 1),
                        "linphone's recording of a G.711 call"
                    );
                    reader.into_samples::<i16>().map_while(Result::ok).collect()
                })
                .unwrap_or_default();
            samples.len() >= 8000
        });
        assert!(complete, "linphone closed no recording");
        samples
    }
}

impl Linphone {
    /// The recording's size on disk.
    fn recorded_bytes(&self) -> u64 {
        std::fs::metadata(&self.recording).map_or(0, |m| m.len())
    }
}

/// The proxy, the ATA and linphone (7100), both registered after answering the proxy's
/// challenge.
fn start_lab() -> SoftphoneLab<Linphone> {
    SoftphoneLab::start(PROXY, ATA)
}

#[test]
fn an_ata_calls_linphone_through_the_proxy_with_two_way_audio() {
    if !tool_available("linphonec") {
        return;
    }
    let lab = start_lab();
    ata_line_command(
        lab.ata.control,
        1,
        CtlCommand::Dial(format!("{LINPHONE_USER}#")),
    );
    let status = wait_for_line(lab.ata.control, 1, "linphone answered the ATA", |s| {
        s.state == "connected"
    });
    lab.assert_connected(&status, "outgoing");
    lab.phone
        .console
        .wait_for_output("Media streams established");
    lab.wait_for_media_both_ways();
    ata_line_command(lab.ata.control, 1, CtlCommand::OnHook);
    lab.phone.console.wait_for_output("ended");
    wait_for_line(lab.ata.control, 1, "the ATA idle after hanging up", |s| {
        s.state == "idle" && s.call.is_none()
    });
    lab.assert_two_way_audio();
}

#[test]
fn linphone_calls_an_ata_through_the_proxy_with_two_way_audio() {
    if !tool_available("linphonec") {
        return;
    }
    let mut lab = start_lab();
    lab.phone
        .console
        .command(&format!("call sip:{ATA_USER}@{}", lab.proxy.sip));
    // Until the ATA answers, a failed call shows on linphone's console at once.
    let mut status = None;
    let mut failed = false;
    let settled = wait_until(WAIT, || {
        failed = lab.phone.console.output().contains(" error.");
        let now = lab.ata_status();
        // The line shows "connected" when it answers; the codec follows once the call
        // reports its media started.
        let connected =
            now.state == "connected" && now.call.as_ref().is_some_and(|c| c.codec.is_some());
        status = Some(now);
        connected || failed
    });
    let responses = lab.phone.console.responses_received();
    let hint = if responses.iter().any(|r| r.starts_with("SIP/2.0 503")) {
        " (a 503 from the proxy here: it sent the INVITE, over 1300 bytes, over TCP to an \
         ATA that listens on UDP only, and did not go back to UDP when the connection was \
         refused)"
    } else {
        ""
    };
    assert!(
        settled && !failed,
        "linphone's call to the ATA failed{}{hint}: linphone received {responses:?}, the ATA \
         is {status:?}",
        if failed { "" } else { " to connect in time" },
    );
    let status = status.unwrap_or_else(|| unreachable!());
    lab.assert_connected(&status, "incoming");
    lab.phone
        .console
        .wait_for_output("Media streams established");
    lab.wait_for_media_both_ways();
    lab.phone.console.command("terminate");
    wait_for_line(
        lab.ata.control,
        1,
        "the ATA idle after linphone's BYE",
        |s| s.state == "idle" && s.call.is_none(),
    );
    lab.phone.console.wait_for_output("ended");
    lab.assert_two_way_audio();
}
