//! How long one credentials check costs: the seed ATA's INVITE (MD5, RFC 2069 form, as every
//! call from the seed's phones is checked) and an RFC 7616 SHA-256 `qop=auth` answer, each
//! parsed from the header value and verified, as the proxy does per request.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dialtone_digest::{verify_response, Credentials, Secret};

/// tests/data/seed-flows/D-4-call-auth/07.sip, user 8000, password 8000.
const SEED_INVITE: &str = r#"Digest username="8000", realm="CISCO", nonce="3bd76584", uri="sip:9000@192.168.2.81", response="6e91de67ad976997ffac76f0398ef224""#;

/// RFC 7616 section 3.9.1, password "Circle of Life".
const RFC_7616_SHA256: &str = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

fn check(header: &str, method: &str, password: &str) -> bool {
    Credentials::parse(header)
        .ok()
        .and_then(|credentials| {
            verify_response(&credentials, method, Secret::Password(password)).ok()
        })
        .unwrap_or(false)
}

fn verify(c: &mut Criterion) {
    assert!(check(SEED_INVITE, "INVITE", "8000"));
    assert!(check(RFC_7616_SHA256, "GET", "Circle of Life"));

    c.bench_function("seed INVITE, MD5 without qop", |b| {
        b.iter(|| check(black_box(SEED_INVITE), "INVITE", "8000"))
    });
    c.bench_function("RFC 7616 example, SHA-256 with qop=auth", |b| {
        b.iter(|| check(black_box(RFC_7616_SHA256), "GET", "Circle of Life"))
    });
}

criterion_group!(benches, verify);
criterion_main!(benches);
