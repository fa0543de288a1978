//! Tests for `verify.rs`: the seed's real credentials, the RFC examples, and the server policy
//! (expiry, tampering, replay, unknown users) driven by a fake clock.

use super::*;
use crate::client::{answer, AnswerParams};
use crate::Qop;

const SEED_REGISTER_MESSAGE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/seed-flows/D-2-register-auth/04.sip"
));
const SEED_INVITE_MESSAGE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/seed-flows/D-4-call-auth/07.sip"
));

/// The Proxy-Authorization value of a seed message, exactly as the ATA sent it.
fn proxy_authorization(message: &str) -> &str {
    message
        .lines()
        .find_map(|line| line.strip_prefix("Proxy-Authorization:"))
        .map(str::trim)
        .expect("the seed message has a Proxy-Authorization header")
}

#[test]
fn the_seed_register_credentials_verify_with_password_9301() {
    let value = proxy_authorization(SEED_REGISTER_MESSAGE);
    let credentials = Credentials::parse(value).unwrap();
    assert_eq!(credentials.username, "9301");
    assert_eq!(credentials.nonce, "3bd5e334");
    assert_eq!(
        verify_response(&credentials, "REGISTER", Secret::Password("9301")),
        Ok(true)
    );
}

#[test]
fn the_seed_invite_credentials_verify_with_password_8000() {
    let value = proxy_authorization(SEED_INVITE_MESSAGE);
    let credentials = Credentials::parse(value).unwrap();
    assert_eq!(credentials.username, "8000");
    assert_eq!(credentials.nonce, "3bd76584");
    assert_eq!(credentials.uri, "sip:9000@192.168.2.81");
    assert_eq!(
        verify_response(&credentials, "INVITE", Secret::Password("8000")),
        Ok(true)
    );
}

#[test]
fn the_seed_credentials_verify_against_a_stored_ha1() {
    let credentials = Credentials::parse(proxy_authorization(SEED_INVITE_MESSAGE)).unwrap();
    let stored = ha1(Algorithm::Md5, "8000", "CISCO", "8000").to_uppercase();
    assert_eq!(
        verify_response(&credentials, "INVITE", Secret::Ha1(&stored)),
        Ok(true)
    );
}

#[test]
fn a_wrong_password_fails_on_the_seed_credentials() {
    let credentials = Credentials::parse(proxy_authorization(SEED_REGISTER_MESSAGE)).unwrap();
    assert_eq!(
        verify_response(&credentials, "REGISTER", Secret::Password("9302")),
        Ok(false)
    );
}

#[test]
fn the_seed_credentials_fail_for_another_method() {
    // The method is in HA2, so an INVITE's credentials cannot be reused for a BYE.
    let credentials = Credentials::parse(proxy_authorization(SEED_INVITE_MESSAGE)).unwrap();
    assert_eq!(
        verify_response(&credentials, "BYE", Secret::Password("8000")),
        Ok(false)
    );
}

#[test]
fn a_malformed_stored_ha1_never_verifies() {
    let credentials = Credentials::parse(proxy_authorization(SEED_REGISTER_MESSAGE)).unwrap();
    let sha256_ha1 = ha1(Algorithm::Sha256, "9301", "CISCO", "9301");
    for stored in ["", "xyz", &sha256_ha1] {
        assert_eq!(
            verify_response(&credentials, "REGISTER", Secret::Ha1(stored)),
            Ok(false)
        );
    }
}

#[test]
fn the_rfc_2617_section_3_5_example_verifies() {
    let credentials = Credentials::parse(
        r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
    )
    .unwrap();
    assert_eq!(
        verify_response(&credentials, "GET", Secret::Password("Circle Of Life")),
        Ok(true)
    );
}

const RFC_7616_BASE: &str = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

#[test]
fn the_rfc_7616_section_3_9_1_sha_256_example_verifies() {
    let value = format!(
        "{RFC_7616_BASE}, algorithm=SHA-256, response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
    );
    let credentials = Credentials::parse(&value).unwrap();
    assert_eq!(credentials.algorithm(), Algorithm::Sha256);
    assert_eq!(
        verify_response(&credentials, "GET", Secret::Password("Circle of Life")),
        Ok(true)
    );
    assert_eq!(
        verify_response(&credentials, "GET", Secret::Password("Circle Of Life")),
        Ok(false)
    );
}

