//! Text to [`SessionDescription`]: splits the body into lines, checks each line's `<type>=<value>`
//! shape, and hands it to the session or the current media section (RFC 8866 section 5).
//!
//! The reader is lenient where real peers are sloppy and strict where a mistake would change the
//! meaning. It accepts bare LF line ends (RFC 8866 section 5 asks parsers to), blank lines, lines
//! out of the grammar's order, and type letters SDP does not define (kept to be written back).
//! It refuses malformed values of the lines it types, repeats of single lines, session-only lines
//! inside a media section, and anything over [`MAX_SDP_LEN`]; every refusal names the line.

use std::str::FromStr;

use crate::attribute::Attribute;
use crate::error::SdpError;
use crate::media::MediaDescription;
use crate::session::{
    Bandwidth, Connection, Origin, Repeat, SessionDescription, TimeUnit, TimeZone, Timing,
    TypedTime, UnknownLine,
};

/// The largest body [`parse`] reads: 64 KiB, the most one UDP datagram can carry, so no honest
/// SIP message holds a bigger SDP.
pub const MAX_SDP_LEN: usize = 64 * 1024;

/// Parses a session description from text.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    check_size(text.len())?;
    let mut reader = Reader::default();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let number = index + 1;
        let (kind, value) = split_line(number, line)?;
        reader
            .line(kind, value)
            .map_err(|reason| SdpError::BadLine {
                line: number,
                kind,
                reason,
            })?;
    }
    reader.finish()
}

/// Parses a session description from bytes, as it arrives in a SIP body; the bytes must be
/// UTF-8 (which covers the ASCII every real peer sends).
pub fn parse_bytes(bytes: &[u8]) -> Result<SessionDescription, SdpError> {
    check_size(bytes.len())?;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let before = bytes.get(..e.valid_up_to()).unwrap_or_default();
        SdpError::NotUtf8 {
            line: before.iter().filter(|b| **b == b'\n').count() + 1,
        }
    })?;
    parse(text)
}

impl FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(text: &str) -> Result<Self, SdpError> {
        parse(text)
    }
}

fn check_size(len: usize) -> Result<(), SdpError> {
    if len > MAX_SDP_LEN {
        return Err(SdpError::TooLarge {
            len,
            max: MAX_SDP_LEN,
        });
    }
    Ok(())
}

/// Splits `<type>=<value>`, refusing what RFC 8866 section 5 forbids: anything but one lowercase
/// letter before `=`, and CR or NUL inside a value.
fn split_line(number: usize, line: &str) -> Result<(char, &str), SdpError> {
    let kind = line.chars().next().unwrap_or('?');
    let bad = |reason: &str| SdpError::BadLine {
        line: number,
        kind,
        reason: reason.to_owned(),
    };
    if !kind.is_ascii_lowercase() {
        return Err(bad("a line must start with a lowercase type letter"));
    }
    let value = line
        .get(1..)
        .and_then(|rest| rest.strip_prefix('='))
        .ok_or_else(|| bad("expected `=` right after the type letter"))?;
    if value.contains(['\r', '\0']) {
        return Err(bad("CR or NUL inside a line"));
    }
    Ok((kind, value))
}

/// The description being read; `v=`, `o=` and `s=` are held apart until [`Reader::finish`]
/// checks they were all there.
#[derive(Default)]
struct Reader {
    version: Option<u32>,
    origin: Option<Origin>,
    session_name: Option<String>,
    information: Option<String>,
    uri: Option<String>,
    emails: Vec<String>,
    phones: Vec<String>,
    connection: Option<Connection>,
    bandwidths: Vec<Bandwidth>,
    timings: Vec<Timing>,
    time_zones: Vec<TimeZone>,
    key: Option<String>,
    attributes: Vec<Attribute>,
    unknown_lines: Vec<UnknownLine>,
    media: Vec<MediaDescription>,
}

impl Reader {
    fn line(&mut self, kind: char, value: &str) -> Result<(), String> {
        if self.version.is_none() && kind != 'v' {
            return Err("the first line must be v=".to_owned());
        }
        if kind == 'm' {
            self.media.push(parse_media(value)?);
            return Ok(());
        }
        match self.media.last_mut() {
            Some(media) => media_line(media, kind, value),
            None => self.session_line(kind, value),
        }
    }

