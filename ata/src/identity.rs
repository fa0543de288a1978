//! Who the device is on the wire: the header values every request it sends shares (Via,
//! From/To name-addrs, Contact, User-Agent) and the fresh identifiers RFC 3261 asks for
//! (tags, branches, Call-IDs).
//!
//! Used by the pure cores `registration::rules` and `call::dialog`; randomness comes from the
//! caller's seeded generator so tests are repeatable.

use dialtone_transaction::Transport;
use std::net::SocketAddr;

use rand::Rng;

/// What the device writes in User-Agent and Server.
pub const USER_AGENT: &str = concat!("Dialtone ATA/", env!("CARGO_PKG_VERSION"));

/// The methods we accept, for Allow (RFC 3261 20.5).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO";

/// One line's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineIdentity {
    /// The SIP user (phone number).
    pub user: String,
    /// The display name, if any.
    pub display_name: Option<String>,
    /// The domain of our address of record: the proxy host as configured, or our own IP.
    pub domain: String,
    /// Where our SIP socket is, for Via and Contact.
    pub local: SocketAddr,
    /// How our requests travel, for Via and the Contact's `transport`.
    pub transport: Transport,
}

impl LineIdentity {
    /// Our address of record, `sip:USER@DOMAIN;user=phone` as the seed's ATA writes it.
    pub fn aor(&self) -> String {
        format!("sip:{}@{};user=phone", self.user, self.domain)
    }

    /// The From value without its tag.
    pub fn from_value(&self) -> String {
        match &self.display_name {
            Some(name) => format!("\"{}\" <{}>", name.replace('"', ""), self.aor()),
            None => format!("<{}>", self.aor()),
        }
    }

    /// The Contact URI (RFC 3261 8.1.1.8: where this line is reachable directly).
    pub fn contact_uri(&self) -> String {
        format!(
            "sip:{}@{};user=phone;transport={}",
            self.user,
            host_port(self.local),
            self.transport.as_str()
        )
    }

    /// The Via value for a request with `branch` (RFC 3261 8.1.1.7), asking for `rport`
    /// (RFC 3581) so a NAT between us and the proxy does not lose the responses.
    pub fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.transport.via_token(),
            host_port(self.local)
        )
    }
}

/// `IP:PORT` with IPv6 in brackets, as SIP writes hosts (RFC 3261 25.1).
pub fn host_port(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// A new RFC 3261 branch: the magic cookie and 64 random bits (8.1.1.7).
pub fn new_branch<R: Rng + ?Sized>(rng: &mut R) -> String {
    format!("{}{:016x}", dialtone_sip::MAGIC_COOKIE, rng.gen::<u64>())
}

/// A new tag: 32 random bits in decimal, like the seed's ATA (`tag=2819471139`); RFC 3261 19.3
/// asks for at least 32 bits of randomness.
pub fn new_tag<R: Rng + ?Sized>(rng: &mut R) -> String {
    rng.gen::<u32>().to_string()
}

/// A new Call-ID, `NUMBER@HOST` as the seed's ATA writes it (RFC 3261 8.1.1.4).
pub fn new_call_id<R: Rng + ?Sized>(rng: &mut R, local: SocketAddr) -> String {
    format!("{:016x}@{}", rng.gen::<u64>(), local.ip())
}

/// A client nonce for digest with qop (RFC 7616 3.4), free of quotes.
pub fn new_cnonce<R: Rng + ?Sized>(rng: &mut R) -> String {
    format!("{:016x}", rng.gen::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn identity_writes_seed_shaped_uris() {
        let id = LineIdentity {
            user: "8000".into(),
            display_name: None,
            domain: "192.168.2.97".into(),
            local: "127.0.0.1:5062".parse().expect("addr"),
            transport: Transport::Udp,
        };
        assert_eq!(id.aor(), "sip:8000@192.168.2.97;user=phone");
        assert_eq!(id.from_value(), "<sip:8000@192.168.2.97;user=phone>");
        assert_eq!(
            id.contact_uri(),
            "sip:8000@127.0.0.1:5062;user=phone;transport=udp"
        );
        let tcp = LineIdentity {
            transport: Transport::Tcp,
            ..id
        };
        assert_eq!(
            tcp.contact_uri(),
            "sip:8000@127.0.0.1:5062;user=phone;transport=tcp"
        );
        assert!(tcp
            .via("z9hG4bK1")
            .starts_with("SIP/2.0/TCP 127.0.0.1:5062;"));
    }

    #[test]
    fn branches_carry_the_magic_cookie_and_differ() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = new_branch(&mut rng);
        let b = new_branch(&mut rng);
        assert!(a.starts_with("z9hG4bK"));
        assert_ne!(a, b);
    }
}
