//! The proxy as the lab's message-waiting notifier (RFC 3842 over RFC 6665), through the real
//! binary on loopback: a phone registers and subscribes to its mailbox, `dialtone-proxy ctl
//! mwi` sets the counts, the NOTIFYs arrive in the subscription and unsolicited at the
//! binding, and the counts survive a restart with the same `--data-dir`.

use std::process::Command;

use dialtone_e2e::proxy_api::get_json;
use dialtone_e2e::sip_client::{Msg, UdpPeer};
use dialtone_e2e::Proxy;

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const DOMAIN: &str = "lab.example";

/// `REGISTER` of 9000 at `phone`'s address.
fn register(phone: &UdpPeer) -> String {
    let me = phone.hostport();
    format!("REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKmwireg\r\nMax-Forwards: 70\r\nFrom: <sip:9000@{DOMAIN}>;tag=r\r\nTo: <sip:9000@{DOMAIN}>\r\nCall-ID: mwi-reg\r\nCSeq: 1 REGISTER\r\nContact: <sip:9000@{me}>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n")
}

/// The phone's `SUBSCRIBE` to its own mailbox.
fn subscribe(phone: &UdpPeer) -> String {
    let me = phone.hostport();
    format!("SUBSCRIBE sip:9000@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKmwisub\r\nMax-Forwards: 70\r\nFrom: <sip:9000@{DOMAIN}>;tag=phone\r\nTo: <sip:9000@{DOMAIN}>\r\nCall-ID: mwi-sub\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:9000@{me}>\r\nEvent: message-summary\r\nAccept: application/simple-message-summary\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n")
}

/// A 200 to a received request, echoing its transaction headers.
fn ok_to(request: &Msg) -> String {
    let mut out = "SIP/2.0 200 OK\r\n".to_string();
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for value in request.headers(name) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// The next NOTIFY at `phone`, answered 200.
fn notify(phone: &mut UdpPeer, what: &str) -> Msg {
    let notify = phone.expect_request("NOTIFY", what);
    phone.send(ok_to(&notify).as_bytes());
    notify
}

fn body(message: &Msg) -> String {
    String::from_utf8_lossy(&message.body()).into_owned()
}

/// Runs `dialtone-proxy ctl mwi ARGS` against `proxy`; its standard output.
fn ctl_mwi(proxy: &Proxy, args: &[&str]) -> String {
    let output = Command::new(PROXY)
        .args(["ctl", "--http", &proxy.http.to_string(), "mwi"])
        .args(args)
        .output()
        .expect("run dialtone-proxy ctl");
    assert!(
        output.status.success(),
        "ctl mwi {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_subscribed_phone_hears_of_new_voicemail_and_the_counts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_string();
    let mut proxy = Proxy::start(PROXY, &["--domain", DOMAIN, "--data-dir", &data_dir]);
    let mut phone = UdpPeer::bind("127.0.0.3", proxy.sip);
    phone.send(register(&phone).as_bytes());
    phone.expect_status(200, "200 to REGISTER");

    phone.send(subscribe(&phone).as_bytes());
    let ok = phone.expect_status(200, "200 to SUBSCRIBE");
    assert_eq!(ok.header("Expires").as_deref(), Some("600"));
    let our_tag = ok.tag("To").expect("the notifier's To tag");
    let first = notify(&mut phone, "the first NOTIFY");
    assert_eq!(first.header("Call-ID").as_deref(), Some("mwi-sub"));
    assert_eq!(first.tag("From").as_deref(), Some(our_tag.as_str()));
    assert_eq!(first.header("Event").as_deref(), Some("message-summary"));
    assert!(first
        .header("Subscription-State")
        .is_some_and(|s| s.starts_with("active;expires=")));
    assert_eq!(
        body(&first),
        format!("Messages-Waiting: no\r\nMessage-Account: sip:9000@{DOMAIN}\r\nVoice-Message: 0/0 (0/0)\r\n")
    );

    let printed = ctl_mwi(&proxy, &["9000", "2/1"]);
    assert!(printed.contains("2 new, 1 old"), "{printed}");
    // One NOTIFY in the subscription, one unsolicited to the binding (the same socket here),
    // in either order.
    let notifies = [
        notify(&mut phone, "a NOTIFY after ctl mwi"),
        notify(&mut phone, "the second NOTIFY after ctl mwi"),
    ];
    let expected = format!(
        "Messages-Waiting: yes\r\nMessage-Account: sip:9000@{DOMAIN}\r\nVoice-Message: 2/1 (0/0)\r\n"
    );
    for n in &notifies {
        assert_eq!(body(n), expected, "{}", n.text());
    }
    let in_dialog = notifies
        .iter()
        .find(|n| n.header("Call-ID").as_deref() == Some("mwi-sub"))
        .expect("a NOTIFY in the subscription");
    assert_eq!(in_dialog.cseq().0, 2, "CSeq grows in the dialog");
    let unsolicited = notifies
        .iter()
        .find(|n| n.header("Call-ID").as_deref() != Some("mwi-sub"))
        .expect("an unsolicited NOTIFY to the binding");
    assert!(unsolicited.tag("To").is_none(), "out of any dialog");
    assert_eq!(
        unsolicited.header("Subscription-State").as_deref(),
        Some("active")
    );

    // An orderly restart on the same data directory keeps the counts.
    let (sip, http, args) = (proxy.sip, proxy.http, proxy.args.clone());
    proxy.process.terminate();
    let proxy = Proxy::start_with_args(PROXY, sip, http, args);
    let counts = get_json(proxy.http, "/api/mwi/9000");
    assert_eq!(
        (counts["new"].as_u64(), counts["old"].as_u64()),
        (Some(2), Some(1))
    );
    let printed = ctl_mwi(&proxy, &["9000"]);
    assert!(printed.contains("2 new, 1 old"), "{printed}");
    phone.expect_nothing("nothing more for the phone");
}

#[test]
fn ctl_mwi_names_an_unknown_user_and_malformed_counts() {
    let proxy = Proxy::start(PROXY, &["--domain", DOMAIN, "--memory-only"]);
    let run = |args: &[&str]| {
        Command::new(PROXY)
            .args(["ctl", "--http", &proxy.http.to_string(), "mwi"])
            .args(args)
            .output()
            .expect("run dialtone-proxy ctl")
    };
    let unknown = run(&["nobody", "1"]);
    assert!(!unknown.status.success());
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        said.contains("404") && said.contains("unknown user nobody"),
        "{said}"
    );
    let malformed = run(&["nobody", "two"]);
    let said = String::from_utf8_lossy(&malformed.stderr);
    assert!(
        said.contains("400") && said.contains("NEW is not a whole number"),
        "{said}"
    );
}
