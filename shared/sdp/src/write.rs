//! [`SessionDescription`] to text: `Display` for the description and each line's value, writing
//! lines in RFC 8866 section 5 order with CRLF ends.
//!
//! Lines with an undefined type letter are written at the end of their section (after its
//! `a=` lines), since the grammar gives them no place; `parse.rs` reads them back into the same
//! field, so `parse(print(s)) == s` holds for every description the parser produces.

use std::fmt::{self, Display, Formatter};

use crate::attribute::Attribute;
use crate::media::MediaDescription;
use crate::session::{
    Bandwidth, Connection, Origin, Repeat, SessionDescription, TimeZone, TypedTime, UnknownLine,
};

/// Writes `<kind>=<value>` and the CRLF RFC 8866 section 5 requires of senders.
fn line(f: &mut Formatter<'_>, kind: char, value: impl Display) -> fmt::Result {
    write!(f, "{kind}={value}\r\n")
}

impl Display for SessionDescription {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        line(f, 'v', self.version)?;
        line(f, 'o', &self.origin)?;
        line(f, 's', &self.session_name)?;
        if let Some(information) = &self.information {
            line(f, 'i', information)?;
        }
        if let Some(uri) = &self.uri {
            line(f, 'u', uri)?;
        }
        for email in &self.emails {
            line(f, 'e', email)?;
        }
        for phone in &self.phones {
            line(f, 'p', phone)?;
        }
        if let Some(connection) = &self.connection {
            line(f, 'c', connection)?;
        }
        for bandwidth in &self.bandwidths {
            line(f, 'b', bandwidth)?;
        }
        for timing in &self.timings {
            line(f, 't', format_args!("{} {}", timing.start, timing.stop))?;
            for repeat in &timing.repeats {
                line(f, 'r', repeat)?;
            }
        }
        if !self.time_zones.is_empty() {
            line(f, 'z', Spaced(&self.time_zones))?;
        }
        if let Some(key) = &self.key {
            line(f, 'k', key)?;
        }
        tail(f, &self.attributes, &self.unknown_lines)?;
        for media in &self.media {
            write!(f, "{media}")?;
        }
        Ok(())
    }
}

impl Display for MediaDescription {
    /// Writes the whole section, starting with its `m=` line.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.media, self.port)?;
        if let Some(count) = self.port_count {
            write!(f, "/{count}")?;
        }
        write!(f, " {}", self.proto)?;
        for format in &self.formats {
            write!(f, " {format}")?;
        }
        f.write_str("\r\n")?;
        if let Some(information) = &self.information {
            line(f, 'i', information)?;
        }
        for connection in &self.connections {
            line(f, 'c', connection)?;
        }
        for bandwidth in &self.bandwidths {
            line(f, 'b', bandwidth)?;
        }
        if let Some(key) = &self.key {
            line(f, 'k', key)?;
        }
        tail(f, &self.attributes, &self.unknown_lines)
    }
}

fn tail(f: &mut Formatter<'_>, attributes: &[Attribute], unknown: &[UnknownLine]) -> fmt::Result {
    for attribute in attributes {
        line(f, 'a', attribute)?;
    }
    for extra in unknown {
        line(f, extra.kind, &extra.value)?;
    }
    Ok(())
}

/// Items separated by single spaces, as SDP's multi-field lines want.
struct Spaced<'a, T>(&'a [T]);

impl<T: Display> Display for Spaced<'_, T> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (index, item) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

impl Display for Origin {
    /// The value of an `o=` line.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.net_type,
            self.addr_type,
            self.address
        )
    }
}

impl Display for Connection {
    /// The value of a `c=` line.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)
    }
}

impl Display for Bandwidth {
    /// The value of a `b=` line.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.bw_type, self.bandwidth)
    }
}

impl Display for Repeat {
    /// The value of an `r=` line.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.interval, self.active_duration)?;
        for offset in &self.offsets {
            write!(f, " {offset}")?;
        }
        Ok(())
    }
}

