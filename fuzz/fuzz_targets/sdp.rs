//! Fuzzes `dialtone-sdp`: whatever parses must print and parse back to the same description, and
//! answering it against a fixed ATA codec list must never panic and must produce an answer the
//! offerer side can read. The same body runs as a unit test in `shared/sdp/src/lib.rs`.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use dialtone_sdp::{
    negotiate_answer, parse, parse_bytes, process_answer, Codec, LocalSession, MAX_SDP_LEN,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = parse_bytes(data) else {
        return;
    };
    let printed = sdp.to_string();
    // LF input printed with CRLF can outgrow the cap it was read under; only then may the
    // round trip fail.
    if printed.len() <= MAX_SDP_LEN {
        assert_eq!(parse(&printed).as_ref(), Ok(&sdp), "{printed:?}");
    }
    let local = LocalSession::new("fuzz", 1, IpAddr::V4(Ipv4Addr::LOCALHOST), 4000);
    let codecs = [Codec::pcmu(), Codec::pcma(), Codec::telephone_event(101)];
    if let Ok(answer) = negotiate_answer(&sdp, &codecs, &local) {
        let answer_text = answer.description.to_string();
        assert_eq!(parse(&answer_text).as_ref(), Ok(&answer.description));
        let seen = process_answer(&sdp, &answer.description);
        let seen = seen.expect("the offerer can read our answer");
        assert_eq!(seen.media_index, answer.audio.media_index);
        assert_eq!(seen.codec, answer.audio.codec);
        assert_eq!(seen.telephone_event, answer.audio.telephone_event);
    }
});