#[test]
fn the_rfc_7616_section_3_9_1_md5_example_verifies() {
    let value =
        format!("{RFC_7616_BASE}, algorithm=MD5, response=\"8ca523f5e9506fed4657c9700eebdbec\"");
    let credentials = Credentials::parse(&value).unwrap();
    assert_eq!(
        verify_response(&credentials, "GET", Secret::Password("Circle of Life")),
        Ok(true)
    );
}

#[test]
fn the_response_is_accepted_in_upper_case_hex() {
    let value = proxy_authorization(SEED_REGISTER_MESSAGE).replace(
        "87ac0afeb08222af706f9e8b5c566ce2",
        "87AC0AFEB08222AF706F9E8B5C566CE2",
    );
    let credentials = Credentials::parse(&value).unwrap();
    assert_eq!(
        verify_response(&credentials, "REGISTER", Secret::Password("9301")),
        Ok(true)
    );
}

// --- The server policy, with a fake clock. ---

const T: u64 = 1_700_000_000;
const LIFETIME: u64 = 300;

fn verifier() -> Verifier {
    let key = NonceSecret::new(b"a test key of thirty-two bytes!!", LIFETIME).unwrap();
    Verifier::new("dialtone", key)
}

/// What a client answers to `challenge` with the given password and nonce count.
fn client_answer(challenge: &Challenge<'_>, password: &str, nc: u32) -> Credentials<'static> {
    let params = AnswerParams {
        username: "alice",
        password,
        method: "INVITE",
        uri: "sip:bob@example.net",
        cnonce: "0a4f113b",
        nc,
    };
    answer(challenge, &params).unwrap().into_owned()
}

fn check(
    verifier: &Verifier,
    credentials: &Credentials<'_>,
    secret: Secret<'_>,
    now: u64,
    tracker: Option<&mut NonceCountTracker>,
) -> Outcome {
    let request = VerifyRequest {
        credentials,
        method: "INVITE",
        secret,
        now_unix_secs: now,
        nonce_binding: &[],
        request_fingerprint: 0,
    };
    verifier.verify(&request, tracker)
}

#[test]
fn client_answers_verify_for_md5_and_sha_256_with_and_without_qop() {
    let algorithms = [
        None,
        Some(Algorithm::Md5),
        Some(Algorithm::Sha256),
        Some(Algorithm::Md5Sess),
        Some(Algorithm::Sha256Sess),
    ];
    for algorithm in algorithms {
        for qop in [false, true] {
            let mut v = verifier().with_qop(qop);
            if let Some(algorithm) = algorithm {
                v = v.with_algorithm(algorithm);
            }
            if algorithm.is_some_and(Algorithm::is_session) && !qop {
                continue; // -sess needs a cnonce, which only qop carries
            }
            let challenge = Challenge::parse(&v.challenge(T, false, &[]).to_string())
                .unwrap()
                .into_owned();
            let credentials = client_answer(&challenge, "secret", 1);
            // Through the header text, as it would travel.
            let text = credentials.to_string();
            let parsed = Credentials::parse(&text).unwrap();
            assert_eq!(parsed.qop.is_some(), qop, "{text}");
            assert_eq!(parsed.algorithm, algorithm, "{text}");
            let label = format!("{algorithm:?} qop={qop}");
            assert_eq!(
                check(&v, &parsed, Secret::Password("secret"), T, None),
                Outcome::Ok,
                "{label}"
            );
            assert_eq!(
                check(&v, &parsed, Secret::Password("Secret"), T, None),
                Outcome::BadResponse,
                "{label}"
            );
            let stored = ha1(parsed.algorithm(), "alice", "dialtone", "secret");
            assert_eq!(
                check(&v, &parsed, Secret::Ha1(&stored), T, None),
                Outcome::Ok,
                "{label}"
            );
        }
    }
}

#[test]
fn a_nonce_is_good_for_its_lifetime_then_stale() {
    let v = verifier();
    let credentials = client_answer(&v.challenge(T, false, &[]), "secret", 1);
    let secret = Secret::Password("secret");
    assert_eq!(check(&v, &credentials, secret, T, None), Outcome::Ok);
    assert_eq!(
        check(&v, &credentials, secret, T + LIFETIME, None),
        Outcome::Ok
    );
    let stale = check(&v, &credentials, secret, T + LIFETIME + 1, None);
    assert_eq!(stale, Outcome::Stale);
    assert_eq!(stale.rechallenge(), Some(true));
}

#[test]
fn a_stale_nonce_with_a_wrong_password_is_a_bad_response_not_stale() {
    // stale=true would tell the client its password was right.
    let v = verifier();
    let credentials = client_answer(&v.challenge(T, false, &[]), "guess", 1);
    assert_eq!(
        check(
            &v,
            &credentials,
            Secret::Password("secret"),
            T + LIFETIME + 1,
            None
        ),
        Outcome::BadResponse
    );
}

#[test]
fn a_tampered_nonce_is_rejected_even_with_the_right_password() {
    let v = verifier();
    let mut challenge = v.challenge(T, false, &[]);
    let mut nonce = challenge.nonce.to_string();
    let last = if nonce.ends_with('0') { "1" } else { "0" };
    nonce.replace_range(nonce.len() - 1.., last);
    challenge.nonce = nonce.into();
    // The client hashes the tampered nonce honestly, so only the nonce's signature is wrong.
    let credentials = client_answer(&challenge, "secret", 1);
    let outcome = check(&v, &credentials, Secret::Password("secret"), T, None);
    assert_eq!(outcome, Outcome::BadNonce);
    assert_eq!(outcome.rechallenge(), Some(false));
}

#[test]
fn the_seed_nonce_is_not_one_of_ours() {
    let v = Verifier::new("CISCO", verifier().nonces().clone());
    let credentials = Credentials::parse(proxy_authorization(SEED_REGISTER_MESSAGE)).unwrap();
    assert_eq!(
        check(&v, &credentials, Secret::Password("9301"), T, None),
        Outcome::BadNonce
    );
}

#[test]
fn credentials_for_another_realm_are_refused() {
    let v = verifier();
    let mut challenge = v.challenge(T, false, &[]);
    challenge.realm = "elsewhere".into();
    let credentials = client_answer(&challenge, "secret", 1);
    let outcome = check(&v, &credentials, Secret::Password("secret"), T, None);
    assert_eq!(outcome, Outcome::WrongRealm);
    assert_eq!(outcome.rechallenge(), Some(false));
}

#[test]
fn a_nonce_bound_to_one_address_fails_from_another() {
    let v = verifier();
    let credentials = client_answer(&v.challenge(T, false, b"192.0.2.1:5060"), "secret", 1);
    let mut request = VerifyRequest {
        credentials: &credentials,
        method: "INVITE",
        secret: Secret::Password("secret"),
        now_unix_secs: T,
        nonce_binding: b"192.0.2.1:5060",
        request_fingerprint: 0,
    };
    assert_eq!(v.verify(&request, None), Outcome::Ok);
    request.nonce_binding = b"198.51.100.7:5060";
    assert_eq!(v.verify(&request, None), Outcome::BadNonce);
}

#[test]
fn a_repeated_nonce_count_is_refused_as_a_replay() {
    let v = verifier();
    let mut tracker = NonceCountTracker::new(100, LIFETIME);
    let challenge = v.challenge(T, false, &[]);
    let secret = Secret::Password("secret");
    let first = client_answer(&challenge, "secret", 1);
    let second = client_answer(&challenge, "secret", 2);
    assert_eq!(
        check(&v, &first, secret, T, Some(&mut tracker)),
        Outcome::Ok
    );
    assert_eq!(
        check(&v, &second, secret, T + 1, Some(&mut tracker)),
        Outcome::Ok
    );
    let replayed = check(&v, &first, secret, T + 2, Some(&mut tracker));
    assert_eq!(
        replayed,
        Outcome::Replay {
            same_request: false,
            forgotten: false
        }
    );
    assert_eq!(
        replayed.rechallenge(),
        Some(false),
        "not stale: the nonce is fresh"
    );
    assert_eq!(
        check(&v, &second, secret, T + 2, Some(&mut tracker)),
        Outcome::Replay {
            same_request: true,
            forgotten: false
        },
        "the latest count by the same request fingerprint is its retransmission"
    );
}

#[test]
fn an_answer_without_qop_is_accepted_once_per_nonce() {
    // RFC 2069 answers (the seed's Cisco ATA) have no count: the nonce is one-time.
    let v = verifier().with_qop(false);
    let mut tracker = NonceCountTracker::new(100, LIFETIME);
    let challenge = v.challenge(T, false, &[]);
    let credentials = client_answer(&challenge, "secret", 1);
    assert_eq!(credentials.qop, None);
    let secret = Secret::Password("secret");
    assert_eq!(
        check(&v, &credentials, secret, T, Some(&mut tracker)),
        Outcome::Ok
    );
    let again = check(&v, &credentials, secret, T + 1, Some(&mut tracker));
    assert!(matches!(again, Outcome::Replay { .. }), "{again:?}");
    assert_eq!(again.rechallenge(), Some(false));
    // A new challenge's nonce works once in turn.
    let next = client_answer(&v.challenge(T + 1, false, &[]), "secret", 1);
    assert_eq!(
        check(&v, &next, secret, T + 1, Some(&mut tracker)),
        Outcome::Ok
    );
}

#[test]
fn a_wrong_response_does_not_advance_the_nonce_count() {
    let v = verifier();
    let mut tracker = NonceCountTracker::new(100, LIFETIME);
    let challenge = v.challenge(T, false, &[]);
    let forged = client_answer(&challenge, "guess", 5);
    assert_eq!(
        check(
            &v,
            &forged,
            Secret::Password("secret"),
            T,
            Some(&mut tracker)
        ),
        Outcome::BadResponse
    );
    assert!(tracker.is_empty());
    let genuine = client_answer(&challenge, "secret", 1);
    assert_eq!(
        check(
            &v,
            &genuine,
            Secret::Password("secret"),
            T,
            Some(&mut tracker)
        ),
        Outcome::Ok
    );
}

#[test]
fn an_unknown_user_is_reported_even_if_the_dummy_secret_would_match() {
    let v = verifier();
    let challenge = v.challenge(T, false, &[]);
    // An empty password is exactly the dummy an unknown user is checked against.
    let credentials = client_answer(&challenge, "", 1);
    for kind in [SecretKind::Password, SecretKind::Ha1] {
        let outcome = check(&v, &credentials, Secret::Unknown(kind), T, None);
        assert_eq!(outcome, Outcome::UnknownUser);
        assert_eq!(outcome.rechallenge(), None);
    }
    let zero_ha1 = "0".repeat(32);
    assert_eq!(
        check(&v, &credentials, Secret::Ha1(&zero_ha1), T, None),
        Outcome::BadResponse
    );
}

#[test]
fn auth_int_credentials_are_malformed_for_the_verifier() {
    let v = verifier();
    let mut credentials = client_answer(&v.challenge(T, false, &[]), "secret", 1);
    credentials.qop = Some(Qop::AuthInt);
    assert_eq!(
        check(&v, &credentials, Secret::Password("secret"), T, None),
        Outcome::Malformed(DigestError::UnsupportedQop("auth-int".into()))
    );
}

#[test]
fn challenges_offer_what_the_verifier_was_configured_with() {
    let v = verifier().with_algorithm(Algorithm::Sha256);
    let challenge = v.challenge(T, true, &[]);
    assert_eq!(challenge.realm, "dialtone");
    assert_eq!(challenge.algorithm, Some(Algorithm::Sha256));
    assert_eq!(challenge.qop, Some(QopOptions::AUTH));
    assert!(challenge.stale);
    assert_eq!(
        v.nonces().check(&challenge.nonce, T, "dialtone", &[]),
        NonceStatus::Fresh { issued_at: T }
    );
    let plain = verifier().with_qop(false).challenge(T, false, &[]);
    assert_eq!(plain.qop, None);
    assert_eq!(plain.algorithm, None);
}
