//! End-to-end message waiting at the ATA (RFC 3842 over RFC 6665), with test UDP peers in the
//! voicemail server's place, so that nothing depends on the proxy's notifier:
//!
//! - unsolicited: a NOTIFY `Event: message-summary` outside any dialog, as voicemail servers
//!   send to Cisco ATAs, is answered 200, the line's status shows the counts and off-hook
//!   plays stutter dial tone; a `Messages-Waiting: no` clears it;
//! - subscribed: with `mwi_server` naming a test peer, each registering line SUBSCRIBEs to
//!   its own address for message-summary; the peer accepts, NOTIFYs in the dialog, and the
//!   line shows the counts; on SIGTERM the ATA ends the subscription with `Expires: 0`.

use std::time::Duration;

use dialtone_ata::ctl::CtlCommand;
use dialtone_ata::line::LineStatus;
use dialtone_e2e::sip_client::{Msg, UdpPeer};
use dialtone_e2e::sip_message::{fix_content_length, request, respond_like};
use dialtone_e2e::{ata_line_command, ata_metric, start_ata, wait_for_line, wait_until};

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

fn status(control: std::net::SocketAddr) -> LineStatus {
    ata_line_command(control, 1, CtlCommand::Status)
}

/// Waits (1 s at most) until line 1 shows `(waiting, new, old)`.
fn expect_mwi_within_a_second(control: std::net::SocketAddr, want: (bool, u32, u32)) {
    let shows = |s: &LineStatus| (s.mwi.waiting, s.mwi.new, s.mwi.old) == want;
    let shown = wait_until(Duration::from_secs(1), || shows(&status(control)));
    assert!(
        shown,
        "mwi never showed {want:?}: {:?}",
        status(control).mwi
    );
}

/// The dial tone line 1 plays when lifted (then put down again).
fn dial_tone(control: std::net::SocketAddr) -> Option<String> {
    let lifted = ata_line_command(control, 1, CtlCommand::OffHook);
    ata_line_command(control, 1, CtlCommand::OnHook);
    lifted.tone
}

/// An unsolicited message-summary NOTIFY for user 8000 at `ata`, from `peer`.
fn unsolicited_notify(peer: &UdpPeer, ata: std::net::SocketAddr, cseq: u32, body: &str) -> String {
    let uri = format!("sip:8000@{ata}");
    let extra = [
        "Event: message-summary".to_string(),
        "Subscription-State: active".to_string(),
        "Content-Type: application/simple-message-summary".to_string(),
    ];
    request(
        "NOTIFY",
        &uri,
        &peer.hostport(),
        "UDP",
        "voicemail",
        &uri,
        &format!("mwi-{cseq}@{}", peer.hostport()),
        cseq,
        &extra,
        body,
    )
}

#[test]
fn an_unsolicited_message_summary_notify_sets_and_clears_stutter_dial_tone() {
    let ata = start_ata(ATA, &["--line", "8000:secret", "--register-interval", "0"]);
    let mut voicemail = UdpPeer::bind("127.0.0.1", ata.sip);
    assert_eq!(dial_tone(ata.control).as_deref(), Some("dial"));

    let waiting = "Messages-Waiting: yes\r\nMessage-Account: sip:8000@lab\r\n\
                   Voice-Message: 3/1 (0/0)\r\n";
    voicemail.send(unsolicited_notify(&voicemail, ata.sip, 1, waiting).as_bytes());
    voicemail.expect_status(200, "the unsolicited NOTIFY answered");
    expect_mwi_within_a_second(ata.control, (true, 3, 1));
    assert_eq!(dial_tone(ata.control).as_deref(), Some("stutter-dial"));
    assert_eq!(
        ata_metric(
            ata.control,
            "dialtone_ata_voice_messages{kind=\"new\",line=\"8000\"}"
        ),
        3.0
    );

    let none = "Messages-Waiting: no\r\nVoice-Message: 0/4 (0/0)\r\n";
    voicemail.send(unsolicited_notify(&voicemail, ata.sip, 2, none).as_bytes());
    voicemail.expect_status(200, "the clearing NOTIFY answered");
    expect_mwi_within_a_second(ata.control, (false, 0, 4));
    assert_eq!(dial_tone(ata.control).as_deref(), Some("dial"));
}

#[test]
fn an_unsolicited_notify_of_another_event_package_is_refused_489() {
    let ata = start_ata(ATA, &["--line", "8000:secret", "--register-interval", "0"]);
    let mut peer = UdpPeer::bind("127.0.0.1", ata.sip);
    let notify = unsolicited_notify(&peer, ata.sip, 1, "")
        .replace("Event: message-summary", "Event: presence");
    peer.send(notify.as_bytes());
    peer.expect_status(489, "a package the ATA does not know");
}

