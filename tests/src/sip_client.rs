//! SIP test clients on loopback sockets, for tests that write every message themselves and
//! check every one the proxy sends: a UDP peer and a TCP peer that receive with timeouts
//! (skipping byte-identical retransmissions), and [`Msg`], a small text view of what they
//! received. The messages they send are built with [`crate::sip_message`].

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// How long to wait for a message that must come.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long to listen for a message that must not come (a bounded receive, not a sleep).
pub const QUIET: Duration = Duration::from_millis(400);

/// A received SIP message, viewed as text.
#[derive(Clone)]
pub struct Msg {
    pub raw: Vec<u8>,
    pub from: SocketAddr,
}

const COMPACT: &[(&str, &str)] = &[
    ("v", "via"),
    ("f", "from"),
    ("t", "to"),
    ("i", "call-id"),
    ("m", "contact"),
    ("l", "content-length"),
    ("c", "content-type"),
];

impl Msg {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    fn head(&self) -> String {
        let text = self.text();
        text.split("\r\n\r\n").next().unwrap_or("").to_string()
    }

    pub fn first_line(&self) -> String {
        self.head().lines().next().unwrap_or("").to_string()
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        let line = self.first_line();
        let rest = line.strip_prefix("SIP/2.0 ")?;
        rest.get(..3)?.parse().ok()
    }

    /// The method of a request.
    pub fn method(&self) -> Option<String> {
        let line = self.first_line();
        if line.starts_with("SIP/") {
            return None;
        }
        line.split(' ').next().map(str::to_string)
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<String> {
        self.method()?;
        self.first_line().split(' ').nth(1).map(str::to_string)
    }

    /// Every header line's value named `name` (case-insensitive, compact forms too), in order.
    pub fn headers(&self, name: &str) -> Vec<String> {
        let wanted = name.to_ascii_lowercase();
        self.head()
            .split("\r\n")
            .skip(1)
            .filter_map(|line| {
                let (n, v) = line.split_once(':')?;
                let n = n.trim().to_ascii_lowercase();
                let n = COMPACT
                    .iter()
                    .find(|(c, _)| *c == n)
                    .map_or(n.clone(), |(_, full)| full.to_string());
                (n == wanted).then(|| v.trim().to_string())
            })
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    /// The whole header lines named `name`, as received (for copying into a response).
    pub fn header_lines(&self, name: &str) -> Vec<String> {
        let wanted = name.to_ascii_lowercase();
        self.head()
            .split("\r\n")
            .skip(1)
            .filter(|line| {
                line.split_once(':')
                    .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(&wanted))
            })
            .map(str::to_string)
            .collect()
    }

    /// Every Via value, top first (header lines split at commas).
    pub fn vias(&self) -> Vec<String> {
        self.headers("via")
            .iter()
            .flat_map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The `tag` parameter of From or To (outside the angle brackets).
    pub fn tag(&self, header: &str) -> Option<String> {
        let value = self.header(header)?;
        let params = match value.rfind('>') {
            Some(i) => &value[i + 1..],
            None => value.as_str(),
        };
        params.split(';').find_map(|p| {
            let (n, v) = p.split_once('=')?;
            n.trim()
                .eq_ignore_ascii_case("tag")
                .then(|| v.trim().to_string())
        })
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> (u32, String) {
        let value = self.header("cseq").unwrap_or_default();
        let mut parts = value.split_whitespace();
        let seq = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        (seq, parts.next().unwrap_or("").to_string())
    }

    pub fn body(&self) -> Vec<u8> {
        match self.raw.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => self.raw[i + 4..].to_vec(),
            None => Vec::new(),
        }
    }

    /// A one-line summary for assertion messages.
    pub fn summary(&self) -> String {
        format!(
            "{} (CSeq {:?}) from {}",
            self.first_line(),
            self.cseq(),
            self.from
        )
    }

    /// This message, asserted to be a response with `status` (`what` names it on failure).
    #[track_caller]
    pub fn assert_status(self, status: u16, what: &str) -> Msg {
        assert_eq!(
            self.status(),
            Some(status),
            "{what}: got {}",
            self.summary()
        );
        self
    }

    /// This message, asserted to be a `method` request (`what` names it on failure).
    #[track_caller]
    pub fn assert_method(self, method: &str, what: &str) -> Msg {
        assert_eq!(
            self.method().as_deref(),
            Some(method),
            "{what}: got {}",
            self.summary()
        );
        self
    }
}

/// The branch parameter of a Via value.
pub fn via_branch(via: &str) -> Option<String> {
    via.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case("branch")
            .then(|| v.trim().to_string())
    })
}

/// A UDP SIP peer on loopback (a test ATA, a test callee).
pub struct UdpPeer {
    pub socket: UdpSocket,
    pub proxy: SocketAddr,
    seen: HashSet<Vec<u8>>,
}

