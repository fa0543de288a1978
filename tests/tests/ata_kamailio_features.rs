//! Interop: the ATA's call forward (302 with Diversion) and attended transfer (REFER with
//! Replaces, INVITE with Replaces) through Debian's Kamailio instead of our own proxy
//! (`ata_features.rs`). Three ATAs register without auth at Kamailio running
//! `tests/kamailio/ata-lab.cfg`: A 8000, B 9000, C 7000, each playing its own tone (1000, 1500,
//! 2000 Hz) and recording its earpiece; audio is judged by Goertzel on what each heard
//! during the phase under test ([`dialtone_e2e::recording::Recording`]).
//!
//! What Kamailio sent, and to whom, is read back from its own log
//! ([`dialtone_e2e::kamailio::Kamailio::relayed`]): the cfg's `onsend_route` logs every
//! request just before Kamailio sends it, byte for byte (`$snd(buf)`), with its destination.
//! That is how the tests see that the Diversion reached C, and that the REFER, the INVITE with
//! Replaces and the NOTIFYs went through Kamailio: the ATA does not show the headers it
//! received; a UDP peer standing in for C would prove the header but not that a real ATA
//! answers the forwarded call and talks (the point of the test); a packet capture would need
//! privileges. `$hdr(...)` in `onsend_route` would not do: it reads the request as Kamailio
//! received it, so a header the cfg removed would still be "seen" (tried: with
//! `remove_hf("Diversion")` in the cfg it still logged one; the logged buffer does not).
//!
//! Without Kamailio installed the tests print `skipped: /usr/sbin/kamailio not installed`
//! locally and fail in CI (`tool_available`).

use std::net::SocketAddr;

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::ata_line::{call_state, Line};
use dialtone_e2e::kamailio::{self, Kamailio};
use dialtone_e2e::recording::listen;
use dialtone_e2e::sip_client::Msg;
use dialtone_e2e::tone::assert_hears;
use dialtone_e2e::tool_available;

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

struct Lab {
    kamailio: Kamailio,
    _dir: tempfile::TempDir,
    a: Line,
    b: Line,
    c: Line,
}

/// Kamailio and three ATAs registered at it; `answering` says which of A, B, C answer by
/// themselves. `None` when Kamailio is not installed (outside CI).
fn lab(answering: [bool; 3]) -> Option<Lab> {
    if !tool_available(kamailio::PROGRAM) {
        return None;
    }
    let kamailio = Kamailio::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let start = |user: &str, hz: u32, answers: bool| {
        Line::start(ATA, kamailio.sip, user, hz, answers, dir.path())
    };
    Some(Lab {
        a: start("8000", 1000, answering[0]),
        b: start("9000", 1500, answering[1]),
        c: start("7000", 2000, answering[2]),
        _dir: dir,
        kamailio,
    })
}

impl Lab {
    /// The `method` requests Kamailio sent to `to`, as they went on the wire.
    fn relayed(&self, method: &str, to: SocketAddr) -> Vec<Msg> {
        self.kamailio
            .relayed(to)
            .into_iter()
            .filter(|m| m.method().as_deref() == Some(method))
            .collect()
    }
}

#[test]
fn a_call_forwarded_by_a_302_through_kamailio_reaches_the_target_with_diversion() {
    let Some(lab) = lab([false, false, true]) else {
        return;
    };
    let (a, b, c) = (&lab.a, &lab.b, &lab.c);
    let set = a.command(CtlCommand::Dial("#727000#".into()));
    assert_eq!(set.forward.all.as_deref(), Some("7000"));
    a.command(CtlCommand::OnHook);

    b.command(CtlCommand::Dial("8000#".into()));
    c.wait("C answered B's forwarded call", |s| {
        call_state(s, "9000").as_deref() == Some("connected")
    });
    b.wait("B connected", |s| s.state == "connected");
    let status = a.command(CtlCommand::Status);
    assert!(
        status.calls.is_empty() && status.state == "idle",
        "A redirected the call and keeps none: {status:?}"
    );
    let (b_mark, c_mark) = (b.earpiece.mark(), c.earpiece.mark());
    listen();
    assert_hears("B", &b.earpiece.since(&b_mark), 2000.0);
    assert_hears("C", &c.earpiece.since(&c_mark), 1500.0);

    let to_a = lab.relayed("INVITE", a.ata.sip);
    assert_eq!(to_a.len(), 1, "B's first INVITE went to A");
    assert_eq!(to_a[0].header("Diversion"), None, "{}", to_a[0].text());
    let to_c = lab.relayed("INVITE", c.ata.sip);
    assert_eq!(
        to_c.len(),
        1,
        "B followed the 302 with one INVITE, which Kamailio sent to C"
    );
    let diversion = format!(
        "<sip:8000@{};user=phone>;reason=unconditional;counter=1",
        lab.kamailio.sip.ip()
    );
    assert_eq!(
        to_c[0].header("Diversion").as_deref(),
        Some(diversion.as_str()),
        "C's INVITE names A as the diverter:\n{}",
        to_c[0].text()
    );
    assert_eq!(to_c[0].header("Call-ID"), to_a[0].header("Call-ID"));

    b.command(CtlCommand::OnHook);
    c.wait("C hung up", |s| s.calls.is_empty());
    a.command(CtlCommand::Dial("#73#".into()));
    assert_eq!(a.command(CtlCommand::Status).forward.all, None);
}

#[test]
fn after_an_attended_transfer_through_kamailio_the_far_ends_talk_and_the_transferor_has_no_call() {
    let Some(lab) = lab([false, true, true]) else {
        return;
    };
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

    let refer = lab.relayed("REFER", b.ata.sip);
    assert_eq!(refer.len(), 1, "A's REFER went to B");
    let refer_to = refer[0].header("Refer-To").unwrap_or_default();
    assert!(
        refer_to.starts_with("<sip:7000@") && refer_to.contains("?Replaces="),
        "the REFER names C and the call to replace:\n{}",
        refer[0].text()
    );
    let to_c = lab.relayed("INVITE", c.ata.sip);
    let consultation = to_c
        .iter()
        .find(|m| m.header("From").is_some_and(|f| f.contains("sip:8000@")))
        .and_then(|m| m.header("Call-ID"))
        .expect("A's INVITE went to C");
    let replacing: Vec<&Msg> = to_c
        .iter()
        .filter(|m| m.header("Replaces").is_some())
        .collect();
    assert_eq!(replacing.len(), 1, "B's INVITE with Replaces went to C");
    let replaces = replacing[0].header("Replaces").unwrap_or_default();
    assert!(
        replaces.starts_with(&format!("{consultation};")),
        "B's INVITE replaces A's call to C ({consultation}):\n{}",
        replacing[0].text()
    );
    assert!(
        replacing[0]
            .header("From")
            .is_some_and(|f| f.contains("sip:9000@")),
        "{}",
        replacing[0].text()
    );
    let notifies = lab.relayed("NOTIFY", a.ata.sip);
    let last = notifies
        .last()
        .expect("B reported the transfer's progress to A");
    assert!(
        String::from_utf8_lossy(&last.body()).starts_with("SIP/2.0 200")
            && last
                .header("Subscription-State")
                .is_some_and(|s| s.starts_with("terminated")),
        "B's last NOTIFY says the transfer succeeded:\n{}",
        last.text()
    );
}
