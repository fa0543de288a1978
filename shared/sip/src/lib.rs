//! # dialtone-sip: SIP messages for Dialtone
//!
//! The message layer of RFC 3261 (sections 7, 20 and 25): parse a request or response by
//! borrowing from the received buffer ([`Message::parse`]), read header values on demand
//! ([`Message::top_via`], [`Message::cseq`], ...), edit a received message for forwarding without
//! re-serialising what was not touched ([`Editor`]), build new messages ([`ResponseBuilder`],
//! [`RequestBuilder`]), and find message boundaries in a TCP byte stream ([`StreamFramer`]).
//!
//! No sockets, no clock: bytes in, values out. Transactions live in `dialtone-transaction`,
//! digest in `dialtone-digest`, SDP in `dialtone-sdp`.
#![forbid(unsafe_code)]

pub mod builder;
pub mod delta;
pub mod edit;
pub mod error;
pub mod framer;
mod header_access;
pub mod header_name;
pub mod headers;
pub mod lex;
pub mod message;
pub mod method;
pub mod name_addr;
mod skeleton;
pub mod uri;
pub mod via;

pub use builder::{RequestBuilder, ResponseBuilder};
pub use delta::Delta;
pub use edit::Editor;
pub use error::ParseError;
pub use framer::{Frame, FramerError, StreamFramer};
pub use header_name::HeaderName;
pub use headers::{CSeq, ContactExpires, Contacts};
pub use lex::Params;
pub use message::{Header, Message, StartLine, MAX_HEADERS, MAX_MESSAGE_SIZE};
pub use method::Method;
pub use name_addr::NameAddr;
pub use skeleton::{forwarder_via, skeleton_from_head};
pub use uri::{SipUri, TelUri, Uri};
pub use via::{Via, MAGIC_COOKIE};
