//! Editing a received message for forwarding, without re-serialising what was not touched.
//!
//! A proxy changes little of what it forwards (RFC 3261 section 16.6): it adds a Via and maybe a
//! Record-Route, decrements Max-Forwards, may rewrite the Request-URI or drop its own Route, and
//! on responses removes the top Via (section 16.7). The [`Editor`] records those changes as
//! splices over the original octets and writes the result in one pass; inserted text is staged
//! in one buffer so an edit costs no allocation of its own.

use smallvec::SmallVec;

use crate::header_name::HeaderName;
use crate::lex;
use crate::message::Message;

/// One splice: replace `start..end` of the original with `staged[text.0..text.1]`.
#[derive(Debug, Clone, Copy)]
struct Splice {
    start: u32,
    end: u32,
    text: (u32, u32),
}

/// Collects edits to a message; [`Editor::finish`] writes the edited message.
#[derive(Debug)]
pub struct Editor<'m, 'a> {
    message: &'m Message<'a>,
    /// Inline (on the caller's stack) up to a size that covers a proxy's usual edits: two
    /// heap allocations per forwarded message were a tenth of a relayed call's.
    staged: Staged,
    splices: SmallVec<[Splice; 8]>,
}

/// The new text of the splices, one after another.
#[derive(Debug, Default)]
struct Staged(SmallVec<[u8; 256]>);

impl Staged {
    fn push_str(&mut self, text: &str) {
        self.0.extend_from_slice(text.as_bytes());
    }

