//! RFC 3264 offer/answer for one audio stream: building an offer from a local codec list,
//! answering an offer, and reading the answer to an offer we made.
//!
//! An ATA has one line and one RTP port, so at most one audio stream is accepted; every other
//! `m=` line is answered with port 0. The result of either side of the exchange is a
//! [`NegotiatedAudio`] saying which codec to send, where, and in which direction. Re-offers (hold,
//! resume) live in `reoffer.rs`; this module does the first exchange and any later answer.

use std::net::{IpAddr, SocketAddr};

use crate::attribute::{Attribute, Direction};
use crate::codec::Codec;
use crate::error::NegotiationError;
use crate::media::MediaDescription;
use crate::session::{Connection, Origin, SessionDescription, Timing};

/// The only RTP profile the ATAs speak.
const RTP_AVP: &str = "RTP/AVP";

/// Who we are in the `o=` line and where we receive RTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSession {
    /// `o=` username; `-` when there is none.
    pub username: String,
    /// `o=` session id, fixed for the life of the call.
    pub session_id: u64,
    /// `o=` session version of the description about to be built.
    pub session_version: u64,
    /// `s=` value.
    pub session_name: String,
    /// Our RTP address, written in `o=` and `c=`.
    pub address: IpAddr,
    /// Our RTP port.
    pub rtp_port: u16,
    /// Packet time we want to receive, written as `a=ptime`.
    pub ptime: Option<u32>,
    /// The most we are willing to do; an answer never goes beyond it.
    pub direction: Direction,
}

impl LocalSession {
    /// A send-and-receive session whose first version equals its id (the usual choice, and what
    /// the seed's ATAs do), named `-` as RFC 3264 section 5 suggests.
    pub fn new(
        username: impl Into<String>,
        session_id: u64,
        address: IpAddr,
        rtp_port: u16,
    ) -> Self {
        LocalSession {
            username: username.into(),
            session_id,
            session_version: session_id,
            session_name: "-".to_owned(),
            address,
            rtp_port,
            ptime: None,
            direction: Direction::SendRecv,
        }
    }

    fn description(&self) -> SessionDescription {
        let origin = Origin::new(
            self.username.clone(),
            self.session_id,
            self.session_version,
            self.address,
        );
        let mut description = SessionDescription::new(origin, self.session_name.clone());
        description.connection = Some(Connection::from_ip(self.address));
        description
    }
}

/// What one side of a finished exchange does with the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedAudio {
    /// Index of the audio `m=` line in the offer and answer.
    pub media_index: usize,
    /// The codec to send with, carrying the payload type the peer expects to receive.
    pub codec: Codec,
    /// The peer's telephone-event payload type, when both sides support RFC 4733.
    pub telephone_event: Option<u8>,
    /// The peer's connection line for this stream.
    pub remote_connection: Connection,
    /// The peer's RTP port.
    pub remote_port: u16,
    /// Our direction: whether we send and whether we receive.
    pub direction: Direction,
    /// The packet time the peer asked to receive.
    pub remote_ptime: Option<u32>,
}

impl NegotiatedAudio {
    /// Where to send RTP; `None` for a host name, or for the RFC 2543 hold address, where
    /// nothing should be sent.
    pub fn remote_rtp(&self) -> Option<SocketAddr> {
        if self.remote_connection.is_hold_address() {
            return None;
        }
        let ip = self.remote_connection.ip()?;
        Some(SocketAddr::new(ip, self.remote_port))
    }
}

/// An answer ready to send, and what it commits us to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The description to put in the response body.
    pub description: SessionDescription,
    /// The accepted audio stream.
    pub audio: NegotiatedAudio,
}

/// Builds an offer with one audio stream carrying `codecs` in the given (preference) order.
///
/// Fails when two codecs share a payload type, or when there is no voice codec at all.
pub fn build_offer(
    codecs: &[Codec],
    local: &LocalSession,
) -> Result<SessionDescription, NegotiationError> {
    check_local_codecs(codecs)?;
    let mut offer = local.description();
    offer.timings = vec![unbounded()];
    offer.media = vec![audio_media(local, RTP_AVP, codecs, local.direction)];
    Ok(offer)
}

