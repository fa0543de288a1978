//! Offer/answer for one call, without a socket: our offers, the peer's answers and
//! re-offers, and hook flash.

use super::*;

use dialtone_sdp::Direction;

const PEER: &str = "192.168.2.97";

fn negotiator() -> Negotiator {
    let codecs = vec![Codec::pcmu(), Codec::pcma(), Codec::telephone_event(101)];
    let mut negotiator = Negotiator::new(codecs, "8000".into(), "127.0.0.1".parse().unwrap());
    negotiator.set_port(4000);
    negotiator
}

/// The peer's description, as the seed's ATA writes it, with `payloads` and `direction`.
fn peer_sdp(version: u32, payloads: &str, direction: &str) -> Vec<u8> {
    format!(
        "v=0\r\no=- 12345 {version} IN IP4 {PEER}\r\ns=-\r\nc=IN IP4 {PEER}\r\nt=0 0\r\n\
         m=audio 20000 RTP/AVP {payloads}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
         a={direction}\r\n"
    )
    .into_bytes()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("SDP is text")
}

#[test]
fn our_offer_carries_the_codecs_in_order_then_telephone_event_on_our_port() {
    let offer = text(&negotiator().offer(42).expect("an offer"));
    assert!(
        offer.contains("o=8000 42 42 IN IP4 127.0.0.1\r\n"),
        "{offer}"
    );
    assert!(offer.contains("s=Dialtone ATA Call\r\n"), "{offer}");
    assert!(
        offer.contains("m=audio 4000 RTP/AVP 0 8 101\r\n"),
        "{offer}"
    );
}

#[test]
fn the_peers_answer_to_our_offer_says_which_codec_and_where_to_send() {
    let mut negotiator = negotiator();
    negotiator.offer(42).expect("an offer");
    let answer = peer_sdp(1, "8 101", "sendrecv");
    let audio = negotiator
        .process_answer(Some(&answer))
        .expect("a usable answer");
    assert_eq!(audio.codec.name.to_ascii_uppercase(), "PCMA");
    assert_eq!(audio.telephone_event, Some(101));
    assert_eq!(
        audio.remote_rtp(),
        Some(format!("{PEER}:20000").parse().unwrap())
    );
    assert!(audio.direction.sends());
}

#[test]
fn an_answer_without_sdp_or_to_no_offer_of_ours_is_unusable() {
    let mut negotiator = negotiator();
    let answer = peer_sdp(1, "0 101", "sendrecv");
    assert!(matches!(
        negotiator.process_answer(Some(&answer)),
        Err(AtaError::Unusable(Unusable::AnswerWithoutSdp))
    ));
    negotiator.offer(42).expect("an offer");
    assert!(matches!(
        negotiator.process_answer(None),
        Err(AtaError::Unusable(Unusable::AnswerWithoutSdp))
    ));
    assert!(matches!(
        negotiator.process_answer(Some(b"not sdp")),
        Err(AtaError::Sdp(_))
    ));
}

#[test]
fn an_invite_without_a_body_has_no_offer_to_answer() {
    assert!(matches!(
        Negotiator::read_offer(b""),
        Err(AtaError::Unusable(Unusable::InviteWithoutOffer))
    ));
}

#[test]
fn the_answer_to_an_incoming_offer_waits_for_the_subscriber_and_is_sent_once() {
    let mut negotiator = negotiator();
    let offer = Negotiator::read_offer(&peer_sdp(1, "0 8 101", "sendrecv")).expect("an offer");
    negotiator.prepare_answer(&offer, 77).expect("an answer");
    let (answer, audio) = negotiator.accept().expect("the prepared answer");
    let answer = text(&answer);
    assert!(
        answer.contains("o=8000 77 77 IN IP4 127.0.0.1\r\n"),
        "{answer}"
    );
    assert!(answer.contains("m=audio 4000 RTP/AVP 0"), "{answer}");
    assert_eq!(audio.codec.name.to_ascii_uppercase(), "PCMU");
    assert!(negotiator.accept().is_none());
}