    /// `name: value` and the line's CRLF, without `write!`, whose formatting machinery was a
    /// visible share of forwarding a message.
    fn push_header_line(&mut self, name: &str, value: &str) {
        for part in [name, ": ", value, "\r\n"] {
            self.push_str(part);
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl<'m, 'a> Editor<'m, 'a> {
    /// Starts editing `message`.
    pub fn new(message: &'m Message<'a>) -> Self {
        Editor {
            message,
            staged: Staged::default(),
            splices: SmallVec::new(),
        }
    }

    fn splice(&mut self, start: u32, end: u32, write: impl FnOnce(&mut Staged)) {
        let from = self.staged.len() as u32;
        write(&mut self.staged);
        let to = self.staged.len() as u32;
        // Kept in the order they are written: by offset, and at the same offset in the order
        // they were made (so `write_into` needs no sorted copy).
        let at = self.splices.partition_point(|s| s.start <= start);
        self.splices.insert(
            at,
            Splice {
                start,
                end,
                text: (from, to),
            },
        );
    }

    fn first_header_offset(&self) -> u32 {
        self.message
            .headers
            .first()
            .map(|h| h.line_start)
            .unwrap_or(self.message.headers_end)
    }

    /// Inserts a header line before every other header. A Via or Record-Route inserted this way
    /// becomes the topmost value (RFC 3261 sections 16.6 steps 4 and 8).
    pub fn insert_header_first(&mut self, name: &str, value: &str) -> &mut Self {
        let at = self.first_header_offset();
        self.splice(at, at, |s| {
            s.push_header_line(name, value);
        });
        self
    }

    /// Inserts a header line before the header at `index` (in [`Message::headers`]).
    pub fn insert_header_before(&mut self, index: usize, name: &str, value: &str) -> &mut Self {
        let at = self
            .message
            .headers
            .get(index)
            .map(|h| h.line_start)
            .unwrap_or(self.message.headers_end);
        self.splice(at, at, |s| {
            s.push_header_line(name, value);
        });
        self
    }

    /// Appends a header line after the last header.
    pub fn append_header(&mut self, name: &str, value: &str) -> &mut Self {
        let at = self.message.headers_end;
        self.splice(at, at, |s| {
            s.push_header_line(name, value);
        });
        self
    }

    /// Removes the header line at `index`.
    pub fn remove_header(&mut self, index: usize) -> &mut Self {
        if let Some(h) = self.message.headers.get(index).copied() {
            self.splice(h.line_start, h.line_end, |_| {});
        }
        self
    }

    /// Replaces the value of the header line at `index`.
    pub fn set_header_value(&mut self, index: usize, value: &str) -> &mut Self {
        if let Some(h) = self.message.headers.get(index).copied() {
            self.splice(h.value_start, h.value_end, |s| s.push_str(value));
        }
        self
    }

    /// Removes the first comma-separated value of the first header named `name`: the whole line
    /// when it holds one value. This is how a proxy removes its Via from a response or its own
    /// URI from the Route set.
    pub fn remove_first_value(&mut self, name: HeaderName) -> &mut Self {
        let Some((index, h)) = self
            .message
            .headers
            .iter()
            .enumerate()
            .find(|(_, h)| h.name == name)
        else {
            return self;
        };
        let h = *h;
        let mut values = lex::split_commas(h.value);
        let first = values.next().unwrap_or("");
        match values.next() {
            None => {
                self.remove_header(index);
            }
            Some(second) => {
                // Remove from the value's start up to where the second value begins.
                let second_at = second.as_ptr() as usize - h.value.as_ptr() as usize;
                let _ = first;
                self.splice(h.value_start, h.value_start + second_at as u32, |_| {});
            }
        }
        self
    }

    /// Removes the first `count` comma-separated values of the headers named `name`, across
    /// header lines: a proxy that wrote two Record-Routes (one per interface, RFC 5658) finds
    /// both at the top of the Route set, on one line or on two.
    pub fn remove_first_values(&mut self, name: HeaderName, count: usize) -> &mut Self {
        let mut left = count;
        let headers: Vec<_> = self
            .message
            .headers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.name == name)
            .map(|(i, h)| (i, *h))
            .collect();
        for (index, h) in headers {
            if left == 0 {
                break;
            }
            let values: Vec<&str> = lex::split_commas(h.value).collect();
            if values.len() <= left {
                left -= values.len();
                self.remove_header(index);
                continue;
            }
            // Remove from the value's start up to where the first kept value begins.
            let kept = values[left];
            let kept_at = kept.as_ptr() as usize - h.value.as_ptr() as usize;
            self.splice(h.value_start, h.value_start + kept_at as u32, |_| {});
            left = 0;
        }
        self
    }

    /// Removes the top Via value (RFC 3261 section 16.7 step 3).
    pub fn remove_top_via(&mut self) -> &mut Self {
        self.remove_first_value(HeaderName::Via)
    }

    /// Decrements Max-Forwards, or adds `Max-Forwards: 70` when absent (RFC 3261 section 16.6
    /// step 3). The caller has already refused a request whose value is 0 (483).
    pub fn decrement_max_forwards(&mut self) -> &mut Self {
        let found = self
            .message
            .headers
            .iter()
            .position(|h| h.name == HeaderName::MaxForwards);
        match found {
            Some(index) => {
                let current: u32 = self.message.headers[index].value.parse().unwrap_or(70);
                let next = current.saturating_sub(1);
                let buf = itoa_buf(next);
                self.set_header_value(index, buf.as_str());
            }
            None => {
                self.append_header("Max-Forwards", "70");
            }
        }
        self
    }

    /// Replaces the Request-URI.
    pub fn set_request_uri(&mut self, uri: &str) -> &mut Self {
        let (start, end) = self.message.uri_span;
        if end > start {
            self.splice(start, end, |s| s.push_str(uri));
        }
        self
    }

    /// Adds `Content-Length` when it is absent, as stream transports require (RFC 3261 section
    /// 18.3); a no-op otherwise.
    pub fn ensure_content_length(&mut self) -> &mut Self {
        if self.message.content_length().is_none() {
            let len = self.message.body().len() as u32;
            let buf = itoa_buf(len);
            self.append_header("Content-Length", buf.as_str());
        }
        self
    }

    /// Writes the edited message into a new buffer of exactly its size (a forwarded request
    /// or relayed response may be kept for the whole transaction: no slack).
    pub fn finish(&self) -> Vec<u8> {
        let mut len = 0;
        self.pieces(|piece| len += piece.len());
        let mut out = Vec::with_capacity(len);
        self.write_into(&mut out);
        out
    }

    /// Writes the edited message at the end of `out` (lets a caller reuse a buffer).
    pub fn write_into(&self, out: &mut Vec<u8>) {
        self.pieces(|piece| out.extend_from_slice(piece));
    }

    /// Calls `each` with the edited message's pieces in order: runs of the original and
    /// staged text.
    fn pieces<'s>(&'s self, mut each: impl FnMut(&'s [u8])) {
        let original = self.message.bytes;
        let mut at = 0usize;
        for s in &self.splices {
            let start = s.start as usize;
            if start < at {
                // Overlapping edits of the same octets: the first one wins.
                continue;
            }
            each(&original[at..start]);
            each(&self.staged.as_bytes()[s.text.0 as usize..s.text.1 as usize]);
            at = (s.end as usize).max(start);
        }
        each(&original[at..]);
    }
}

/// A small stack buffer for formatting a number without allocating.
struct ItoaBuf {
    bytes: [u8; 10],
    len: usize,
}

impl ItoaBuf {
    fn as_str(&self) -> &str {
        // Only ASCII digits are ever written.
        std::str::from_utf8(&self.bytes[10 - self.len..]).unwrap_or("0")
    }
}

fn itoa_buf(mut n: u32) -> ItoaBuf {
    let mut buf = ItoaBuf {
        bytes: [0; 10],
        len: 0,
    };
    loop {
        buf.len += 1;
        buf.bytes[10 - buf.len] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf
}

impl<'a> Message<'a> {
    /// Starts editing this message.
    pub fn edit(&self) -> Editor<'_, 'a> {
        Editor::new(self)
    }
}

#[cfg(test)]
mod remove_values_tests {
    use super::*;

    #[test]
    fn the_first_values_go_whether_on_one_line_or_on_several() {
        let one_line = b"BYE sip:a@b SIP/2.0\r\nRoute: <sip:p1;lr>, <sip:p2;lr>, <sip:x;lr>\r\nCall-ID: c\r\n\r\n";
        let m = Message::parse(one_line).unwrap();
        let mut e = m.edit();
        e.remove_first_values(HeaderName::Route, 2);
        let out = String::from_utf8(e.finish()).unwrap();
        assert!(out.contains("Route: <sip:x;lr>\r\n"), "{out}");
        let lines = b"BYE sip:a@b SIP/2.0\r\nRoute: <sip:p1;lr>\r\nRoute: <sip:p2;lr>, <sip:x;lr>\r\nCall-ID: c\r\n\r\n";
        let m = Message::parse(lines).unwrap();
        let mut e = m.edit();
        e.remove_first_values(HeaderName::Route, 2);
        let out = String::from_utf8(e.finish()).unwrap();
        assert_eq!(
            out,
            "BYE sip:a@b SIP/2.0\r\nRoute: <sip:x;lr>\r\nCall-ID: c\r\n\r\n"
        );
        let m = Message::parse(lines).unwrap();
        let mut e = m.edit();
        e.remove_first_values(HeaderName::Route, 3);
        let out = String::from_utf8(e.finish()).unwrap();
        assert_eq!(out, "BYE sip:a@b SIP/2.0\r\nCall-ID: c\r\n\r\n");
    }
}

#[cfg(test)]
mod tests {
    use crate::{HeaderName, Message};

    const INVITE: &[u8] = b"INVITE sip:9000@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb\r\n\
Max-Forwards: 70\r\n\
Route: <sip:proxy.example.com;lr>, <sip:other.example.com;lr>\r\n\
From: <sip:8000@example.com>;tag=1\r\n\
To: <sip:9000@example.com>\r\n\
Call-ID: abc\r\n\
CSeq: 1 INVITE\r\n\
X-Unknown:   keep   this  exactly \r\n\
Content-Length: 4\r\n\
\r\n\
body";

    #[test]
    fn forwarding_edits_change_only_what_they_touch() {
        let m = Message::parse(INVITE).unwrap();
        let out = m
            .edit()
            .insert_header_first("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnew")
            .insert_header_first("Record-Route", "<sip:127.0.0.1:5060;lr>")
            .decrement_max_forwards()
            .remove_first_value(HeaderName::Route)
            .set_request_uri("sip:9000@10.0.0.9:5062")
            .finish();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with(
            "INVITE sip:9000@10.0.0.9:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnew\r\nRecord-Route: <sip:127.0.0.1:5060;lr>\r\nVia: SIP/2.0/UDP 10.0.0.1"
        ));
        assert!(text.contains("Max-Forwards: 69\r\n"));
        assert!(text.contains("Route: <sip:other.example.com;lr>\r\n"));
        assert!(text.contains("X-Unknown:   keep   this  exactly \r\n"));
        assert!(text.ends_with("\r\n\r\nbody"));
        let again = Message::parse(&out).unwrap();
        assert_eq!(again.vias().count(), 3);
        assert_eq!(again.max_forwards().unwrap(), Some(69));
        assert_eq!(again.top_via().unwrap().branch(), Some("z9hG4bKnew"));
    }

    #[test]
    fn removing_the_top_via_of_a_comma_list_keeps_the_rest() {
        let m = Message::parse(INVITE).unwrap();
        let out = m.edit().remove_top_via().finish();
        let again = Message::parse(&out).unwrap();
        let vias: Vec<_> = again.vias().map(|v| v.unwrap().host).collect();
        assert_eq!(vias, vec!["10.0.0.2"]);
        let out = again.edit().remove_top_via().finish();
        let third = Message::parse(&out).unwrap();
        assert!(third.top_via().is_err());
    }

    #[test]
    fn missing_max_forwards_is_added_as_70() {
        let raw = b"ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCall-ID: x\r\n\r\n";
        let m = Message::parse(raw).unwrap();
        let out = m
            .edit()
            .decrement_max_forwards()
            .ensure_content_length()
            .finish();
        let again = Message::parse(&out).unwrap();
        assert_eq!(again.max_forwards().unwrap(), Some(70));
        assert_eq!(again.content_length(), Some(0));
    }
}