/// Answers `offer` with the codecs in `local_codecs` (RFC 3264 section 6).
///
/// The first audio stream with a common voice codec is accepted: its answer lists the offered
/// codecs we support in the offer's order with the offer's payload numbers (section 6.1), plus
/// telephone-event when both sides have it, and mirrors the offered direction. Every other
/// `m=` line gets port 0. With no common voice codec anywhere the error is
/// [`NegotiationError::NoCommonCodec`], which the caller answers with 488.
pub fn negotiate_answer(
    offer: &SessionDescription,
    local_codecs: &[Codec],
    local: &LocalSession,
) -> Result<Answer, NegotiationError> {
    let mut description = local.description();
    // Section 6: the answer's t= must equal the offer's.
    description.timings = if offer.timings.is_empty() {
        vec![unbounded()]
    } else {
        offer.timings.clone()
    };
    let mut accepted = None;
    for (index, offered) in offer.media.iter().enumerate() {
        let answer = match accepted {
            // One line, one RTP port: a second audio stream has nowhere to go.
            Some(_) => None,
            None => accept_audio(offer, index, offered, local_codecs, local)?,
        };
        match answer {
            Some((media, audio)) => {
                description.media.push(media);
                accepted = Some(audio);
            }
            None => description.media.push(rejected(offered)),
        }
    }
    let audio = accepted.ok_or(NegotiationError::NoCommonCodec)?;
    Ok(Answer { description, audio })
}

/// Reads the answer to an offer we sent (RFC 3264 section 7): which codec to send (the first
/// answered one we offered), where, with which telephone-event payload type, in which direction.
pub fn process_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<NegotiatedAudio, NegotiationError> {
    if offer.media.len() != answer.media.len() {
        return Err(NegotiationError::MediaCountMismatch {
            offered: offer.media.len(),
            answered: answer.media.len(),
        });
    }
    for (index, (ours, theirs)) in offer.media.iter().zip(&answer.media).enumerate() {
        if !ours.is_audio() || ours.port == 0 || theirs.port == 0 {
            continue;
        }
        let offered = ours.codecs();
        let answered = theirs.codecs();
        let Some(codec) = answered
            .iter()
            .find(|c| !c.is_telephone_event() && offered.iter().any(|o| o.same_codec(c)))
        else {
            continue;
        };
        let events: Vec<&Codec> = answered
            .iter()
            .filter(|c| c.is_telephone_event() && offered.iter().any(|o| o.same_codec(c)))
            .collect();
        let remote_connection = answer
            .media_connection(theirs)
            .ok_or(NegotiationError::MissingConnection { media_index: index })?;
        let direction = answer
            .stream_direction(theirs)
            .reversed()
            .intersect(offer.media_direction(ours));
        return Ok(NegotiatedAudio {
            media_index: index,
            codec: codec.clone(),
            telephone_event: telephone_event_for(codec, &events),
            remote_connection: remote_connection.clone(),
            remote_port: theirs.port,
            direction,
            remote_ptime: theirs.ptime(),
        });
    }
    Err(NegotiationError::NoCommonCodec)
}

fn check_local_codecs(codecs: &[Codec]) -> Result<(), NegotiationError> {
    for (index, codec) in codecs.iter().enumerate() {
        if codecs[..index]
            .iter()
            .any(|c| c.payload_type == codec.payload_type)
        {
            return Err(NegotiationError::DuplicatePayloadType {
                payload_type: codec.payload_type,
            });
        }
    }
    if codecs.iter().all(Codec::is_telephone_event) {
        return Err(NegotiationError::NoLocalCodec);
    }
    Ok(())
}

/// `t=0 0`, the unbounded session every SIP call uses (RFC 3264 section 5).
fn unbounded() -> Timing {
    Timing {
        start: 0,
        stop: 0,
        repeats: Vec::new(),
    }
}

