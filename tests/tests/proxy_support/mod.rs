//! What the proxy end-to-end tests share: SIP test clients on loopback sockets (UDP and TCP)
//! that receive with timeouts, a small text view of a received message, the seed messages
//! rewritten for loopback addresses, responses built from a received request, and digest
//! answers computed from the proxy's real challenge.
//!
//! Each `tests/proxy_*.rs` file uses a part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

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
                    self.seen.insert(raw.clone());
                    return Some(Msg { raw, from });
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return None
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
    }

    /// The next message that is not a byte-identical repeat of one received before (a
    /// retransmission the proxy is entitled to send when the test host is slow).
    pub fn recv(&mut self, timeout: Duration) -> Option<Msg> {
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
                    if self.seen.insert(raw.clone()) {
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
        let m = self.expect(what);
        assert_eq!(m.status(), Some(status), "{what}: got {}", m.summary());
        m
    }

    /// The next new request with `method`: the next message must be it.
    pub fn expect_request(&mut self, method: &str, what: &str) -> Msg {
        let m = self.expect(what);
        assert_eq!(
            m.method().as_deref(),
            Some(method),
            "{what}: got {}",
            m.summary()
        );
        m
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
        let m = self.expect(what);
        assert_eq!(m.status(), Some(status), "{what}: got {}", m.summary());
        m
    }

    pub fn expect_request(&mut self, method: &str, what: &str) -> Msg {
        let m = self.expect(what);
        assert_eq!(
            m.method().as_deref(),
            Some(method),
            "{what}: got {}",
            m.summary()
        );
        m
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

/// Sets Content-Length to the body's real length (adds it when missing).
pub fn fix_content_length(message: &str) -> String {
    let (head, body) = message.split_once("\r\n\r\n").unwrap_or((message, ""));
    let mut lines: Vec<String> = Vec::new();
    let mut found = false;
    for line in head.split("\r\n") {
        let is_cl = line
            .split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"));
        if is_cl {
            found = true;
            lines.push(format!("Content-Length: {}", body.len()));
        } else {
            lines.push(line.to_string());
        }
    }
    if !found {
        lines.push(format!("Content-Length: {}", body.len()));
    }
    format!("{}\r\n\r\n{body}", lines.join("\r\n"))
}

/// A seed message (`tests/data/seed-flows/...`) with the seed's addresses replaced.
///
/// `hosts` maps a seed IP to a loopback `ip:port`. In the header section an IP (with or
/// without a `:5060` after it) becomes `ip:port`, so that URIs and Via sent-bys name the real
/// port: the seed's Vias have no port, and a response would otherwise go to 5060 (RFC 3261
/// section 18.2.2). In the Call-ID and the SDP body only the IP is replaced. Content-Length is
/// recomputed.
pub fn seed(path: &str, hosts: &[(&str, SocketAddr)]) -> String {
    let file = dialtone_e2e::data(&format!("seed-flows/{path}"));
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    rewrite(&text, hosts)
}

/// See [`seed`].
pub fn rewrite(text: &str, hosts: &[(&str, SocketAddr)]) -> String {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut out_lines = Vec::new();
    for line in head.split("\r\n") {
        let is_call_id = line
            .split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("call-id"));
        let mut line = line.to_string();
        for (ip, addr) in hosts {
            if is_call_id {
                line = line.replace(ip, &addr.ip().to_string());
            } else {
                line = line.replace(&format!("{ip}:5060"), &addr.to_string());
                line = line.replace(ip, &addr.to_string());
            }
        }
        out_lines.push(line);
    }
    let mut body = body.to_string();
    for (ip, addr) in hosts {
        body = body.replace(ip, &addr.ip().to_string());
    }
    fix_content_length(&format!("{}\r\n\r\n{body}", out_lines.join("\r\n")))
}

/// Replaces the value of every header line named `name` with `value`.
pub fn set_header(message: &str, name: &str, value: &str) -> String {
    let (head, body) = message.split_once("\r\n\r\n").unwrap_or((message, ""));
    let lines: Vec<String> = head
        .split("\r\n")
        .map(|line| match line.split_once(':') {
            Some((n, _)) if n.trim().eq_ignore_ascii_case(name) => format!("{name}: {value}"),
            _ => line.to_string(),
        })
        .collect();
    format!("{}\r\n\r\n{body}", lines.join("\r\n"))
}

/// A response modelled on seed response `model` (its status line, Contact, Server, body...),
/// with the transaction headers taken from the received `request` (RFC 3261 section 8.2.6.2):
/// every Via line in order, the Record-Route lines (when the model has one), From, To (with
/// `to_tag` added when the request's To has none), Call-ID and CSeq.
pub fn respond_like(model: &str, request: &Msg, to_tag: Option<&str>) -> String {
    let (head, body) = model.split_once("\r\n\r\n").unwrap_or((model, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("SIP/2.0 200 OK").to_string();
    let rest: Vec<&str> = lines.collect();
    let model_has_rr = rest
        .iter()
        .any(|l| l.to_ascii_lowercase().starts_with("record-route"));
    let copied = ["via", "record-route", "from", "to", "call-id", "cseq"];
    let mut out = vec![status_line];
    out.extend(request.header_lines("via"));
    if model_has_rr {
        out.extend(request.header_lines("record-route"));
    }
    out.extend(request.header_lines("from"));
    let to = request.header("to").unwrap_or_default();
    let to = match (request.tag("to"), to_tag) {
        (None, Some(tag)) => format!("{to};tag={tag}"),
        _ => to,
    };
    out.push(format!("To: {to}"));
    out.extend(request.header_lines("call-id"));
    out.extend(request.header_lines("cseq"));
    for line in rest {
        let name = line
            .split_once(':')
            .map(|(n, _)| n.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !copied.contains(&name.as_str()) {
            out.push(line.to_string());
        }
    }
    fix_content_length(&format!("{}\r\n\r\n{body}", out.join("\r\n")))
}

/// The Proxy-Authorization (or Authorization) value answering the challenge in `response`
/// (`Proxy-Authenticate` or `WWW-Authenticate`), with password = `password`.
pub fn digest_answer(
    response: &Msg,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> String {
    let challenge_value = response
        .header("proxy-authenticate")
        .or_else(|| response.header("www-authenticate"))
        .unwrap_or_else(|| panic!("no challenge in {}", response.summary()));
    let challenge = dialtone_digest::Challenge::parse(&challenge_value)
        .unwrap_or_else(|e| panic!("challenge {challenge_value:?}: {e}"));
    let params = dialtone_digest::AnswerParams {
        username,
        password,
        method,
        uri,
        cnonce: "0a4f113b",
        nc: 1,
    };
    dialtone_digest::answer(&challenge, &params)
        .expect("answer the challenge")
        .to_string()
}

/// The nonce of a challenge response.
pub fn nonce_of(response: &Msg) -> String {
    let value = response
        .header("proxy-authenticate")
        .or_else(|| response.header("www-authenticate"))
        .unwrap_or_default();
    dialtone_digest::Challenge::parse(&value)
        .map(|c| c.nonce.to_string())
        .unwrap_or_default()
}

/// Waits until `/api/registrations` satisfies `check`; returns the last JSON seen.
pub fn registrations(http: SocketAddr) -> serde_json::Value {
    let body = dialtone_e2e::http_get(http, "/api/registrations").expect("GET /api/registrations");
    serde_json::from_str(&body).expect("registrations JSON")
}

/// A plain request from a test UA: `method` to `uri` with a branch, From tag and `extra` lines.
#[allow(clippy::too_many_arguments)]
pub fn request(
    method: &str,
    uri: &str,
    via_sent_by: &str,
    transport: &str,
    from_user: &str,
    to_uri: &str,
    call_id: &str,
    cseq: u32,
    extra: &[String],
    body: &str,
) -> String {
    let branch = format!(
        "z9hG4bK{}{}{}",
        call_id.len(),
        cseq,
        rand_suffix(call_id, method)
    );
    let mut lines = vec![
        format!("{method} {uri} SIP/2.0"),
        format!("Via: SIP/2.0/{transport} {via_sent_by};branch={branch}"),
        "Max-Forwards: 70".to_string(),
        format!(
            "From: <sip:{from_user}@dialtone.test>;tag={}",
            rand_suffix(call_id, "tag")
        ),
        format!("To: <{to_uri}>"),
        format!("Call-ID: {call_id}"),
        format!("CSeq: {cseq} {method}"),
    ];
    lines.extend(extra.iter().cloned());
    lines.push(format!("Content-Length: {}", body.len()));
    format!("{}\r\n\r\n{body}", lines.join("\r\n"))
}

fn rand_suffix(call_id: &str, method: &str) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    call_id.hash(&mut h);
    method.hash(&mut h);
    std::process::id().hash(&mut h);
    format!("{:x}", h.finish())
}