    fn session_line(&mut self, kind: char, value: &str) -> Result<(), String> {
        match kind {
            'v' => set_once(&mut self.version, parse_number(value, "version")?)?,
            'o' => set_once(&mut self.origin, parse_origin(value)?)?,
            's' => set_once(&mut self.session_name, value.to_owned())?,
            'i' => set_once(&mut self.information, value.to_owned())?,
            'u' => set_once(&mut self.uri, value.to_owned())?,
            'e' => self.emails.push(value.to_owned()),
            'p' => self.phones.push(value.to_owned()),
            'c' => set_once(&mut self.connection, parse_connection(value)?)?,
            'b' => self.bandwidths.push(parse_bandwidth(value)?),
            't' => self.timings.push(parse_timing(value)?),
            'r' => {
                let timing = self.timings.last_mut().ok_or("r= without a t= before it")?;
                timing.repeats.push(parse_repeat(value)?);
            }
            'z' => self.time_zones.extend(parse_time_zones(value)?),
            'k' => set_once(&mut self.key, value.to_owned())?,
            'a' => self.attributes.push(parse_attribute(value)?),
            _ => self.unknown_lines.push(UnknownLine {
                kind,
                value: value.to_owned(),
            }),
        }
        Ok(())
    }

    fn finish(self) -> Result<SessionDescription, SdpError> {
        let version = self.version.ok_or(SdpError::Empty)?;
        let origin = self.origin.ok_or(SdpError::Missing { kind: 'o' })?;
        let session_name = self.session_name.ok_or(SdpError::Missing { kind: 's' })?;
        Ok(SessionDescription {
            version,
            origin,
            session_name,
            information: self.information,
            uri: self.uri,
            emails: self.emails,
            phones: self.phones,
            connection: self.connection,
            bandwidths: self.bandwidths,
            timings: self.timings,
            time_zones: self.time_zones,
            key: self.key,
            attributes: self.attributes,
            unknown_lines: self.unknown_lines,
            media: self.media,
        })
    }
}

fn media_line(media: &mut MediaDescription, kind: char, value: &str) -> Result<(), String> {
    match kind {
        'i' => set_once(&mut media.information, value.to_owned())?,
        'c' => media.connections.push(parse_connection(value)?),
        'b' => media.bandwidths.push(parse_bandwidth(value)?),
        'k' => set_once(&mut media.key, value.to_owned())?,
        'a' => media.attributes.push(parse_attribute(value)?),
        'v' | 'o' | 's' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' => {
            return Err(format!("{kind}= belongs before the first m= line"));
        }
        _ => media.unknown_lines.push(UnknownLine {
            kind,
            value: value.to_owned(),
        }),
    }
    Ok(())
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), String> {
    if slot.is_some() {
        return Err("this line may appear only once here".to_owned());
    }
    *slot = Some(value);
    Ok(())
}

fn parse_number<T: FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{what} `{text}` is not a valid number"))
}

fn fields<const N: usize>(value: &str, layout: &str) -> Result<[String; N], String> {
    let parts: Vec<&str> = value.split_ascii_whitespace().collect();
    let array: [&str; N] = parts
        .try_into()
        .map_err(|_| format!("expected `{layout}`"))?;
    Ok(array.map(str::to_owned))
}

fn parse_origin(value: &str) -> Result<Origin, String> {
    let [username, session_id, version, net_type, addr_type, address] = fields(
        value,
        "<username> <sess-id> <sess-version> <nettype> <addrtype> <address>",
    )?;
    Ok(Origin {
        username,
        session_id,
        session_version: parse_number(&version, "session version")?,
        net_type,
        addr_type,
        address,
    })
}

pub(crate) fn parse_connection(value: &str) -> Result<Connection, String> {
    let [net_type, addr_type, address] = fields(value, "<nettype> <addrtype> <address>")?;
    Ok(Connection {
        net_type,
        addr_type,
        address,
    })
}

fn parse_bandwidth(value: &str) -> Result<Bandwidth, String> {
    let (bw_type, bandwidth) = value
        .split_once(':')
        .filter(|(t, _)| !t.is_empty())
        .ok_or("expected `<bwtype>:<bandwidth>`")?;
    Ok(Bandwidth {
        bw_type: bw_type.to_owned(),
        bandwidth: parse_number(bandwidth, "bandwidth")?,
    })
}

fn parse_timing(value: &str) -> Result<Timing, String> {
    let [start, stop] = fields(value, "<start-time> <stop-time>")?;
    Ok(Timing {
        start: parse_number(&start, "start time")?,
        stop: parse_number(&stop, "stop time")?,
        repeats: Vec::new(),
    })
}

fn parse_repeat(value: &str) -> Result<Repeat, String> {
    let times = value
        .split_ascii_whitespace()
        .map(parse_typed_time)
        .collect::<Result<Vec<_>, _>>()?;
    match times.as_slice() {
        [interval, active_duration, offsets @ ..] => Ok(Repeat {
            interval: *interval,
            active_duration: *active_duration,
            offsets: offsets.to_vec(),
        }),
        _ => Err("expected `<interval> <duration> <offsets>...`".to_owned()),
    }
}