/// Tries to accept one offered stream; `Ok(None)` means answer it with port 0.
fn accept_audio(
    offer: &SessionDescription,
    index: usize,
    offered: &MediaDescription,
    local_codecs: &[Codec],
    local: &LocalSession,
) -> Result<Option<(MediaDescription, NegotiatedAudio)>, NegotiationError> {
    if !offered.is_audio() || !offered.is_rtp_avp() || offered.port == 0 {
        return Ok(None);
    }
    // Offer order, offer payload numbers; our fmtp, since an answer's fmtp says what we accept.
    let common: Vec<Codec> = offered
        .codecs()
        .into_iter()
        .filter_map(|theirs| {
            let ours = local_codecs.iter().find(|l| l.same_codec(&theirs))?;
            Some(Codec {
                fmtp: ours.fmtp.clone(),
                ..theirs
            })
        })
        .collect();
    let Some(codec) = common.iter().find(|c| !c.is_telephone_event()) else {
        return Ok(None);
    };
    let remote_connection = offer
        .media_connection(offered)
        .ok_or(NegotiationError::MissingConnection { media_index: index })?;
    let direction = offer
        .stream_direction(offered)
        .reversed()
        .intersect(local.direction);
    let events: Vec<&Codec> = common.iter().filter(|c| c.is_telephone_event()).collect();
    let audio = NegotiatedAudio {
        media_index: index,
        codec: codec.clone(),
        telephone_event: telephone_event_for(codec, &events),
        remote_connection: remote_connection.clone(),
        remote_port: offered.port,
        direction,
        remote_ptime: offered.ptime(),
    };
    let media = audio_media(local, &offered.proto, &common, direction);
    Ok(Some((media, audio)))
}

/// The telephone-event at the voice codec's clock rate, else the first one (RFC 4733 section
/// 2.1 ties the event clock to the audio clock, but peers are not always careful).
fn telephone_event_for(codec: &Codec, events: &[&Codec]) -> Option<u8> {
    events
        .iter()
        .find(|e| e.clock_rate == codec.clock_rate)
        .or_else(|| events.first())
        .map(|e| e.payload_type)
}

/// A stream answered with port 0 (RFC 3264 section 6): same media and proto, the offered
/// formats, no attributes.
fn rejected(offered: &MediaDescription) -> MediaDescription {
    MediaDescription::new(
        offered.media.clone(),
        0,
        offered.proto.clone(),
        offered.formats.clone(),
    )
}

