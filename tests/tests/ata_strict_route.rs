//! The ATA behind a strict router: the test plays an RFC 2543 proxy like the seed's, whose
//! `Record-Route` has `maddr` and no `lr` (seed figure D-3). The ATA calls through it; the
//! fake proxy answers 200 itself, and the ACK to that 2xx and the BYE that ends the call must
//! both carry the route's URI as Request-URI with its `maddr` kept: RFC 3261 section 12.2.1.1
//! strips only the parameters that table 1 of section 19.1.1 forbids in a Request-URI, and
//! `maddr` is not one of them.
//!
//! The fake proxy is one UDP socket; the callee's Contact names a second one, which must hear
//! nothing, since strict routing sends every in-dialog request to the router.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::{ata_line_command, start_ata, wait_for_line};
use dialtone_sip::{Message, ResponseBuilder};

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

/// How long a request that must come may take.
const WAIT: Duration = Duration::from_secs(5);

/// The next request with `method` on `socket` within [`WAIT`] (retransmissions of earlier
/// requests are skipped); panics naming the method otherwise.
fn recv_request(socket: &UdpSocket, method: &str) -> (Vec<u8>, SocketAddr) {
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < deadline {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let bytes = buf[..n].to_vec();
        let is_it = Message::parse(&bytes)
            .ok()
            .and_then(|m| m.method().map(|x| x.as_str() == method));
        if is_it == Some(true) {
            return (bytes, from);
        }
    }
    panic!("no {method} arrived at {:?}", socket.local_addr());
}

fn request_uri(bytes: &[u8]) -> String {
    Message::parse(bytes)
        .expect("the request parses")
        .request_uri()
        .expect("a Request-URI")
        .as_str()
        .to_owned()
}

fn routes(bytes: &[u8]) -> Vec<String> {
    let message = Message::parse(bytes).expect("the request parses");
    message
        .values(dialtone_sip::HeaderName::Route)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_ack_and_the_bye_through_a_strict_router_keep_the_maddr_of_its_uri() {
    let proxy = UdpSocket::bind("127.0.0.1:0").expect("the fake proxy's socket");
    proxy
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok();
    let callee = UdpSocket::bind("127.0.0.1:0").expect("the callee's socket");
    callee
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok();
    let proxy_addr = proxy.local_addr().expect("addr");
    let callee_addr = callee.local_addr().expect("addr");
    let a = start_ata(
        ATA,
        &[
            "--line",
            "8000:secret",
            "--register-interval",
            "0",
            "--proxy",
            &proxy_addr.to_string(),
            "--audio-in",
            "silence",
        ],
    );
    ata_line_command(a.control, 1, CtlCommand::Dial("9000#".into()));

    let (invite_bytes, ata_sip) = recv_request(&proxy, "INVITE");
    let invite = Message::parse(&invite_bytes).expect("INVITE parses");
    // Seed D-3 message 7: the RFC 2543 proxy's Record-Route, here with loopback addresses.
    let port = proxy_addr.port();
    let record_route = format!("<sip:9000@127.0.0.1:{port};user=phone;maddr=127.0.0.1>");
    let contact = format!("<sip:9000@{callee_addr};user=phone;transport=udp>");
    let answer = "v=0\r\no=far 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                  m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let ok = ResponseBuilder::for_request(&invite, 200, "OK")
        .to_tag("909616993")
        .header("Record-Route", &record_route)
        .header("Contact", &contact)
        .body("application/sdp", answer.as_bytes())
        .build();
    proxy.send_to(&ok, ata_sip).expect("send the 200");

    let (ack, _) = recv_request(&proxy, "ACK");
    wait_for_line(a.control, 1, "connected", |s| s.state == "connected");
    ata_line_command(a.control, 1, CtlCommand::OnHook);
    let (bye_bytes, from) = recv_request(&proxy, "BYE");
    let bye = Message::parse(&bye_bytes).expect("BYE parses");
    proxy
        .send_to(&ResponseBuilder::for_request(&bye, 200, "OK").build(), from)
        .expect("send the BYE's 200");
    wait_for_line(a.control, 1, "idle", |s| s.call.is_none());

    // RFC 3261 12.2.1.1: the strict router's URI is the Request-URI, parameters allowed in
    // a Request-URI kept (maddr among them, 19.1.1 table 1); the remote target is the Route.
    let expected = format!("sip:9000@127.0.0.1:{port};user=phone;maddr=127.0.0.1");
    let expected_route = [contact];
    assert_eq!(
        (request_uri(&ack), request_uri(&bye_bytes)),
        (expected.clone(), expected),
        "the Request-URIs of the ACK and the BYE"
    );
    assert_eq!(routes(&ack), expected_route, "the ACK's Route");
    assert_eq!(routes(&bye_bytes), expected_route, "the BYE's Route");
    let mut buf = [0u8; 2048];
    assert!(
        callee.recv_from(&mut buf).is_err(),
        "strict routing sends nothing to the callee directly"
    );
}
