//! Where responses go, and the responses the proxy writes itself.
//!
//! RFC 3261 section 18.2.2: over a stream, back on the connection the request came on; over
//! UDP, to the top Via's `received` address (the packet's source) and its sent-by port, or the
//! source port when the client asked for `rport` (RFC 3581 section 4). The seed's ATA sends no
//! rport, so its responses go to port 5060 of the address it sent from, exactly as its figures
//! show. When a request is too broken to be parsed at all, [`fallback_response`] still finds
//! the Via, From, To, Call-ID and CSeq lines by name so that the sender learns why (a 400 with
//! a reason phrase, or 505), as RFC 4475 asks.

use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use dialtone_sip::uri::parse_host_ip;
use dialtone_sip::{Message, ResponseBuilder, Via};

use super::{Destination, Source};
use dialtone_transaction::Transport;

/// The address a response to a request from `source` with top Via `via` goes to.
pub fn reply_destination(source: &Source, via: Option<&Via<'_>>) -> Destination {
    if source.transport == Transport::Tcp {
        return Destination {
            transport: Transport::Tcp,
            addr: source.addr,
        };
    }
    let port = match via {
        Some(v) => match (v.rport(), v.port) {
            (Some(_), _) => source.addr.port(),
            (None, Some(port)) => port,
            // RFC 3261 section 18.2.2: over an unreliable transport, "port 5060 if none is
            // specified explicitly", whatever transport the Via names (a request that came
            // over UDP with a TLS Via, RFC 4475 bext01, must not be answered on 5061).
            (None, None) => 5060,
        },
        None => source.addr.port(),
    };
    Destination {
        transport: Transport::Udp,
        addr: SocketAddr::new(source.addr.ip(), port),
    }
}

/// Where a response goes when the stream its request came on has closed (RFC 3261 section
/// 18.2.2): "the server SHOULD open a connection to the IP address in the `received`
/// parameter, if present, using the port in the `sent-by` value, or the default port for that
/// transport". Without `received` the sent-by host is the source address (the proxy adds
/// `received` whenever they differ), so a literal IP there is used; a sent-by host name is
/// not resolved (section 5 of RFC 3263 would be needed), and `None` is returned for it, for a
/// request, or for octets that are not a message.
pub fn stream_reconnect_target(response: &[u8]) -> Option<SocketAddr> {
    let message = Message::parse(response).ok()?;
    if message.is_request() {
        return None;
    }
    let via = message.top_via().ok()?;
    let ip = via.received().or_else(|| parse_host_ip(via.host))?;
    Some(SocketAddr::new(ip, via.port_or_default()))
}

/// The value to give the received request's first Via header (`header_value`, which may hold
/// several Vias) before forwarding: its first Via as [`via_with_received`] rewrites it, the
/// others as they were. `None` when nothing is to be added.
pub fn via_header_with_received(header_value: &str, source: SocketAddr) -> Option<String> {
    let first = dialtone_sip::lex::split_commas(header_value).next()?;
    let via = Via::parse(first).ok()?;
    first_via_with_received(header_value, &via, source)
}

/// [`via_header_with_received`] of a header whose first Via is already parsed as `first` (a
/// received request's top Via, which validation parsed and the message keeps).
pub fn first_via_with_received(
    header_value: &str,
    first: &Via<'_>,
    source: SocketAddr,
) -> Option<String> {
    let mut values = dialtone_sip::lex::split_commas(header_value);
    let updated = via_with_received(values.next()?, first, source)?;
    let rest: Vec<&str> = values.collect();
    Some(if rest.is_empty() {
        updated
    } else {
        format!("{updated}, {}", rest.join(", "))
    })
}

