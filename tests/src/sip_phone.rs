//! A phone played with a plain UDP socket, for tests about what the proxy reports (metrics,
//! traces, its web pages) rather than how it answers each message: it registers, asks
//! OPTIONS, and places or answers a whole call through the proxy (figure D-3 without the
//! ATAs), skipping provisional responses and retransmissions. Tests that check each message
//! the proxy sends use [`crate::sip_client`] instead.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// One SIP user agent on a loopback UDP socket, talking to `proxy`.
pub struct SipPeer {
    pub socket: UdpSocket,
    pub addr: SocketAddr,
    pub proxy: SocketAddr,
    pub user: String,
}

impl SipPeer {
    /// A peer for `user` on a free loopback port.
    pub fn new(proxy: SocketAddr, user: &str) -> SipPeer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let addr = socket.local_addr().expect("local addr");
        SipPeer {
            socket,
            addr,
            proxy,
            user: user.to_string(),
        }
    }

    /// Sends a message to the proxy.
    pub fn send(&self, text: &str) {
        self.socket
            .send_to(text.as_bytes(), self.proxy)
            .expect("send");
    }

    /// Responses go back to the proxy (the top Via is its own).
    pub fn send_to_proxy(&self, text: &str) {
        self.send(text);
    }

    /// Waits (up to 5 s) for a message whose first line starts with `prefix`, skipping others
    /// (provisional responses, retransmissions).
    pub fn expect(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = vec![0u8; 65_535];
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.socket.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.starts_with(prefix) {
                    return text;
                }
                seen.push(text.lines().next().unwrap_or("").to_string());
            }
        }
        panic!("{}: no `{prefix}` within 5 s (saw {seen:?})", self.user);
    }

    /// The Via header for a new request with `branch`.
    fn via(&self, branch: &str) -> String {
        format!(
            "Via: SIP/2.0/UDP {};branch=z9hG4bK{branch};rport",
            self.addr
        )
    }

    /// REGISTER `user` at the proxy (no auth) and wait for the 200.
    pub fn register(&self) {
        let call_id = format!("reg-{}-{}", self.user, self.addr.port());
        self.send(&format!(
            "REGISTER sip:{proxy} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=r{port}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{addr}>;expires=600\r\nContent-Length: 0\r\n\r\n",
            proxy = self.proxy,
            via = self.via(&format!("reg{}", self.addr.port())),
            user = self.user,
            port = self.addr.port(),
            addr = self.addr,
        ));
        self.expect("SIP/2.0 200");
    }

    /// OPTIONS to the proxy itself; returns its answer.
    pub fn options(&self) -> String {
        self.send(&format!(
            "OPTIONS sip:{proxy} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=o1\r\nTo: <sip:{proxy}>\r\nCall-ID: options-{port}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            proxy = self.proxy,
            via = self.via(&format!("opt{}", self.addr.port())),
            user = self.user,
            port = self.addr.port(),
        ));
        self.expect("SIP/2.0 ")
    }
}

/// The values of every `name:` header line of `message`, in order.
pub fn headers<'m>(message: &'m str, name: &str) -> Vec<&'m str> {
    message
        .split("\r\n")
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

/// A response to `request`: its Vias, From, Call-ID and CSeq, the To with `to_tag`.
pub fn response(request: &str, status: &str, to_tag: &str, contact: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for via in headers(request, "Via") {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    for name in ["Record-Route"] {
        for v in headers(request, name) {
            out.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    out.push_str(&format!("From: {}\r\n", headers(request, "From")[0]));
    let to = headers(request, "To")[0];
    if to.contains("tag=") {
        out.push_str(&format!("To: {to}\r\n"));
    } else {
        out.push_str(&format!("To: {to};tag={to_tag}\r\n"));
    }
    out.push_str(&format!("Call-ID: {}\r\n", headers(request, "Call-ID")[0]));
    out.push_str(&format!("CSeq: {}\r\n", headers(request, "CSeq")[0]));
    out.push_str(&format!(
        "Contact: <{contact}>\r\nContent-Length: 0\r\n\r\n"
    ));
    out
}

/// A places a call to B's user through the proxy, B rings and answers, A acknowledges and
/// hangs up, B confirms (figure D-3). Returns the Call-ID.
pub fn call(a: &SipPeer, b: &SipPeer, call_id: &str) -> String {
    let a_contact = format!("sip:{}@{}", a.user, a.addr);
    let b_contact = format!("sip:{}@{}", b.user, b.addr);
    let from = format!("<sip:{}@127.0.0.1>;tag=a{}", a.user, a.addr.port());
    a.send(&format!(
        "INVITE sip:{buser}@127.0.0.1 SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: <sip:{buser}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <{a_contact}>\r\nContent-Length: 0\r\n\r\n",
        buser = b.user,
        via = a.via("inv1"),
    ));
    a.expect("SIP/2.0 100");
    let invite = b.expect("INVITE ");
    b.send_to_proxy(&response(&invite, "180 Ringing", "b1", &b_contact));
    a.expect("SIP/2.0 180");
    b.send_to_proxy(&response(&invite, "200 OK", "b1", &b_contact));
    let ok = a.expect("SIP/2.0 200");
    // The route set is the Record-Route of the 2xx, in order (RFC 3261 section 12.1.2).
    let routes: String = headers(&ok, "Record-Route")
        .iter()
        .map(|r| format!("Route: {r}\r\n"))
        .collect();
    let to = headers(&ok, "To")[0].to_string();
    a.send(&format!(
        "ACK {b_contact} SIP/2.0\r\n{via}\r\n{routes}Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        via = a.via("ack1"),
    ));
    b.expect("ACK ");
    a.send(&format!(
        "BYE {b_contact} SIP/2.0\r\n{via}\r\n{routes}Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        via = a.via("bye1"),
    ));
    let bye = b.expect("BYE ");
    b.send_to_proxy(&response(&bye, "200 OK", "b1", &b_contact));
    a.expect("SIP/2.0 200");
    call_id.to_string()
}
