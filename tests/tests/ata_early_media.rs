//! Early media: the far end answers the ATA's INVITE with `183 Session Progress` and an SDP
//! answer, then streams audio before the 200. The ATA plays that audio in the earpiece instead
//! of its local ringback (RFC 3960 section 3), and the 200 then connects the call.
//!
//! The far end is a small scripted UAS in the test (a UDP socket for SIP, one for RTP).

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::{ata_line_command, read_recording, start_ata, wait_for_line};
use dialtone_media::g711::linear_to_ulaw;
use dialtone_media::{tone_amplitude, RtpSender};
use dialtone_sip::{Message, ResponseBuilder};

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

/// The far end's tone (distinct from the ringback frequencies 440 and 480 Hz).
const FAR_END_HZ: f64 = 1200.0;

fn recv_request(socket: &UdpSocket, method: &str) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 65_535];
    for _ in 0..50 {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let bytes = buf[..n].to_vec();
        if Message::parse(&bytes)
            .ok()
            .and_then(|m| m.method().map(|x| x.as_str() == method))
            == Some(true)
        {
            return (bytes, from);
        }
    }
    panic!("no {method} arrived");
}

/// 20 ms frames of the far end's tone, as PCMU RTP, to `to`.
fn send_tone(
    rtp: &UdpSocket,
    sender: &mut RtpSender,
    to: SocketAddr,
    frames: usize,
    start: &mut u64,
) {
    for _ in 0..frames {
        let payload: Vec<u8> = (0..160u64)
            .map(|i| {
                let t = (*start + i) as f64 / 8000.0;
                linear_to_ulaw(
                    (8000.0 * (2.0 * std::f64::consts::PI * FAR_END_HZ * t).sin()) as i16,
                )
            })
            .collect();
        *start += 160;
        let _ = rtp.send_to(&sender.audio_frame(&payload), to);
        // The media clock: one 20 ms frame every 20 ms, as a real sender does.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_183_with_sdp_plays_the_far_ends_audio_instead_of_ringback() {
    let sip = UdpSocket::bind("127.0.0.1:0").expect("sip socket");
    sip.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("rtp socket");
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("a.wav");
    let sip_addr = sip.local_addr().expect("addr");
    let a = start_ata(
        ATA,
        &[
            "--line",
            "8000:secret",
            "--register-interval",
            "0",
            "--proxy",
            &sip_addr.to_string(),
            "--audio-in",
            "silence",
            "--audio-out",
            wav.to_str().expect("utf8"),
        ],
    );
    ata_line_command(a.control, 1, CtlCommand::Dial("9000#".into()));

    let (invite_bytes, ata_sip) = recv_request(&sip, "INVITE");
    let invite = Message::parse(&invite_bytes).expect("INVITE parses");
    let offer = dialtone_sdp::parse_bytes(invite.body()).expect("an SDP offer");
    let audio = offer.media.first().expect("an audio m= line");
    let ata_rtp: SocketAddr = format!("127.0.0.1:{}", audio.port).parse().expect("addr");
    let rtp_port = rtp.local_addr().expect("addr").port();
    let answer = format!(
        "v=0\r\no=far 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    );
    let respond = |status: u16, reason: &str| {
        let bytes = ResponseBuilder::for_request(&invite, status, reason)
            .to_tag("far")
            .header("Contact", &format!("<sip:9000@{sip_addr}>"))
            .body("application/sdp", answer.as_bytes())
            .build();
        sip.send_to(&bytes, ata_sip).expect("send");
    };

    // 183 with SDP, then 1.2 s of the far end's tone while the call is not yet answered.
    respond(183, "Session Progress");
    let status = wait_for_line(a.control, 1, "early media", |s| {
        // Media flows (the call status says so) while the line still rings back, silently.
        s.call.as_ref().is_some_and(|c| c.connected) && s.state == "ringback" && s.tone.is_none()
    });
    assert!(
        status.tone.is_none(),
        "no local ringback during early media: {status:?}"
    );
    let mut sender = RtpSender::with_seed(0, 160, 7);
    let mut clock = 0u64;
    send_tone(&rtp, &mut sender, ata_rtp, 60, &mut clock);

    // The 200 connects the call; the ATA acknowledges it, then hangs up.
    respond(200, "OK");
    recv_request(&sip, "ACK");
    wait_for_line(a.control, 1, "connected", |s| s.state == "connected");
    ata_line_command(a.control, 1, CtlCommand::OnHook);
    let (bye, from) = recv_request(&sip, "BYE");
    let bye = Message::parse(&bye).expect("BYE parses");
    let ok = ResponseBuilder::for_request(&bye, 200, "OK").build();
    sip.send_to(&ok, from).expect("send");
    wait_for_line(a.control, 1, "idle", |s| s.call.is_none());

    let heard = read_recording(&wav);
    let far_end = tone_amplitude(&heard, FAR_END_HZ, 8000);
    let ringback = tone_amplitude(&heard, 440.0, 8000);
    assert!(
        far_end > 500.0,
        "the far end's early media was not heard: {far_end}"
    );
    assert!(
        far_end > 5.0 * ringback,
        "early media should replace ringback: {far_end} at {FAR_END_HZ} Hz vs {ringback} at 440 Hz"
    );
}