/// The value to give the received request's top Via before forwarding (RFC 3261 section
/// 18.2.1, RFC 3581 section 4): `received` when the sent-by host is not the source address,
/// and `rport` filled in when the client asked for it. `None` when nothing is to be added.
pub fn via_with_received(via_value: &str, via: &Via<'_>, source: SocketAddr) -> Option<String> {
    let source_ip = source.ip();
    let sent_by_matches = parse_host_ip(via.host) == Some(source_ip);
    let wants_rport = via.rport() == Some(None);
    if sent_by_matches && !wants_rport {
        return None;
    }
    let mut out = String::with_capacity(via_value.len() + 40);
    // Rebuild the value with rport filled in and received added, written straight into `out`
    // (this runs for every response the proxy sends: no temporary strings).
    let (head, rest) = match via_value.find(';') {
        Some(i) => (&via_value[..i], &via_value[i..]),
        None => (via_value, ""),
    };
    out.push_str(head);
    for param in rest.split(';').filter(|p| !p.trim().is_empty()) {
        let name = param.split('=').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("rport") && wants_rport {
            let _ = write!(out, ";rport={}", source.port());
        } else if name.eq_ignore_ascii_case("received") {
            continue;
        } else {
            out.push(';');
            out.push_str(param);
        }
    }
    if !sent_by_matches || wants_rport {
        let _ = write!(out, ";received={source_ip}");
    }
    Some(out)
}

/// A response the proxy writes itself (RFC 3261 section 16.7 uses the same rules as a UAS) to
/// a request received from `source`; its top Via gets `received` and `rport` as a forwarded
/// request's would.
pub fn local_response(
    request: &Message<'_>,
    source: SocketAddr,
    code: u16,
    reason: &str,
    extra: &[(&str, String)],
    to_tag: &str,
    server: Option<&str>,
) -> Bytes {
    let mut builder = ResponseBuilder::for_request(request, code, reason);
    if let (Some(value), Ok(via)) = (
        request.values(dialtone_sip::HeaderName::Via).next(),
        request.top_via(),
    ) {
        if let Some(filled) = via_with_received(value, &via, source) {
            builder = builder.top_via(value, &filled);
        }
    }
    if code > 100 {
        builder = builder.to_tag(to_tag);
    }
    for (name, value) in extra {
        builder = builder.header(name, value);
    }
    if let Some(server) = server {
        builder = builder.header("Server", server);
    }
    Bytes::from(builder.build())
}