impl UdpPeer {
    /// Binds `ip`:any port; requests go to `proxy`.
    pub fn bind(ip: &str, proxy: SocketAddr) -> UdpPeer {
        let socket = UdpSocket::bind(format!("{ip}:0")).expect("bind a loopback UDP socket");
        UdpPeer {
            socket,
            proxy,
            seen: HashSet::new(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("local addr")
    }

    /// `ip:port` for URIs and Vias.
    pub fn hostport(&self) -> String {
        self.addr().to_string()
    }

    pub fn send(&self, bytes: &[u8]) {
        self.send_to(bytes, self.proxy);
    }

    pub fn send_to(&self, bytes: &[u8], to: SocketAddr) {
        self.socket.send_to(bytes, to).expect("udp send");
    }

    /// The next datagram within `timeout`, whatever it is (retransmissions included).
    pub fn recv_raw(&mut self, timeout: Duration) -> Option<Msg> {
        self.receive(timeout, true)
    }

    /// The next message that is not a byte-identical repeat of one received before (a
    /// retransmission the proxy is entitled to send when the test host is slow).
    pub fn recv(&mut self, timeout: Duration) -> Option<Msg> {
        self.receive(timeout, false)
    }

    /// The next datagram within `timeout`, remembered as seen; a repeat of one seen before is
    /// returned only when `repeats` is true, and skipped otherwise.
    fn receive(&mut self, timeout: Duration, repeats: bool) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65_535];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            self.socket.set_read_timeout(Some(left)).ok()?;
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let raw = buf[..n].to_vec();
                    if self.seen.insert(raw.clone()) || repeats {
                        return Some(Msg { raw, from });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }

    /// The next new message; panics naming `what` when none comes within [`WAIT`].
    pub fn expect(&mut self, what: &str) -> Msg {
        self.recv(WAIT)
            .unwrap_or_else(|| panic!("{what}: nothing arrived at {}", self.addr()))
    }

    /// The next new response with `status`, skipping nothing: the next message must be it.
    pub fn expect_status(&mut self, status: u16, what: &str) -> Msg {
        self.expect(what).assert_status(status, what)
    }

    /// The next new request with `method`: the next message must be it.
    pub fn expect_request(&mut self, method: &str, what: &str) -> Msg {
        self.expect(what).assert_method(method, what)
    }

    /// Asserts that no new message arrives within [`QUIET`].
    pub fn expect_nothing(&mut self, what: &str) {
        if let Some(m) = self.recv(QUIET) {
            panic!("{what}: unexpected {}", m.summary());
        }
    }
}

/// A TCP SIP peer: one connection to the proxy, framed by Content-Length.
pub struct TcpPeer {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl TcpPeer {
    pub fn connect(proxy: SocketAddr) -> TcpPeer {
        let stream = TcpStream::connect_timeout(&proxy, WAIT).expect("tcp connect to the proxy");
        stream.set_nodelay(true).ok();
        TcpPeer {
            stream,
            buf: Vec::new(),
        }
    }

    /// A peer on a connection the proxy opened to a test listener.
    pub fn accepted(stream: TcpStream) -> TcpPeer {
        stream.set_nodelay(true).ok();
        TcpPeer {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("tcp write");
    }

    fn frame(&mut self) -> Option<Vec<u8>> {
        // Skip keep-alive CRLFs between messages.
        while self.buf.starts_with(b"\r\n") {
            self.buf.drain(..2);
        }
        let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let length = head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| {
                n.trim().eq_ignore_ascii_case("content-length")
                    || n.trim().eq_ignore_ascii_case("l")
            })
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if self.buf.len() < end + length {
            return None;
        }
        Some(self.buf.drain(..end + length).collect())
    }

    pub fn recv(&mut self, timeout: Duration) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        let from = self.stream.peer_addr().ok()?;
        loop {
            if let Some(raw) = self.frame() {
                return Some(Msg { raw, from });
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).ok()?;
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }

    pub fn expect(&mut self, what: &str) -> Msg {
        self.recv(WAIT)
            .unwrap_or_else(|| panic!("{what}: nothing arrived over TCP at {}", self.addr()))
    }

    pub fn expect_status(&mut self, status: u16, what: &str) -> Msg {
        self.expect(what).assert_status(status, what)
    }

    pub fn expect_request(&mut self, method: &str, what: &str) -> Msg {
        self.expect(what).assert_method(method, what)
    }
}

/// The first connection the proxy opens to `listener` within [`WAIT`], as a peer; panics with
/// `what` when none comes.
pub fn accept_within(listener: std::net::TcpListener, what: &str) -> TcpPeer {
    let (accepted_tx, accepted) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = accepted_tx.send(listener.accept());
    });
    let (stream, _) = accepted
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{what}: no connection"))
        .expect("accept");
    TcpPeer::accepted(stream)
}
