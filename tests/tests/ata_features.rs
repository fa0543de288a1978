//! End to end, the Cisco ATA features of issue 20 on three ATAs (virtual lines A 8000, B 9000,
//! C 7000, each playing its own tone: 1000, 1500, 2000 Hz, and recording its earpiece) through
//! `dialtone-proxy` with digest auth on every request: call waiting, the three-way conference,
//! attended transfer, call forward with Diversion, and `*67` anonymous calls the proxy still
//! authenticates. Audio is judged by Goertzel on the part of each recording made during the
//! phase under test ([`dialtone_e2e::recording::Recording`]: a mark, then what was heard
//! since). The same features through Kamailio: `ata_kamailio_features.rs`.

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::ata_line::{call_state, Line};
use dialtone_e2e::proxy_api::{calls, traced_message};
use dialtone_e2e::recording::listen;
use dialtone_e2e::tone::{assert_does_not_hear, assert_hears};
use dialtone_e2e::Proxy;
use dialtone_media::tone_amplitude;

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");
const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");

struct Lab {
    proxy: Proxy,
    _dir: tempfile::TempDir,
    a: Line,
    b: Line,
    c: Line,
}

/// The proxy with auth on everything and three registered ATAs; `answering` says which of
/// A, B, C answer by themselves.
fn lab(answering: [bool; 3]) -> Lab {
    let proxy = Proxy::start(
        PROXY,
        &[
            "--domain",
            "lab",
            "--auth",
            "all",
            "--user",
            "8000:pw8000",
            "--user",
            "9000:pw9000",
            "--user",
            "7000:pw7000",
        ],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let start = |user: &str, hz: u32, answers: bool| {
        Line::start(ATA, proxy.sip, user, hz, answers, dir.path())
    };
    Lab {
        a: start("8000", 1000, answering[0]),
        b: start("9000", 1500, answering[1]),
        c: start("7000", 2000, answering[2]),
        _dir: dir,
        proxy,
    }
}

/// The loudest `hz` component in any 100 ms of `samples` (a short beep in a long window).
fn peak_amplitude(samples: &[i16], hz: f64) -> f64 {
    samples
        .chunks(800)
        .map(|chunk| tone_amplitude(chunk, hz, 8000))
        .fold(0.0, f64::max)
}

#[test]
fn call_waiting_rings_through_flash_swaps_and_on_hook_recalls_the_held_call() {
    let lab = lab([false, false, false]);
    let (a, b, c) = (&lab.a, &lab.b, &lab.c);
    b.command(CtlCommand::Dial("8000#".into()));
    a.wait("A rings", |s| s.state == "ringing");
    a.command(CtlCommand::Answer);
    b.wait("B talks to A", |s| s.state == "connected");
    let before_waiting = a.earpiece.mark();

    c.command(CtlCommand::Dial("8000#".into()));
    let waiting = a.wait("C waits at A", |s| {
        call_state(s, "7000").as_deref() == Some("waiting")
    });
    assert_eq!(waiting.tone.as_deref(), Some("call-waiting"));
    assert_eq!(call_state(&waiting, "9000").as_deref(), Some("connected"));
    c.wait("C hears ringback", |s| s.state == "ringback");
    listen();
    let heard = a.earpiece.since(&before_waiting);
    let beep = peak_amplitude(&heard, 440.0);
    assert!(
        beep > 1000.0,
        "the call-waiting tone reaches A's earpiece ({beep:.0})"
    );
    assert_hears("A, while C waits", &heard, 1500.0);

    a.command(CtlCommand::Flash);
    let swapped = a.wait("A talks to C, B held", |s| {
        call_state(s, "7000").as_deref() == Some("connected")
            && call_state(s, "9000").as_deref() == Some("held")
    });
    assert_eq!(swapped.tone, None);
    c.wait("C connected", |s| s.state == "connected");
    let (a_mark, b_mark) = (a.earpiece.mark(), b.earpiece.mark());
    listen();
    let held_heard = b.earpiece.since(&b_mark);
    assert_does_not_hear("B, on hold", &held_heard, 1000.0);
    assert_does_not_hear("B, on hold", &held_heard, 2000.0);
    assert_hears("A, talking to C", &a.earpiece.since(&a_mark), 2000.0);

    a.command(CtlCommand::Flash);
    a.wait("A back with B, C held", |s| {
        call_state(s, "9000").as_deref() == Some("connected")
            && call_state(s, "7000").as_deref() == Some("held")
    });
    a.command(CtlCommand::OnHook);
    b.wait("B hung up", |s| s.state == "disconnected");
    let recalled = a.wait("the held call rings A again", |s| {
        s.state == "ringing" && s.calls.len() == 1
    });
    assert_eq!(call_state(&recalled, "7000").as_deref(), Some("ringing"));
    a.command(CtlCommand::OffHook);
    let resumed = a.wait("A talks to C again", |s| {
        call_state(s, "7000").as_deref() == Some("connected")
    });
    assert_eq!(resumed.state, "connected");
    a.command(CtlCommand::OnHook);
    a.wait("A has no call left", |s| s.calls.is_empty());
}

#[test]
fn in_a_three_way_conference_each_party_hears_both_others() {
    let lab = lab([false, true, true]);
    let (a, b, c) = (&lab.a, &lab.b, &lab.c);
    a.command(CtlCommand::Dial("9000#".into()));
    a.wait("A talks to B", |s| {
        call_state(s, "9000").as_deref() == Some("connected")
    });
    let held = a.command(CtlCommand::Flash);
    assert_eq!(
        held.state, "dialtone",
        "a flash holds B and gives dial tone"
    );
    a.command(CtlCommand::Dial("7000#".into()));
    a.wait("A talks to C", |s| {
        call_state(s, "7000").as_deref() == Some("connected")
    });
    a.command(CtlCommand::Flash);
    let conference = a.wait("a conference", |s| {
        s.calls.iter().filter(|c| c.state == "conference").count() == 2
    });
    assert_eq!(conference.state, "connected");
    let marks = [a.earpiece.mark(), b.earpiece.mark(), c.earpiece.mark()];
    listen();
    let (heard_a, heard_b, heard_c) = (
        a.earpiece.since(&marks[0]),
        b.earpiece.since(&marks[1]),
        c.earpiece.since(&marks[2]),
    );
    assert_hears("A", &heard_a, 1500.0);
    assert_hears("A", &heard_a, 2000.0);
    assert_hears("B", &heard_b, 1000.0);
    assert_hears("B", &heard_b, 2000.0);
    assert_hears("C", &heard_c, 1000.0);
    assert_hears("C", &heard_c, 1500.0);
    assert_does_not_hear("A (itself)", &heard_a, 1000.0);

    a.command(CtlCommand::Flash);
    a.wait("the third flash drops C", |s| {
        call_state(s, "9000").as_deref() == Some("connected") && call_state(s, "7000").is_none()
    });
    c.wait("C hung up", |s| s.calls.is_empty());
    a.command(CtlCommand::OnHook);
    b.wait("B hung up", |s| s.calls.is_empty());
}

#[test]
fn after_an_attended_transfer_the_far_ends_talk_and_the_transferor_has_no_call() {
    let lab = lab([false, true, true]);
    let (a, b, c) = (&lab.a, &lab.b, &lab.c);
    a.command(CtlCommand::Dial("9000#".into()));
    a.wait("A talks to B", |s| {
        call_state(s, "9000").as_deref() == Some("connected")
    });
    a.command(CtlCommand::Flash);
    a.command(CtlCommand::Dial("7000#".into()));
    a.wait("A consults C", |s| {
        call_state(s, "7000").as_deref() == Some("connected")
    });
    a.command(CtlCommand::OnHook);
    let done = a.wait("A has no call left", |s| s.calls.is_empty());
    assert_eq!(done.state, "idle");
    b.wait("B talks to C", |s| {
        call_state(s, "7000").as_deref() == Some("connected") && s.calls.len() == 1
    });
    c.wait("C talks to B", |s| {
        call_state(s, "9000").as_deref() == Some("connected") && s.calls.len() == 1
    });
    let (b_mark, c_mark) = (b.earpiece.mark(), c.earpiece.mark());
    listen();
    assert_hears("B", &b.earpiece.since(&b_mark), 2000.0);
    assert_hears("C", &c.earpiece.since(&c_mark), 1500.0);
}

#[test]
fn a_forwarded_call_reaches_the_target_and_carries_diversion() {
    let lab = lab([false, false, true]);
    let (a, b, c) = (&lab.a, &lab.b, &lab.c);
    let set = a.command(CtlCommand::Dial("#727000#".into()));
    assert_eq!(set.forward.all.as_deref(), Some("7000"));
    assert_eq!(set.tone.as_deref(), Some("stutter-dial"));
    a.command(CtlCommand::OnHook);

    b.command(CtlCommand::Dial("8000#".into()));
    c.wait("C answered B's forwarded call", |s| {
        call_state(s, "9000").as_deref() == Some("connected")
    });
    let status = a.command(CtlCommand::Status);
    assert!(
        status.calls.is_empty() && status.state == "idle",
        "{status:?}"
    );
    let call_id = calls(lab.proxy.http, "active")
        .first()
        .and_then(|c| c["call_id"].as_str().map(str::to_owned))
        .expect("the proxy knows the call");
    let to_c = traced_message(lab.proxy.http, &call_id, "out", "INVITE sip:7000")
        .expect("the proxy sent C an INVITE");
    assert!(
        to_c.contains("Diversion: <sip:8000@") && to_c.contains("reason=unconditional"),
        "C's INVITE:\n{to_c}"
    );
    b.command(CtlCommand::OnHook);
    a.command(CtlCommand::Dial("#73#".into()));
    assert_eq!(a.command(CtlCommand::Status).forward.all, None);
}

#[test]
fn star_67_reaches_the_callee_as_anonymous_while_the_proxy_still_authenticates_it() {
    let lab = lab([false, false, false]);
    let (a, b) = (&lab.a, &lab.b);
    a.command(CtlCommand::Dial("*679000#".into()));
    let ringing = b.wait("B rings", |s| s.state == "ringing");
    let caller = &ringing.calls[0].remote;
    assert_eq!(caller.number, "anonymous", "{ringing:?}");
    b.command(CtlCommand::Answer);
    a.wait("A connected", |s| s.state == "connected");
    let call_id = calls(lab.proxy.http, "active")
        .first()
        .and_then(|c| c["call_id"].as_str().map(str::to_owned))
        .expect("the proxy knows the call");
    let first = traced_message(lab.proxy.http, &call_id, "out", "SIP/2.0 407")
        .expect("the proxy challenged the anonymous INVITE");
    assert!(first.contains("Proxy-Authenticate"), "{first}");
    let to_b =
        traced_message(lab.proxy.http, &call_id, "out", "INVITE sip:9000").expect("forwarded to B");
    assert!(
        to_b.contains("From: \"Anonymous\" <sip:anonymous@anonymous.invalid>"),
        "{to_b}"
    );
    assert!(
        to_b.contains("P-Asserted-Identity: <sip:8000@lab>"),
        "{to_b}"
    );
    a.command(CtlCommand::OnHook);
    b.wait("B hung up", |s| s.state == "disconnected");
    b.command(CtlCommand::OnHook);

    b.command(CtlCommand::Dial("*77".into()));
    b.command(CtlCommand::OnHook);
    a.command(CtlCommand::Dial("*679000#".into()));
    let refused = a.wait("A's anonymous call refused", |s| s.state == "reorder");
    assert_eq!(refused.last_outcome.as_deref(), Some("failed 433"));
    assert_eq!(b.command(CtlCommand::Status).state, "idle", "B never rang");
}

#[test]
fn counts_set_with_ctl_mwi_reach_the_ata_within_a_second_and_the_dial_tone_stutters() {
    let lab = lab([false, false, false]);
    let a = &lab.a;
    let quiet = a.command(CtlCommand::Status);
    assert!(!quiet.mwi.waiting, "{quiet:?}");
    let output = std::process::Command::new(PROXY)
        .args([
            "ctl",
            "--http",
            &lab.proxy.http.to_string(),
            "mwi",
            "8000",
            "2/1",
        ])
        .output()
        .expect("run dialtone-proxy ctl mwi");
    assert!(output.status.success(), "ctl mwi: {output:?}");
    let started = std::time::Instant::now();
    let shown = dialtone_e2e::wait_until(std::time::Duration::from_secs(1), || {
        let mwi = a.command(CtlCommand::Status).mwi;
        mwi.waiting && mwi.new == 2 && mwi.old == 1
    });
    assert!(
        shown,
        "the counts did not reach the ATA within a second ({:?}): {:?}",
        started.elapsed(),
        a.command(CtlCommand::Status).mwi
    );
    let off_hook = a.command(CtlCommand::OffHook);
    assert_eq!(off_hook.tone.as_deref(), Some("stutter-dial"));
    a.command(CtlCommand::OnHook);
}
