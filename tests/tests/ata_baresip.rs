//! Interop: a `dialtone-ata` line (8000) and baresip (7000) register with `dialtone-proxy`
//! (no auth) and call each other through it, in both directions. baresip runs headless from
//! a temporary config directory: its microphone is a WAV file (`aufile`, a 1200 Hz tone), what
//! it receives is dumped to `*-dec.wav` by the `sndfile` filter (baresip 1.0's `aufile` has no
//! player), it answers by itself (`answermode=auto`), and it takes `/dial` and `/hangup` as
//! UDP datagrams on its `cons` console. The ATA plays 1000 Hz. Each side's received audio
//! must carry the other's tone (Goertzel), and baresip must log `Call established`.
//!
//! Without `baresip` installed the test prints `skipped: baresip not installed` locally and
//! fails in CI (`tool_available`).

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::softphone::{start_tone_ata, ATA_TONE};
use dialtone_e2e::tone::sine;
use dialtone_e2e::{
    ata_line_command, free_port, http_get, read_recording, tool_available, wait_for_ata_metric,
    wait_for_line, wait_until, write_wav_8k, AtaProcess, Process, Proxy,
};
use dialtone_media::tone_amplitude;

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");
const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const BARESIP_TONE: f64 = 1200.0;

/// A baresip process with its config directory and console address.
struct Baresip {
    process: Process,
    dir: PathBuf,
    console: SocketAddr,
}

impl Baresip {
    /// Starts baresip as `7000@127.0.0.1`, registering through `proxy`.
    fn start(proxy: SocketAddr, dir: &Path) -> Baresip {
        let sip_port = free_port();
        let console: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let microphone = dir.join("in.wav");
        // 30 s: aufile ends the call when its file ends.
        write_wav_8k(&microphone, &sine(BARESIP_TONE, 30));
        let config = format!(
            "poll_method epoll\n\
             sip_listen 127.0.0.1:{sip_port}\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module aufile.so\n\
             module sndfile.so\n\
             module cons.so\n\
             module_app account.so\n\
             module_app menu.so\n\
             cons_listen {console}\n\
             snd_path {dir}\n\
             audio_source aufile,{mic}\n\
             audio_player aufile,{dir}/unused.wav\n\
             audio_alert aufile,{dir}/unused.wav\n",
            dir = dir.display(),
            mic = microphone.display(),
        );
        std::fs::write(dir.join("config"), config).expect("baresip config");
        let account =
            format!("<sip:7000@127.0.0.1>;outbound=\"sip:{proxy}\";regint=600;answermode=auto\n");
        std::fs::write(dir.join("accounts"), account).expect("baresip accounts");
        let log = std::fs::File::create(dir.join("baresip.log")).expect("log");
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("baresip starts");
        Baresip {
            process: Process::adopt(child, "baresip"),
            dir: dir.to_owned(),
            console,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// Waits for `text` in baresip's output.
    fn wait_for_log(&self, text: &str) {
        let seen = wait_until(Duration::from_secs(10), || self.log().contains(text));
        assert!(seen, "baresip never printed {text:?}:\n{}", self.log());
    }

    /// A console command; the console runs a command when its newline arrives.
    fn command(&self, command: &str) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .send_to(format!("{command}\n").as_bytes(), self.console)
            .expect("console command sent");
    }

    /// What baresip decoded from the call (the sndfile filter's `*-dec.wav`).
    fn received_audio(&self) -> Vec<i16> {
        let find = || {
            std::fs::read_dir(&self.dir)
                .ok()?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        };
        let mut path = None;
        wait_until(Duration::from_secs(5), || {
            path = find();
            path.is_some()
        });
        read_recording(&path.expect("baresip dumped the received audio"))
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        self.process.terminate();
    }
}

/// Dropped in field order: the ATA and baresip stop (and unregister) before the proxy does.
struct Lab {
    ata: AtaProcess,
    baresip: Baresip,
    _proxy: Proxy,
    ata_wav: PathBuf,
    _dir: tempfile::TempDir,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().expect("temp dir");
    let proxy = Proxy::start(PROXY, &["--auth", "none"]);
    let baresip = Baresip::start(proxy.sip, dir.path());
    let ata_wav = dir.path().join("ata.wav");
    let ata = start_tone_ata(ATA, "8000:8000", proxy.sip, &ata_wav);
    wait_for_line(ata.control, 1, "the ATA registered", |s| {
        s.registration == "registered"
    });
    let registered = wait_until(Duration::from_secs(10), || {
        http_get(proxy.http, "/api/registrations").is_some_and(|r| r.contains("7000"))
    });
    assert!(registered, "baresip did not register:\n{}", baresip.log());
    Lab {
        ata,
        baresip,
        _proxy: proxy,
        ata_wav,
        _dir: dir,
    }
}

fn assert_two_way_audio(lab: &Lab) {
    let level = |samples: &[i16], hz: f64| tone_amplitude(samples, hz, 8000);
    let heard_by_ata = read_recording(&lab.ata_wav);
    let (ata_at_baresip, ata_at_own) = (
        level(&heard_by_ata, BARESIP_TONE),
        level(&heard_by_ata, ATA_TONE),
    );
    assert!(
        ata_at_baresip > 5.0 * ata_at_own.max(1.0),
        "the ATA should hear baresip's {BARESIP_TONE} Hz: {ata_at_baresip} vs {ata_at_own}"
    );
    let heard_by_baresip = lab.baresip.received_audio();
    let (baresip_at_ata, baresip_at_own) = (
        level(&heard_by_baresip, ATA_TONE),
        level(&heard_by_baresip, BARESIP_TONE),
    );
    assert!(
        baresip_at_ata > 5.0 * baresip_at_own.max(1.0),
        "baresip should hear the ATA's {ATA_TONE} Hz: {baresip_at_ata} vs {baresip_at_own}"
    );
}

#[test]
fn an_ata_calls_baresip_through_the_proxy_with_two_way_audio() {
    if !tool_available("baresip") {
        return;
    }
    let lab = lab();
    ata_line_command(lab.ata.control, 1, CtlCommand::Dial("7000#".into()));
    wait_for_line(lab.ata.control, 1, "the ATA connected to baresip", |s| {
        s.state == "connected"
    });
    lab.baresip.wait_for_log("Call established");
    wait_for_ata_metric(
        lab.ata.control,
        "dialtone_ata_rtp_packets_received_total",
        75.0,
    );
    ata_line_command(lab.ata.control, 1, CtlCommand::OnHook);
    lab.baresip.wait_for_log("terminated");
    assert_two_way_audio(&lab);
}

#[test]
fn baresip_calls_an_ata_through_the_proxy_with_two_way_audio() {
    if !tool_available("baresip") {
        return;
    }
    let lab = lab();
    lab.baresip.command("/dial sip:8000@127.0.0.1");
    let status = wait_for_line(lab.ata.control, 1, "the ATA answered baresip", |s| {
        s.state == "connected"
    });
    assert_eq!(status.call.expect("a call").direction, "incoming");
    lab.baresip.wait_for_log("Call established");
    wait_for_ata_metric(
        lab.ata.control,
        "dialtone_ata_rtp_packets_received_total",
        75.0,
    );
    lab.baresip.command("/hangup");
    wait_for_line(
        lab.ata.control,
        1,
        "the ATA idle after baresip's BYE",
        |s| s.state == "idle" && s.call.is_none(),
    );
    lab.baresip.wait_for_log("terminated");
    assert_two_way_audio(&lab);
}
