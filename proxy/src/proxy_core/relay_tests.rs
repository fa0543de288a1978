//! What a relayed response looks like upstream (RFC 3261 section 16.7 step 3): the branch's
//! response without the proxy's Via, every other header as it came, whichever way it goes up
//! (at once, chosen as the best final, or statelessly when no transaction awaits a 2xx).

use super::tests::{answer, forward_to_registered_b, sends};
use super::*;

const INVITE: &[u8] = b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKr2;rport\r\nMax-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>\r\nCall-ID: r2\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.2:5062>\r\nContent-Length: 0\r\n\r\n";

/// The responses `status_lines` of the callee, in turn, to a proxied INVITE; with what went
/// upstream for each, and the INVITE as forwarded.
fn relayed(status_lines: &[&str]) -> (Bytes, Vec<Vec<(Destination, Bytes)>>) {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let (core, callee, forwarded) = forward_to_registered_b(now, wall, INVITE);
    let upstream = status_lines
        .iter()
        .map(|status| {
            let response = answer(
                &forwarded,
                status,
                "b",
                &["Contact: <sip:b@127.0.0.3:5063>"],
            );
            sends(&core.handle_message(now, wall, callee, response))
        })
        .collect();
    (forwarded, upstream)
}

/// The response as the callee sent it, less its first Via line (ours).
fn without_first_via(response: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(response).unwrap();
    let mut lines: Vec<&str> = text.split("\r\n").collect();
    let ours = lines.iter().position(|l| l.starts_with("Via:")).unwrap();
    lines.remove(ours);
    lines.join("\r\n").into_bytes()
}

#[test]
fn a_provisional_and_a_2xx_go_up_at_once_without_our_via_and_otherwise_as_they_came() {
    let (forwarded, upstream) = relayed(&["180 Ringing", "200 OK"]);
    for (sent, status) in upstream.iter().zip(["180 Ringing", "200 OK"]) {
        assert_eq!(sent.len(), 1, "{status}: {sent:?}");
        let (to, bytes) = &sent[0];
        assert_eq!(to.addr, "127.0.0.2:5062".parse().unwrap());
        let callee_sent = answer(
            &forwarded,
            status,
            "b",
            &["Contact: <sip:b@127.0.0.3:5063>"],
        );
        assert_eq!(
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&without_first_via(&callee_sent)),
            "{status}"
        );
        let message = Message::parse(bytes).unwrap();
        assert_eq!(message.vias().count(), 1, "{status}");
        assert_eq!(message.top_via().unwrap().host, "127.0.0.2");
    }
}

#[test]
fn a_final_chosen_as_the_best_goes_up_without_our_via_too() {
    let (forwarded, upstream) = relayed(&["486 Busy Here"]);
    let busy: Vec<_> = upstream[0]
        .iter()
        .filter(|(_, b)| b.starts_with(b"SIP/2.0 486"))
        .collect();
    assert_eq!(busy.len(), 1, "{upstream:?}");
    let callee_sent = answer(
        &forwarded,
        "486 Busy Here",
        "b",
        &["Contact: <sip:b@127.0.0.3:5063>"],
    );
    assert_eq!(
        String::from_utf8_lossy(&busy[0].1),
        String::from_utf8_lossy(&without_first_via(&callee_sent))
    );
}

#[test]
fn a_2xx_that_no_transaction_awaits_goes_to_the_next_via_without_ours() {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let (core, callee, forwarded) = forward_to_registered_b(now, wall, INVITE);
    let ok = answer(
        &forwarded,
        "200 OK",
        "b",
        &["Contact: <sip:b@127.0.0.3:5063>"],
    );
    // Our branch replaced by one the proxy never sent: no transaction takes the 2xx.
    let text = String::from_utf8(ok.to_vec()).unwrap();
    let ours = Message::parse(&ok).unwrap().top_via().unwrap();
    let branch = ours.branch().unwrap().to_string();
    let stray = Bytes::from(text.replacen(&branch, "z9hG4bKgone", 1));
    let sent = sends(&core.handle_message(now, wall, callee, stray.clone()));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0.addr, "127.0.0.2:5062".parse().unwrap());
    assert_eq!(
        String::from_utf8_lossy(&sent[0].1),
        String::from_utf8_lossy(&without_first_via(&stray))
    );
}