impl Display for TimeZone {
    /// One `<adjustment time> <offset>` pair of a `z=` line.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.adjustment_time, self.offset)
    }
}

impl Display for TypedTime {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value)?;
        if let Some(unit) = self.unit {
            write!(f, "{}", unit.letter())?;
        }
        Ok(())
    }
}

impl Display for Attribute {
    /// The value of an `a=` line: `name` or `name:value`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(value) = &self.value {
            write!(f, ":{value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;
    use crate::session::{TimeUnit, Timing};
    use crate::test_data::{seed_answer, seed_offer};
    use proptest::prelude::*;

    #[test]
    fn seed_offer_prints_back_byte_for_byte() {
        let sdp = parse(seed_offer()).unwrap();
        assert_eq!(sdp.to_string(), seed_offer());
    }

    #[test]
    fn seed_answer_prints_back_byte_for_byte() {
        assert_eq!(parse(seed_answer()).unwrap().to_string(), seed_answer());
    }

    #[test]
    fn lf_input_is_printed_with_crlf() {
        let lf = seed_offer().replace("\r\n", "\n");
        assert_eq!(parse(&lf).unwrap().to_string(), seed_offer());
    }

    #[test]
    fn unknown_attribute_round_trips_in_order() {
        let text = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 0\r\na=X-first\r\na=rtpmap:0 PCMU/8000\r\n\
                    a=X-vendor:some value: with colons\r\nq=unknown type\r\n";
        let sdp = parse(text).unwrap();
        assert_eq!(sdp.to_string(), text);
        assert_eq!(parse(&sdp.to_string()).unwrap(), sdp);
    }

    #[test]
    fn every_line_type_prints_in_grammar_order() {
        let text = "v=0\r\no=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\ns=SDP Seminar\r\n\
                    i=A Seminar\r\nu=http://www.example.com/seminars/sdp.pdf\r\n\
                    e=j.doe@example.com (Jane Doe)\r\np=+1 617 555-6011\r\nc=IN IP4 224.2.17.12/127\r\n\
                    b=CT:128\r\nt=2873397496 2873404696\r\nr=7d 1h 0 25h\r\nz=2882844526 -1h\r\n\
                    k=prompt\r\na=recvonly\r\nm=audio 49170 RTP/AVP 0\r\ni=voice\r\n\
                    c=IN IP4 224.2.17.12/127\r\nb=AS:64\r\nk=clear:x\r\na=ptime:20\r\n\
                    m=video 51372/2 RTP/AVP 99\r\na=rtpmap:99 h263-1998/90000\r\n";
        assert_eq!(parse(text).unwrap().to_string(), text);
    }

    fn token() -> impl Strategy<Value = String> {
        "[A-Za-z0-9.\\-/+_*#]{1,12}"
    }

    /// Text as a value may hold it: anything printable but CR and LF, even leading spaces.
    fn text() -> impl Strategy<Value = String> {
        "[ -~\u{e9}\u{20ac}]{0,20}"
    }

    fn typed_time() -> impl Strategy<Value = TypedTime> {
        (
            any::<i32>(),
            prop::option::of(prop::sample::select(vec![
                TimeUnit::Days,
                TimeUnit::Hours,
                TimeUnit::Minutes,
                TimeUnit::Seconds,
            ])),
        )
            .prop_map(|(value, unit)| TypedTime {
                value: value.into(),
                unit,
            })
    }

    fn connection() -> impl Strategy<Value = Connection> {
        (token(), token(), token()).prop_map(|(net_type, addr_type, address)| Connection {
            net_type,
            addr_type,
            address,
        })
    }

    fn bandwidth() -> impl Strategy<Value = Bandwidth> {
        ("[A-Z]{1,4}", any::<u64>())
            .prop_map(|(bw_type, bandwidth)| Bandwidth { bw_type, bandwidth })
    }

    fn attribute() -> impl Strategy<Value = Attribute> {
        ("[a-zA-Z0-9\\-]{1,10}", prop::option::of(text()))
            .prop_map(|(name, value)| Attribute { name, value })
    }

    fn unknown_line() -> impl Strategy<Value = UnknownLine> {
        ("[dfghjlnqwxy]", text()).prop_map(|(kind, value)| UnknownLine {
            kind: kind.chars().next().unwrap_or('x'),
            value,
        })
    }

    fn media() -> impl Strategy<Value = MediaDescription> {
        (
            (token(), any::<u16>(), any::<Option<u16>>(), token()),
            prop::collection::vec(token(), 0..5),
            prop::option::of(text()),
            prop::collection::vec(connection(), 0..2),
            prop::collection::vec(bandwidth(), 0..2),
            prop::option::of(text()),
            prop::collection::vec(attribute(), 0..6),
            prop::collection::vec(unknown_line(), 0..2),
        )
            .prop_map(
                |(
                    (media, port, port_count, proto),
                    formats,
                    information,
                    connections,
                    bandwidths,
                    key,
                    attributes,
                    unknown_lines,
                )| MediaDescription {
                    media,
                    port,
                    port_count,
                    proto,
                    formats,
                    information,
                    connections,
                    bandwidths,
                    key,
                    attributes,
                    unknown_lines,
                },
            )
    }

    fn timing() -> impl Strategy<Value = Timing> {
        let repeat = (
            typed_time(),
            typed_time(),
            prop::collection::vec(typed_time(), 0..3),
        )
            .prop_map(|(interval, active_duration, offsets)| Repeat {
                interval,
                active_duration,
                offsets,
            });
        (
            any::<u64>(),
            any::<u64>(),
            prop::collection::vec(repeat, 0..2),
        )
            .prop_map(|(start, stop, repeats)| Timing {
                start,
                stop,
                repeats,
            })
    }

    fn session() -> impl Strategy<Value = SessionDescription> {
        let origin = (
            token(),
            "[0-9]{1,25}",
            any::<u64>(),
            token(),
            token(),
            token(),
        )
            .prop_map(
                |(username, session_id, session_version, net_type, addr_type, address)| Origin {
                    username,
                    session_id,
                    session_version,
                    net_type,
                    addr_type,
                    address,
                },
            );
        let zone = (any::<u64>(), typed_time()).prop_map(|(adjustment_time, offset)| TimeZone {
            adjustment_time,
            offset,
        });
        (
            (
                any::<u32>(),
                origin,
                text(),
                prop::option::of(text()),
                prop::option::of(text()),
            ),
            (
                prop::collection::vec(text(), 0..2),
                prop::collection::vec(text(), 0..2),
                prop::option::of(connection()),
                prop::collection::vec(bandwidth(), 0..2),
            ),
            (
                prop::collection::vec(timing(), 0..3),
                prop::collection::vec(zone, 0..3),
                prop::option::of(text()),
            ),
            prop::collection::vec(attribute(), 0..5),
            prop::collection::vec(unknown_line(), 0..2),
            prop::collection::vec(media(), 0..4),
        )
            .prop_map(
                |(
                    (version, origin, session_name, information, uri),
                    (emails, phones, connection, bandwidths),
                    (timings, time_zones, key),
                    attributes,
                    unknown_lines,
                    media,
                )| SessionDescription {
                    version,
                    origin,
                    session_name,
                    information,
                    uri,
                    emails,
                    phones,
                    connection,
                    bandwidths,
                    timings,
                    time_zones,
                    key,
                    attributes,
                    unknown_lines,
                    media,
                },
            )
    }

    proptest! {
        #[test]
        fn printed_descriptions_parse_back_to_the_same_struct(sdp in session()) {
            let printed = sdp.to_string();
            prop_assert_eq!(parse(&printed).unwrap(), sdp);
            prop_assert!(printed.ends_with("\r\n"));
        }
    }
}