fn parse_time_zones(value: &str) -> Result<Vec<TimeZone>, String> {
    let parts: Vec<&str> = value.split_ascii_whitespace().collect();
    if parts.is_empty() || parts.len() % 2 != 0 {
        return Err("expected pairs of `<adjustment time> <offset>`".to_owned());
    }
    parts
        .chunks_exact(2)
        .map(|pair| {
            Ok(TimeZone {
                adjustment_time: parse_number(pair[0], "adjustment time")?,
                offset: parse_typed_time(pair[1])?,
            })
        })
        .collect()
}

fn parse_typed_time(text: &str) -> Result<TypedTime, String> {
    let unit = text.chars().last().and_then(TimeUnit::from_letter);
    // The unit letters are ASCII, so dropping one byte stays on a char boundary.
    let number = if unit.is_some() {
        text.get(..text.len() - 1).unwrap_or_default()
    } else {
        text
    };
    Ok(TypedTime {
        value: parse_number(number, "time")?,
        unit,
    })
}

fn parse_attribute(value: &str) -> Result<Attribute, String> {
    let (name, value) = match value.split_once(':') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (value, None),
    };
    if name.is_empty() {
        return Err("empty attribute name".to_owned());
    }
    Ok(Attribute {
        name: name.to_owned(),
        value,
    })
}

