//! Finding message boundaries in a stream transport (RFC 3261 section 18.3): a message ends
//! Content-Length octets after the empty line that ends its header section, and Content-Length
//! is mandatory on streams.
//!
//! CRLFs between messages are skipped: they are keep-alives (RFC 5626 section 3.5.1), and a
//! double CRLF "ping" is reported so the transport can answer it with a single CRLF "pong".

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use crate::message::MAX_MESSAGE_SIZE;

/// Why a stream can no longer be framed; the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FramerError {
    /// The header section grew past the size cap without ending.
    #[error("header section too large")]
    HeadTooLarge,
    /// A message announced a body larger than the size cap.
    #[error("message too large ({0} octets)")]
    TooLarge(usize),
    /// Content-Length is missing, repeated with different values, or not a number.
    #[error("bad or missing Content-Length: {0}")]
    BadContentLength(&'static str),
}

/// What [`StreamFramer::next_frame`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One whole message, ready for [`crate::Message::parse`].
    Message(Bytes),
    /// A CRLFCRLF keep-alive ping.
    Ping,
}

/// Accumulates stream octets and cuts them into messages.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buffer: BytesMut,
}

impl StreamFramer {
    /// A framer with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends octets read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// Gives the buffer's memory back when it holds nothing, so that an idle connection keeps
    /// none (the buffer grows to the largest message seen, and stays so otherwise).
    pub fn release_if_empty(&mut self) {
        if self.buffer.is_empty() && self.buffer.capacity() > 0 {
            self.buffer = BytesMut::new();
        }
    }

    /// Octets held that are not yet a whole message (for a partial-message timeout).
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete frame, `Ok(None)` when more octets are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramerError> {
        let leading = self
            .buffer
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(self.buffer.len());
        if leading > 0 {
            let ping = self.buffer[..leading].windows(4).any(|w| w == b"\r\n\r\n");
            self.buffer.advance(leading);
            if ping {
                return Ok(Some(Frame::Ping));
            }
        }
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let Some(head_end) = memchr::memmem::find(&self.buffer, b"\r\n\r\n") else {
            if self.buffer.len() > MAX_MESSAGE_SIZE {
                return Err(FramerError::HeadTooLarge);
            }
            return Ok(None);
        };
        let body_start = head_end + 4;
        let length = content_length(&self.buffer[..head_end])?;
        let total = body_start + length;
        if total > MAX_MESSAGE_SIZE {
            return Err(FramerError::TooLarge(total));
        }
        if self.buffer.len() < total {
            return Ok(None);
        }
        Ok(Some(Frame::Message(self.buffer.split_to(total).freeze())))
    }
}

/// Reads Content-Length (or its compact form `l`) from a header section.
fn content_length(head: &[u8]) -> Result<usize, FramerError> {
    let mut found: Option<usize> = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = trim_ascii(&line[..colon]);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = trim_ascii(&line[colon + 1..]);
        if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
            return Err(FramerError::BadContentLength("not a number"));
        }
        let n = value
            .iter()
            .fold(0usize, |acc, &d| acc * 10 + (d - b'0') as usize);
        if found.is_some_and(|f| f != n) {
            return Err(FramerError::BadContentLength("conflicting values"));
        }
        found = Some(n);
    }
    found.ok_or(FramerError::BadContentLength("missing"))
}

fn trim_ascii(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nl: 5\r\nCall-ID: x\r\n\r\nhello";

    #[test]
    fn messages_split_across_reads_come_out_whole() {
        let mut f = StreamFramer::new();
        let mut stream = MSG.to_vec();
        stream.extend_from_slice(MSG);
        for chunk in stream.chunks(7) {
            f.push(chunk);
        }
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(Bytes::from_static(MSG)))
        );
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Message(Bytes::from_static(MSG)))
        );
        assert_eq!(f.next_frame().unwrap(), None);
    }

    #[test]
    fn partial_body_waits_for_more() {
        let mut f = StreamFramer::new();
        f.push(&MSG[..MSG.len() - 2]);
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(&MSG[MSG.len() - 2..]);
        assert!(matches!(f.next_frame().unwrap(), Some(Frame::Message(_))));
    }

    #[test]
    fn double_crlf_is_a_keepalive_ping() {
        let mut f = StreamFramer::new();
        f.push(b"\r\n\r\n");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Ping));
        f.push(b"\r\n");
        f.push(MSG);
        assert!(matches!(f.next_frame().unwrap(), Some(Frame::Message(_))));
    }

    #[test]
    fn missing_or_conflicting_content_length_is_an_error() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n");
        assert_eq!(
            f.next_frame(),
            Err(FramerError::BadContentLength("missing"))
        );
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 13\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(
            f.next_frame(),
            Err(FramerError::BadContentLength("conflicting values"))
        );
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n");
        assert!(f.next_frame().is_err());
    }

    #[test]
    fn endless_header_section_is_refused() {
        let mut f = StreamFramer::new();
        f.push(&vec![b'a'; MAX_MESSAGE_SIZE + 1]);
        assert_eq!(f.next_frame(), Err(FramerError::HeadTooLarge));
    }
}