/// An `m=audio` section with an rtpmap (and fmtp) per codec, as the seed's ATAs write them even
/// for static types, then ptime, then the direction when it is not the default.
fn audio_media(
    local: &LocalSession,
    proto: &str,
    codecs: &[Codec],
    direction: Direction,
) -> MediaDescription {
    let formats = codecs.iter().map(|c| c.payload_type.to_string()).collect();
    let mut media = MediaDescription::new("audio", local.rtp_port, proto, formats);
    for codec in codecs {
        media
            .attributes
            .push(Attribute::value("rtpmap", codec.rtpmap().to_string()));
        if let Some(fmtp) = &codec.fmtp {
            media.attributes.push(Attribute::value(
                "fmtp",
                format!("{} {fmtp}", codec.payload_type),
            ));
        }
    }
    if let Some(ptime) = local.ptime {
        media
            .attributes
            .push(Attribute::value("ptime", ptime.to_string()));
    }
    if direction != Direction::SendRecv {
        media.set_direction(direction);
    }
    media
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an ATA offers by default: G.711 both laws and telephone-event.
    fn g711_and_events() -> Vec<Codec> {
        vec![Codec::pcmu(), Codec::pcma(), Codec::telephone_event(101)]
    }
    use crate::parse::parse;
    use crate::test_data::{seed_answer, seed_offer};

    fn answerer() -> LocalSession {
        LocalSession::new("9000", 206275, "192.168.2.194".parse().unwrap(), 10000)
    }

    fn pcmu_pcma_dtmf() -> Vec<Codec> {
        vec![Codec::pcmu(), Codec::pcma(), Codec::telephone_event(101)]
    }

    fn names_and_types(codecs: &[Codec]) -> Vec<(String, u8)> {
        codecs
            .iter()
            .map(|c| (c.name.clone(), c.payload_type))
            .collect()
    }

    #[test]
    fn seed_offer_lists_exactly_its_four_codecs_at_its_address() {
        let offer = parse(seed_offer()).unwrap();
        let audio = &offer.media[0];
        assert_eq!(
            names_and_types(&audio.codecs()),
            [
                ("PCMU".into(), 0),
                ("G729".into(), 18),
                ("PCMA".into(), 8),
                ("telephone-event".into(), 101)
            ]
        );
        assert_eq!(audio.codecs()[3].fmtp.as_deref(), Some("0-15"));
        let connection = offer.media_connection(audio).unwrap();
        assert_eq!(connection.ip(), Some("192.168.3.175".parse().unwrap()));
        assert_eq!(audio.port, 10000);
    }

    #[test]
    fn answer_to_seed_offer_keeps_pcmu_and_telephone_event_in_offer_order() {
        let offer = parse(seed_offer()).unwrap();
        let answer = negotiate_answer(&offer, &pcmu_pcma_dtmf(), &answerer()).unwrap();
        let media = &answer.description.media[0];
        // PCMA is common too, but the offer listed it after G729; PCMU leads as offered.
        assert_eq!(media.formats, ["0", "8", "101"]);
        assert_eq!(answer.audio.codec, Codec::pcmu());
        assert_eq!(answer.audio.telephone_event, Some(101));
        assert_eq!(
            answer.audio.remote_rtp(),
            Some("192.168.3.175:10000".parse().unwrap())
        );
        assert_eq!(answer.audio.direction, Direction::SendRecv);
    }

    #[test]
    fn answer_with_pcmu_and_dtmf_only_matches_the_seed_answer_media() {
        let offer = parse(seed_offer()).unwrap();
        let local = vec![Codec::pcmu(), Codec::telephone_event(101)];
        let mut me = answerer();
        me.username = "9000".into();
        me.session_name = "ATA186 Call".into();
        let answer = negotiate_answer(&offer, &local, &me).unwrap();
        assert_eq!(answer.description.to_string(), seed_answer());
    }

    #[test]
    fn answer_against_pcma_only_picks_pcma_8() {
        let offer = parse(seed_offer()).unwrap();
        let answer = negotiate_answer(&offer, &[Codec::pcma()], &answerer()).unwrap();
        assert_eq!(answer.description.media[0].formats, ["8"]);
        assert_eq!(answer.audio.codec.payload_type, 8);
        assert_eq!(answer.audio.telephone_event, None);
    }

    #[test]
    fn answer_against_g729_only_picks_g729_18_and_refuses_annex_b() {
        let offer = parse(seed_offer()).unwrap();
        let answer = negotiate_answer(&offer, &[Codec::g729()], &answerer()).unwrap();
        assert_eq!(answer.description.media[0].formats, ["18"]);
        assert_eq!(answer.audio.codec, Codec::g729());
        assert!(answer
            .description
            .to_string()
            .contains("a=rtpmap:18 G729/8000/1\r\na=fmtp:18 annexb=no\r\n"));
    }

    #[test]
    fn answer_against_g722_only_fails_for_a_488() {
        let offer = parse(seed_offer()).unwrap();
        let result = negotiate_answer(&offer, &[Codec::g722()], &answerer());
        assert_eq!(result, Err(NegotiationError::NoCommonCodec));
    }

    #[test]
    fn telephone_event_alone_is_not_a_common_codec() {
        let offer = parse(seed_offer()).unwrap();
        let result = negotiate_answer(&offer, &[Codec::telephone_event(101)], &answerer());
        assert_eq!(result, Err(NegotiationError::NoCommonCodec));
    }

    #[test]
    fn answer_keeps_offered_dynamic_payload_numbers() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             m=audio 5000 RTP/AVP 96 0 97\r\na=rtpmap:96 opus/48000/2\r\n\
             a=rtpmap:97 telephone-event/8000\r\na=fmtp:97 0-16\r\n",
        )
        .unwrap();
        let local = vec![
            Codec::opus(111),
            Codec::pcmu(),
            Codec::pcma(),
            Codec::telephone_event(101),
        ];
        let answer = negotiate_answer(&offer, &local, &answerer()).unwrap();
        let media = &answer.description.media[0];
        assert_eq!(media.formats, ["96", "0", "97"]);
        assert_eq!(media.fmtp(97).unwrap().parameters, "0-15");
        assert_eq!(answer.audio.codec.name, "opus");
        assert_eq!(answer.audio.codec.payload_type, 96);
        assert_eq!(answer.audio.telephone_event, Some(97));
    }

    #[test]
    fn streams_without_a_common_codec_or_beyond_the_first_are_rejected_with_port_0() {
        let offer = parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             m=video 5002 RTP/AVP 31\r\nm=audio 5004 RTP/AVP 9\r\n\
             m=audio 5000 RTP/AVP 0\r\nm=audio 5006 RTP/AVP 0\r\n",
        )
        .unwrap();
        let answer = negotiate_answer(&offer, &pcmu_pcma_dtmf(), &answerer()).unwrap();
        let ports: Vec<u16> = answer.description.media.iter().map(|m| m.port).collect();
        assert_eq!(ports, [0, 0, 10000, 0]);
        assert_eq!(answer.description.media[0].formats, ["31"]);
        assert_eq!(answer.audio.media_index, 2);
    }

    fn offer_with(direction_lines: &str, address: &str) -> SessionDescription {
        parse(&format!(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\n\
             m=audio 5000 RTP/AVP 0\r\n{direction_lines}"
        ))
        .unwrap()
    }

    fn answered_direction(offer: &SessionDescription) -> Direction {
        let answer = negotiate_answer(offer, &pcmu_pcma_dtmf(), &answerer()).unwrap();
        let written = answer
            .description
            .media_direction(&answer.description.media[0]);
        assert_eq!(written, answer.audio.direction);
        written
    }

    #[test]
    fn answer_mirrors_the_offered_direction() {
        let cases = [
            ("", Direction::SendRecv),
            ("a=sendrecv\r\n", Direction::SendRecv),
            ("a=sendonly\r\n", Direction::RecvOnly),
            ("a=recvonly\r\n", Direction::SendOnly),
            ("a=inactive\r\n", Direction::Inactive),
        ];
        for (lines, expected) in cases {
            assert_eq!(
                answered_direction(&offer_with(lines, "10.0.0.1")),
                expected,
                "{lines}"
            );
        }
    }

    #[test]
    fn rfc2543_hold_address_is_answered_as_a_hold() {
        let offer = offer_with("", "0.0.0.0");
        assert_eq!(answered_direction(&offer), Direction::RecvOnly);
        let answer = negotiate_answer(&offer, &pcmu_pcma_dtmf(), &answerer()).unwrap();
        assert_eq!(answer.audio.remote_rtp(), None);
    }

    #[test]
    fn answer_never_exceeds_the_local_direction() {
        let mut me = answerer();
        me.direction = Direction::RecvOnly;
        let offer = offer_with("", "10.0.0.1");
        let answer = negotiate_answer(&offer, &pcmu_pcma_dtmf(), &me).unwrap();
        assert_eq!(answer.audio.direction, Direction::RecvOnly);
    }

    #[test]
    fn offer_without_connection_address_is_an_error() {
        let offer =
            parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n")
                .unwrap();
        assert_eq!(
            negotiate_answer(&offer, &pcmu_pcma_dtmf(), &answerer()),
            Err(NegotiationError::MissingConnection { media_index: 0 })
        );
    }

    #[test]
    fn built_offer_lists_codecs_with_rtpmaps_and_dtmf_fmtp() {
        let local = LocalSession::new("8000", 206154, "192.168.3.175".parse().unwrap(), 10000);
        let offer = build_offer(&g711_and_events(), &local).unwrap();
        assert_eq!(
            offer.to_string(),
            "v=0\r\no=8000 206154 206154 IN IP4 192.168.3.175\r\ns=-\r\n\
             c=IN IP4 192.168.3.175\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0 8 101\r\n\
             a=rtpmap:0 PCMU/8000/1\r\na=rtpmap:8 PCMA/8000/1\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
        );
    }

    #[test]
    fn built_offer_lists_g729_where_the_seed_ata_does() {
        let local = LocalSession::new("8000", 206154, "192.168.3.175".parse().unwrap(), 10000);
        let codecs = [
            Codec::pcmu(),
            Codec::g729(),
            Codec::pcma(),
            Codec::telephone_event(101),
        ];
        let offer = build_offer(&codecs, &local).unwrap().to_string();
        assert!(
            offer.contains(
                "m=audio 10000 RTP/AVP 0 18 8 101\r\n\
                 a=rtpmap:0 PCMU/8000/1\r\na=rtpmap:18 G729/8000/1\r\na=fmtp:18 annexb=no\r\n\
                 a=rtpmap:8 PCMA/8000/1\r\n"
            ),
            "{offer}"
        );
    }

    #[test]
    fn offer_includes_g729_and_opus_only_when_asked() {
        let local = answerer();
        let codecs = [
            Codec::opus(111),
            Codec::pcmu(),
            Codec::pcma(),
            Codec::g729(),
            Codec::telephone_event(101),
        ];
        let offer = build_offer(&codecs, &local).unwrap();
        assert_eq!(offer.media[0].formats, ["111", "0", "8", "18", "101"]);
        assert_eq!(
            offer.media[0].rtpmap(111).unwrap().to_string(),
            "111 opus/48000/2"
        );
    }

    #[test]
    fn offer_refuses_duplicate_payload_types_and_dtmf_only_lists() {
        let local = answerer();
        assert_eq!(
            build_offer(&[Codec::pcmu(), Codec::new("X", 8000, 1, 0)], &local),
            Err(NegotiationError::DuplicatePayloadType { payload_type: 0 })
        );
        assert_eq!(
            build_offer(&[Codec::telephone_event(101)], &local),
            Err(NegotiationError::NoLocalCodec)
        );
    }

    #[test]
    fn offerer_reads_the_seed_answer() {
        let offer = parse(seed_offer()).unwrap();
        let answer = parse(seed_answer()).unwrap();
        let audio = process_answer(&offer, &answer).unwrap();
        assert_eq!(audio.codec.name, "PCMU");
        assert_eq!(audio.telephone_event, Some(101));
        assert_eq!(
            audio.remote_rtp(),
            Some("192.168.2.194:10000".parse().unwrap())
        );
        assert_eq!(audio.direction, Direction::SendRecv);
    }

    #[test]
    fn offerer_sends_the_first_answered_codec_with_the_answer_payload_number() {
        let offer = parse(seed_offer()).unwrap();
        let answer = parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
             m=audio 6000 RTP/AVP 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\na=recvonly\r\n",
        )
        .unwrap();
        let audio = process_answer(&offer, &answer).unwrap();
        assert_eq!(audio.codec.payload_type, 8);
        assert_eq!(audio.telephone_event, Some(96));
        assert_eq!(audio.direction, Direction::SendOnly);
        assert_eq!(audio.remote_port, 6000);
    }

    #[test]
    fn offerer_rejects_answers_with_the_wrong_shape() {
        let offer = parse(seed_offer()).unwrap();
        let mut answer = parse(seed_answer()).unwrap();
        answer.media[0].port = 0;
        assert_eq!(
            process_answer(&offer, &answer),
            Err(NegotiationError::NoCommonCodec)
        );
        answer.media.clear();
        assert_eq!(
            process_answer(&offer, &answer),
            Err(NegotiationError::MediaCountMismatch {
                offered: 1,
                answered: 0
            })
        );
    }

    #[test]
    fn built_offer_and_its_answer_agree_end_to_end() {
        let caller = LocalSession::new("8000", 1, "10.0.0.1".parse().unwrap(), 4000);
        let offer = build_offer(&g711_and_events(), &caller).unwrap();
        let wire = parse(&offer.to_string()).unwrap();
        let answer = negotiate_answer(
            &wire,
            &[Codec::pcma(), Codec::telephone_event(100)],
            &answerer(),
        )
        .unwrap();
        let seen =
            process_answer(&offer, &parse(&answer.description.to_string()).unwrap()).unwrap();
        assert_eq!(seen.codec, Codec::pcma());
        assert_eq!(seen.telephone_event, Some(101));
        assert_eq!(
            answer.audio.remote_rtp(),
            Some("10.0.0.1:4000".parse().unwrap())
        );
        assert_eq!(
            seen.remote_rtp(),
            Some("192.168.2.194:10000".parse().unwrap())
        );
    }
}