fn parse_media(value: &str) -> Result<MediaDescription, String> {
    let mut parts = value.split_ascii_whitespace();
    let (Some(media), Some(port), Some(proto)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected `<media> <port> <proto> <fmt>...`".to_owned());
    };
    let (port, port_count) = match port.split_once('/') {
        Some((port, count)) => (port, Some(parse_number(count, "port count")?)),
        None => (port, None),
    };
    let mut description = MediaDescription::new(
        media,
        parse_number(port, "port")?,
        proto,
        parts.map(str::to_owned).collect(),
    );
    description.port_count = port_count;
    Ok(description)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribute::Direction;
    use crate::test_data::{seed_answer, seed_offer};
    use proptest::prelude::*;

    #[test]
    fn seed_offer_parses_to_its_origin_connection_and_media_line() {
        let sdp = parse(seed_offer()).unwrap();
        assert_eq!(sdp.origin.username, "8000");
        assert_eq!(sdp.origin.session_id, "206154");
        assert_eq!(sdp.origin.session_version, 206154);
        assert_eq!(sdp.origin.address, "192.168.3.175");
        assert_eq!(sdp.session_name, "ATA186 Call");
        assert_eq!(sdp.connection.as_ref().unwrap().address, "192.168.3.175");
        assert_eq!(
            sdp.timings,
            [Timing {
                start: 0,
                stop: 0,
                repeats: vec![]
            }]
        );
        let audio = &sdp.media[0];
        assert_eq!(sdp.media.len(), 1);
        assert_eq!((audio.media.as_str(), audio.port), ("audio", 10000));
        assert_eq!(audio.proto, "RTP/AVP");
        assert_eq!(audio.formats, ["0", "18", "8", "101"]);
        assert_eq!(audio.attributes.len(), 5);
    }

    #[test]
    fn seed_answer_parses() {
        let sdp = parse(seed_answer()).unwrap();
        assert_eq!(sdp.origin.username, "9000");
        assert_eq!(sdp.media[0].formats, ["0", "101"]);
        assert_eq!(sdp.connection.unwrap().address, "192.168.2.194");
    }

    #[test]
    fn bare_lf_line_ends_read_the_same_as_crlf() {
        let lf = seed_offer().replace("\r\n", "\n");
        assert_eq!(parse(&lf).unwrap(), parse(seed_offer()).unwrap());
    }

    #[test]
    fn bytes_and_text_parse_alike() {
        assert_eq!(
            parse_bytes(seed_offer().as_bytes()).unwrap(),
            parse(seed_offer()).unwrap()
        );
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let mut body = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=".to_vec();
        body.push(0xff);
        assert_eq!(parse_bytes(&body), Err(SdpError::NotUtf8 { line: 3 }));
    }

    #[test]
    fn unknown_attributes_and_line_types_are_kept_in_order() {
        let sdp = parse(
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nx=vendor thing\r\na=X-cisco:1\r\n\
             m=audio 4000 RTP/AVP 0\r\na=foo\r\ny=media extra\r\na=bar:baz qux\r\n",
        )
        .unwrap();
        assert_eq!(sdp.unknown_lines[0].kind, 'x');
        assert_eq!(sdp.attributes, [Attribute::value("X-cisco", "1")]);
        let m = &sdp.media[0];
        assert_eq!(
            m.attributes,
            [
                Attribute::property("foo"),
                Attribute::value("bar", "baz qux")
            ]
        );
        assert_eq!(m.unknown_lines[0].value, "media extra");
    }

    #[test]
    fn media_direction_overrides_session_direction() {
        let sdp = parse(
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\na=sendonly\n\
             m=audio 4000 RTP/AVP 0\na=inactive\nm=audio 4002 RTP/AVP 0\n",
        )
        .unwrap();
        assert_eq!(sdp.direction(), Some(Direction::SendOnly));
        assert_eq!(sdp.media_direction(&sdp.media[0]), Direction::Inactive);
        assert_eq!(sdp.media_direction(&sdp.media[1]), Direction::SendOnly);
    }

    #[test]
    fn repeat_and_zone_lines_keep_their_units() {
        let sdp = parse(
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=3034423619 3042462419\n\
             r=7d 1h 0 25h\nz=2882844526 -1h 2898848070 0\n",
        )
        .unwrap();
        let repeat = &sdp.timings[0].repeats[0];
        assert_eq!(repeat.interval.as_seconds(), 604_800);
        assert_eq!(repeat.offsets.len(), 2);
        assert_eq!(sdp.time_zones[0].offset.as_seconds(), -3600);
        assert_eq!(sdp.time_zones[1].adjustment_time, 2898848070);
    }

    #[test]
    fn port_count_is_read_from_the_media_line() {
        let sdp = parse("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nm=video 49170/2 RTP/AVP 31\n").unwrap();
        assert_eq!(sdp.media[0].port, 49170);
        assert_eq!(sdp.media[0].port_count, Some(2));
    }

    fn bad_line(text: &str) -> (usize, char, String) {
        match parse(text) {
            Err(SdpError::BadLine { line, kind, reason }) => (line, kind, reason),
            other => panic!("expected BadLine, got {other:?}"),
        }
    }

    #[test]
    fn bad_media_port_is_reported_on_its_line() {
        let (line, kind, reason) =
            bad_line("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio x RTP/AVP 0\r\n");
        assert_eq!((line, kind), (5, 'm'));
        assert!(reason.contains("port"), "{reason}");
    }

    #[test]
    fn short_origin_is_reported_on_its_line() {
        assert_eq!(bad_line("v=0\no=- 1 1 IN IP4\ns=-\n").0, 2);
    }

    #[test]
    fn line_numbers_count_skipped_blank_lines() {
        let (line, kind, _) = bad_line("v=0\n\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4\n");
        assert_eq!((line, kind), (5, 'c'));
    }

    #[test]
    fn line_without_equals_is_refused() {
        assert_eq!(bad_line("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nhello\n").0, 4);
        assert_eq!(
            bad_line("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nm =audio\n").1,
            'm'
        );
    }

    #[test]
    fn uppercase_type_letter_is_refused() {
        assert_eq!(bad_line("v=0\nO=- 1 1 IN IP4 1.2.3.4\n").1, 'O');
    }

    #[test]
    fn description_must_start_with_version() {
        assert_eq!(
            bad_line("o=- 1 1 IN IP4 1.2.3.4\nv=0\n"),
            (1, 'o', "the first line must be v=".into())
        );
    }

    #[test]
    fn session_only_lines_inside_media_are_refused() {
        let (line, kind, _) =
            bad_line("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nm=audio 1 RTP/AVP 0\nt=0 0\n");
        assert_eq!((line, kind), (5, 't'));
    }

    #[test]
    fn repeated_single_lines_are_refused() {
        assert_eq!(bad_line("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\ns=again\n").0, 4);
    }

    #[test]
    fn repeat_without_timing_is_refused() {
        assert_eq!(
            bad_line("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nr=1 1 0\n").1,
            'r'
        );
    }

    #[test]
    fn carriage_return_inside_a_line_is_refused() {
        assert_eq!(bad_line("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=a\rb\n").0, 3);
    }

    #[test]
    fn missing_origin_and_name_are_named() {
        assert_eq!(parse("v=0\ns=-\n"), Err(SdpError::Missing { kind: 'o' }));
        assert_eq!(
            parse("v=0\no=- 1 1 IN IP4 1.2.3.4\n"),
            Err(SdpError::Missing { kind: 's' })
        );
        assert_eq!(parse("\r\n\r\n"), Err(SdpError::Empty));
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let big = "a".repeat(MAX_SDP_LEN + 1);
        assert!(matches!(parse(&big), Err(SdpError::TooLarge { .. })));
        assert!(matches!(
            parse_bytes(big.as_bytes()),
            Err(SdpError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_bytes(&bytes);
        }

        #[test]
        fn parsing_sdp_shaped_text_never_panics(text in "([a-z=]{1,3}[ -~]{0,30}\r?\n){0,20}") {
            let _ = parse(&text);
        }
    }
}