/// A response to a request that did not parse: the transaction headers are copied by name from
/// the raw text. `None` when even a Via cannot be found (nothing to answer to) or the message
/// is a response.
pub fn fallback_response(raw: &[u8], code: u16, reason: &str) -> Option<(Bytes, Option<String>)> {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_start_matches(['\r', '\n']);
    if text.starts_with("SIP/") {
        return None;
    }
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    let mut top_via = None;
    let mut saw_via = false;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let canonical = match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => "Via",
            "from" | "f" => "From",
            "to" | "t" => "To",
            "call-id" | "i" => "Call-ID",
            "cseq" => "CSeq",
            _ => continue,
        };
        let value = value.trim();
        if canonical == "Via" {
            saw_via = true;
            if top_via.is_none() {
                top_via = Some(value.split(',').next().unwrap_or(value).trim().to_string());
            }
        }
        out.push_str(canonical);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    if !saw_via {
        return None;
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some((Bytes::from(out), top_via))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_source(addr: &str) -> Source {
        Source {
            transport: Transport::Udp,
            addr: addr.parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
        }
    }

    #[test]
    fn a_local_response_fills_in_received_and_rport_of_the_top_via_only() {
        // RFC 3581 section 4: rport gets the source port, and received is added.
        let raw = b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKa;rport, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKb;rport\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        let request = Message::parse(raw).unwrap();
        let bytes = local_response(
            &request,
            "127.0.0.1:40000".parse().unwrap(),
            200,
            "OK",
            &[],
            "t",
            Some("dialtone-proxy"),
        );
        let response = Message::parse(&bytes).unwrap();
        let vias: Vec<&str> = response.values(dialtone_sip::HeaderName::Via).collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKa;rport=40000;received=127.0.0.1",
                "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKb;rport"
            ]
        );
        // Without rport and from the sent-by address, the Via comes back as it was.
        let raw = b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKc\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let request = Message::parse(raw).unwrap();
        let bytes = local_response(
            &request,
            "127.0.0.1:5062".parse().unwrap(),
            200,
            "OK",
            &[],
            "t",
            Some("dialtone-proxy"),
        );
        let response = Message::parse(&bytes).unwrap();
        assert_eq!(
            response.header_value(dialtone_sip::HeaderName::Via),
            Some("SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKc")
        );
    }

    #[test]
    fn a_stream_response_whose_connection_closed_goes_to_received_and_the_sent_by_port() {
        let response = |via: &str| {
            format!("SIP/2.0 180 Ringing\r\nVia: {via}\r\nVia: SIP/2.0/UDP 10.9.9.9:7000;branch=z9hG4bKz\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
        };
        let target = |via: &str| stream_reconnect_target(response(via).as_bytes());
        // received wins over the sent-by host; the port is the sent-by's.
        assert_eq!(
            target("SIP/2.0/TCP client.example.com:5070;branch=z9hG4bKa;received=192.0.2.4"),
            Some("192.0.2.4:5070".parse().unwrap())
        );
        // No port: the transport's default; no received: the sent-by address was the source.
        assert_eq!(
            target("SIP/2.0/TCP 192.0.2.5;branch=z9hG4bKb"),
            Some("192.0.2.5:5060".parse().unwrap())
        );
        assert_eq!(
            target("SIP/2.0/TCP [2001:db8::1]:5080;branch=z9hG4bKc"),
            Some("[2001:db8::1]:5080".parse().unwrap())
        );
        // A host name would need RFC 3263 section 5; a request is not answered this way.
        assert_eq!(
            target("SIP/2.0/TCP client.example.com;branch=z9hG4bKd"),
            None
        );
        let request = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.5;branch=z9hG4bKe\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(stream_reconnect_target(request), None);
        assert_eq!(stream_reconnect_target(b"not sip"), None);
    }

    #[test]
    fn udp_responses_go_to_the_source_address_and_via_port() {
        let via = Via::parse("SIP/2.0/UDP 192.168.3.175").unwrap();
        let d = reply_destination(&udp_source("127.0.0.2:40000"), Some(&via));
        assert_eq!(d.addr, "127.0.0.2:5060".parse().unwrap());
        let via = Via::parse("SIP/2.0/UDP 10.0.0.1:5062;rport").unwrap();
        let d = reply_destination(&udp_source("127.0.0.2:40000"), Some(&via));
        assert_eq!(d.addr, "127.0.0.2:40000".parse().unwrap());
    }

    #[test]
    fn udp_request_with_a_tls_via_and_no_port_is_answered_on_5060() {
        let via =
            Via::parse("SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw").unwrap();
        let d = reply_destination(&udp_source("127.0.0.2:40000"), Some(&via));
        assert_eq!(d.addr, "127.0.0.2:5060".parse().unwrap());
    }

    #[test]
    fn received_and_rport_are_added_when_needed() {
        let raw = "SIP/2.0/UDP 192.168.3.175";
        let via = Via::parse(raw).unwrap();
        assert_eq!(
            via_with_received(raw, &via, "127.0.0.1:5060".parse().unwrap()).unwrap(),
            "SIP/2.0/UDP 192.168.3.175;received=127.0.0.1"
        );
        let raw = "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKx;rport";
        let via = Via::parse(raw).unwrap();
        assert_eq!(
            via_with_received(raw, &via, "127.0.0.1:40000".parse().unwrap()).unwrap(),
            "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKx;rport=40000;received=127.0.0.1"
        );
        let raw = "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKx";
        let via = Via::parse(raw).unwrap();
        assert!(via_with_received(raw, &via, "127.0.0.1:5062".parse().unwrap()).is_none());
    }

    #[test]
    fn unparseable_requests_still_get_an_answer_naming_the_fault() {
        let raw = b"INVITE sip:a@b SIP/7.0\r\nVia: SIP/2.0/UDP 192.0.2.5\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
        let (resp, via) = fallback_response(raw, 505, "Version Not Supported").unwrap();
        let m = Message::parse(&resp).unwrap();
        assert_eq!(m.status(), Some(505));
        assert_eq!(via.as_deref(), Some("SIP/2.0/UDP 192.0.2.5"));
        assert!(fallback_response(b"SIP/2.0 200 OK\r\n\r\n", 400, "x").is_none());
        assert!(fallback_response(b"garbage", 400, "x").is_none());
    }
}