/// The notifier's side of the dialog the ATA's SUBSCRIBE `subscribe` made, with To tag
/// `tag`: an in-dialog NOTIFY carrying `body`.
fn in_dialog_notify(
    notifier: &UdpPeer,
    subscribe: &Msg,
    tag: &str,
    cseq: u32,
    body: &str,
) -> String {
    let target = subscribe
        .header("contact")
        .expect("the SUBSCRIBE's Contact")
        .trim_matches(|c| c == '<' || c == '>')
        .to_string();
    let to = subscribe.header("to").expect("To");
    let from = subscribe.header("from").expect("From");
    let call_id = subscribe.header("call-id").expect("Call-ID");
    fix_content_length(&format!(
        "NOTIFY {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bKmwi{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: {to};tag={tag}\r\n\
         To: {from}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} NOTIFY\r\n\
         Contact: <sip:8000@{me}>\r\n\
         Event: message-summary\r\n\
         Subscription-State: active;expires=60\r\n\
         Content-Type: application/simple-message-summary\r\n\
         Content-Length: 0\r\n\r\n{body}",
        me = notifier.hostport()
    ))
}

#[test]
fn a_registering_line_subscribes_to_its_mwi_server_and_shows_the_notified_counts() {
    let mut notifier = UdpPeer::bind("127.0.0.1", "127.0.0.1:9".parse().expect("addr"));
    // The registrar is a peer that never answers: the subscription does not wait for it.
    let registrar = UdpPeer::bind("127.0.0.1", notifier.addr());
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("ata.toml");
    let config = format!(
        "proxy = \"{}\"\nmwi_server = \"{}\"\nregister_interval = 300\n\
         [[line]]\nuser = \"8000\"\npassword = \"secret\"\n",
        registrar.hostport(),
        notifier.hostport()
    );
    std::fs::write(&file, config).expect("config written");
    let mut ata = start_ata(ATA, &["--config", file.to_str().expect("utf8")]);

    let subscribe = notifier.expect_request("SUBSCRIBE", "the line's SUBSCRIBE");
    let uri = subscribe.request_uri().expect("a Request-URI");
    assert!(uri.starts_with("sip:8000@"), "{uri}");
    assert_eq!(
        subscribe.header("event").as_deref(),
        Some("message-summary")
    );
    assert_eq!(
        subscribe.header("accept").as_deref(),
        Some("application/simple-message-summary")
    );
    assert_eq!(subscribe.header("expires").as_deref(), Some("3600"));
    assert!(subscribe.tag("from").is_some() && subscribe.tag("to").is_none());
    let ok = format!(
        "SIP/2.0 200 OK\r\nContact: <sip:8000@{}>\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n",
        notifier.hostport()
    );
    notifier.send_to(
        respond_like(&ok, &subscribe, Some("vm1")).as_bytes(),
        subscribe.from,
    );

    let body = "Messages-Waiting: yes\r\nVoice-Message: 2/0 (0/0)\r\n";
    let notify = in_dialog_notify(&notifier, &subscribe, "vm1", 1, body);
    notifier.send_to(notify.as_bytes(), subscribe.from);
    notifier.expect_status(200, "the in-dialog NOTIFY answered");
    let shown = wait_for_line(ata.control, 1, "the notified counts", |s| s.mwi.new == 2);
    assert!(shown.mwi.waiting);

    // A NOTIFY of a dialog the ATA does not have is refused (RFC 6665 4.1.2.4 via 481).
    let stray = in_dialog_notify(&notifier, &subscribe, "vm1", 2, body).replace(
        &subscribe.header("call-id").expect("Call-ID"),
        "another@call",
    );
    notifier.send_to(stray.as_bytes(), subscribe.from);
    notifier.expect_status(481, "a NOTIFY of no known subscription");

    // SIGTERM: the ATA ends the subscription in its dialog before it exits.
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &ata.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    let unsubscribe = notifier.expect_request("SUBSCRIBE", "the unsubscription");
    assert_eq!(unsubscribe.header("expires").as_deref(), Some("0"));
    assert_eq!(unsubscribe.tag("to").as_deref(), Some("vm1"));
    assert_eq!(unsubscribe.header("call-id"), subscribe.header("call-id"));
    let done = respond_like(&ok.replace("Expires: 60", "Expires: 0"), &unsubscribe, None);
    notifier.send_to(done.as_bytes(), unsubscribe.from);
    let exited = wait_until(Duration::from_secs(5), || {
        matches!(ata.child.try_wait(), Ok(Some(_)))
    });
    assert!(exited, "the ATA exits after unsubscribing");
}
