//! HEPv3 export (the Homer Encapsulation Protocol, <https://github.com/sipcapture/HEP>): every
//! SIP message the proxy sends or receives, wrapped with its addresses and time and sent over
//! UDP to a collector (Homer, heplify-server), so that calls can be searched there.
//!
//! Fed by [`crate::trace::Capture`] from the transport hooks; off unless `--hep udp:IP:PORT`.
//! A packet: `"HEP3"`, the total length (u16), then chunks of vendor (u16, 0 = generic), type
//! (u16), length (u16, header included) and value, all in network order.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::SystemTime;

use dialtone_transaction::Transport;

/// Generic chunk types (vendor 0) of HEPv3.
pub mod chunk {
    pub const IP_FAMILY: u16 = 0x0001;
    pub const IP_PROTOCOL: u16 = 0x0002;
    pub const IPV4_SRC: u16 = 0x0003;
    pub const IPV4_DST: u16 = 0x0004;
    pub const IPV6_SRC: u16 = 0x0005;
    pub const IPV6_DST: u16 = 0x0006;
    pub const SRC_PORT: u16 = 0x0007;
    pub const DST_PORT: u16 = 0x0008;
    pub const TIME_SECONDS: u16 = 0x0009;
    pub const TIME_MICROSECONDS: u16 = 0x000a;
    pub const PROTOCOL_TYPE: u16 = 0x000b;
    pub const CAPTURE_ID: u16 = 0x000c;
    pub const PAYLOAD: u16 = 0x000f;
}

/// Protocol type 1: SIP.
pub const PROTOCOL_SIP: u8 = 1;
/// The capture agent id the proxy reports.
pub const CAPTURE_ID: u32 = 2001;
/// Room left for the chunk headers inside HEP's 16-bit length.
const MAX_PAYLOAD: usize = 65_535 - 128;

/// Encodes one message as a HEPv3 packet.
pub fn encode(
    at: SystemTime,
    transport: Transport,
    src: SocketAddr,
    dst: SocketAddr,
    capture_id: u32,
    payload: &[u8],
) -> Vec<u8> {
    let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
    let since_epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(payload.len() + 128);
    out.extend_from_slice(b"HEP3");
    out.extend_from_slice(&[0, 0]);
    let mut put = |kind: u16, value: &[u8]| {
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&((value.len() + 6) as u16).to_be_bytes());
        out.extend_from_slice(value);
    };
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            put(chunk::IP_FAMILY, &[2]);
            put(chunk::IPV4_SRC, &s.octets());
            put(chunk::IPV4_DST, &d.octets());
        }
        (s, d) => {
            put(chunk::IP_FAMILY, &[10]);
            put(chunk::IPV6_SRC, &v6(s).octets());
            put(chunk::IPV6_DST, &v6(d).octets());
        }
    }
    let protocol = match transport {
        Transport::Udp => 17,
        Transport::Tcp => 6,
    };
    put(chunk::IP_PROTOCOL, &[protocol]);
    put(chunk::SRC_PORT, &src.port().to_be_bytes());
    put(chunk::DST_PORT, &dst.port().to_be_bytes());
    put(
        chunk::TIME_SECONDS,
        &(since_epoch.as_secs() as u32).to_be_bytes(),
    );
    put(
        chunk::TIME_MICROSECONDS,
        &since_epoch.subsec_micros().to_be_bytes(),
    );
    put(chunk::PROTOCOL_TYPE, &[PROTOCOL_SIP]);
    put(chunk::CAPTURE_ID, &capture_id.to_be_bytes());
    put(chunk::PAYLOAD, payload);
    let len = out.len() as u16;
    out[4..6].copy_from_slice(&len.to_be_bytes());
    out
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Sends HEPv3 packets to one collector over UDP.
#[derive(Debug)]
pub struct HepExporter {
    socket: UdpSocket,
    collector: SocketAddr,
}

impl HepExporter {
    /// A non-blocking socket towards `collector` (a send that would block is dropped: capture
    /// must never hold up SIP).
    pub fn new(collector: SocketAddr) -> std::io::Result<HepExporter> {
        let bind: SocketAddr = match collector {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
        };
        let socket = UdpSocket::bind(bind)?;
        socket.set_nonblocking(true)?;
        Ok(HepExporter { socket, collector })
    }

    /// Sends one message; errors are logged at debug and otherwise ignored.
    pub fn send(
        &self,
        at: SystemTime,
        transport: Transport,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) {
        let packet = encode(at, transport, src, dst, CAPTURE_ID, payload);
        if let Err(e) = self.socket.send_to(&packet, self.collector) {
            tracing::debug!(collector = %self.collector, error = %e, "hep send failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_chunks_in_network_order_with_the_total_length() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_250_000);
        let src: SocketAddr = "10.0.0.1:5062".parse().unwrap();
        let dst: SocketAddr = "10.0.0.2:5060".parse().unwrap();
        let packet = encode(
            at,
            Transport::Udp,
            src,
            dst,
            7,
            b"OPTIONS sip:x SIP/2.0\r\n\r\n",
        );
        assert_eq!(&packet[..4], b"HEP3");
        assert_eq!(
            u16::from_be_bytes([packet[4], packet[5]]) as usize,
            packet.len()
        );
        let mut chunks = std::collections::HashMap::new();
        let mut rest = &packet[6..];
        while rest.len() >= 6 {
            let kind = u16::from_be_bytes([rest[2], rest[3]]);
            let len = u16::from_be_bytes([rest[4], rest[5]]) as usize;
            chunks.insert(kind, rest[6..len].to_vec());
            rest = &rest[len..];
        }
        assert!(rest.is_empty());
        assert_eq!(chunks[&chunk::IP_FAMILY], [2]);
        assert_eq!(chunks[&chunk::IP_PROTOCOL], [17]);
        assert_eq!(chunks[&chunk::IPV4_SRC], [10, 0, 0, 1]);
        assert_eq!(chunks[&chunk::DST_PORT], 5060u16.to_be_bytes());
        assert_eq!(chunks[&chunk::TIME_SECONDS], 1_700_000_000u32.to_be_bytes());
        assert_eq!(chunks[&chunk::TIME_MICROSECONDS], 250_000u32.to_be_bytes());
        assert_eq!(chunks[&chunk::PROTOCOL_TYPE], [1]);
        assert_eq!(chunks[&chunk::CAPTURE_ID], 7u32.to_be_bytes());
        assert_eq!(chunks[&chunk::PAYLOAD], b"OPTIONS sip:x SIP/2.0\r\n\r\n");
    }
}
