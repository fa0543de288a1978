//! Fuzzes the digest header parsers, and the verification and client code behind them.
//!
//! Any input: parsing must not panic. A parsed credentials value is verified against a fixed
//! password (it must not panic either, whatever it asks for). A parsed challenge is answered,
//! and that answer must parse back and verify: client and server must agree on every
//! challenge the parser accepts.

#![no_main]

use dialtone_digest::{answer, verify_response, AnswerParams, Challenge, Credentials, Secret};
use libfuzzer_sys::fuzz_target;

const PASSWORD: &str = "8000";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(credentials) = Credentials::parse(text) {
        let _ = verify_response(&credentials, "INVITE", Secret::Password(PASSWORD));
        // What we write we must read back unchanged.
        let rewritten = credentials.to_string();
        let reparsed = Credentials::parse(&rewritten).expect("written credentials parse");
        assert_eq!(reparsed, credentials);
    }

    if let Ok(challenge) = Challenge::parse(text) {
        let params = AnswerParams {
            username: "8000",
            password: PASSWORD,
            method: "INVITE",
            uri: "sip:9000@192.168.2.81",
            cnonce: "0a4f113b",
            nc: 1,
        };
        if let Ok(credentials) = answer(&challenge, &params) {
            let header = credentials.to_string();
            let parsed = Credentials::parse(&header).expect("our own answer parses");
            assert_eq!(
                verify_response(&parsed, "INVITE", Secret::Password(PASSWORD)),
                Ok(true),
                "our own answer verifies: {header}"
            );
        }
    }
});