#[test]
fn an_offer_without_a_codec_we_have_is_refused() {
    let mut negotiator = negotiator();
    let offer = Negotiator::read_offer(&peer_sdp(1, "18", "sendrecv")).expect("an offer");
    assert!(matches!(
        negotiator.prepare_answer(&offer, 77),
        Err(AtaError::Negotiation(_))
    ));
    assert!(negotiator.accept().is_none());
}

#[test]
fn a_reoffer_is_answered_with_our_session_id_and_the_next_version() {
    let mut negotiator = negotiator();
    let offer = Negotiator::read_offer(&peer_sdp(1, "0 101", "sendrecv")).expect("an offer");
    negotiator.prepare_answer(&offer, 77).expect("an answer");
    negotiator.accept().expect("the prepared answer");

    let hold = peer_sdp(2, "0 101", "sendonly");
    let (answer, audio) = negotiator.answer_reoffer(Some(&hold)).expect("answered");
    assert!(text(&answer).contains("o=8000 77 78 IN IP4 127.0.0.1\r\n"));
    assert_eq!(audio.direction, Direction::RecvOnly);
    assert!(!audio.direction.sends());

    let resume = peer_sdp(3, "0 101", "sendrecv");
    let (answer, audio) = negotiator.answer_reoffer(Some(&resume)).expect("answered");
    assert!(text(&answer).contains("o=8000 77 79 IN IP4 127.0.0.1\r\n"));
    assert!(audio.direction.sends());
}

#[test]
fn a_reinvite_without_an_offer_is_refused() {
    let mut negotiator = negotiator();
    negotiator.offer(42).expect("an offer");
    assert!(matches!(
        negotiator.answer_reoffer(None),
        Err(AtaError::Unusable(Unusable::ReinviteWithoutOffer))
    ));
}

#[test]
fn hook_flash_alternates_hold_and_resume_offers_each_one_version_up() {
    let mut negotiator = negotiator();
    negotiator.offer(42).expect("an offer");
    let hold = text(&negotiator.hold_or_resume().expect("a hold offer"));
    assert!(hold.contains("o=8000 42 43 IN IP4 127.0.0.1\r\n"), "{hold}");
    assert!(hold.contains("a=sendonly\r\n"), "{hold}");
    let resume = text(&negotiator.hold_or_resume().expect("a resume offer"));
    assert!(
        resume.contains("o=8000 42 44 IN IP4 127.0.0.1\r\n"),
        "{resume}"
    );
    assert!(resume.contains("a=sendrecv\r\n"), "{resume}");
}

#[test]
fn there_is_nothing_to_hold_before_any_description_was_sent() {
    assert!(negotiator().hold_or_resume().is_none());
}

#[cfg(feature = "g729")]
#[test]
fn an_offer_whose_only_common_codec_is_g729_is_answered_with_g729() {
    let codecs = vec![Codec::pcma(), Codec::g729(), Codec::telephone_event(101)];
    let mut negotiator = Negotiator::new(codecs, "8000".into(), "127.0.0.1".parse().unwrap());
    negotiator.set_port(4000);
    let offer = Negotiator::read_offer(&peer_sdp(1, "0 18 101", "sendrecv")).expect("an offer");
    negotiator.prepare_answer(&offer, 77).expect("an answer");
    let (answer, audio) = negotiator.accept().expect("the prepared answer");
    let answer = text(&answer);
    assert!(
        answer.contains("m=audio 4000 RTP/AVP 18 101\r\n"),
        "{answer}"
    );
    assert!(answer.contains("a=fmtp:18 annexb=no\r\n"), "{answer}");
    assert_eq!(audio.codec, Codec::g729());
    assert_eq!(audio.telephone_event, Some(101));
}

#[cfg(feature = "g729")]
#[test]
fn our_offer_lists_g729_where_configured_as_the_seed_ata_does() {
    let codecs = vec![
        Codec::pcmu(),
        Codec::g729(),
        Codec::pcma(),
        Codec::telephone_event(101),
    ];
    let mut negotiator = Negotiator::new(codecs, "8000".into(), "127.0.0.1".parse().unwrap());
    negotiator.set_port(4000);
    let offer = text(&negotiator.offer(42).expect("an offer"));
    assert!(
        offer.contains("m=audio 4000 RTP/AVP 0 18 8 101\r\n"),
        "{offer}"
    );
}
