//! Tests of the registrar rules (RFC 3261 section 10.3), with a fixed clock.

use super::*;
use crate::registrar::binding::format_q;
use dialtone_sip::RequestBuilder;
use std::time::{Duration, UNIX_EPOCH};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data");

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// 2001-10-23 14:00:00 UTC, around the seed's captures.
const T0: u64 = 1_003_845_600;

fn origin() -> Origin {
    Origin {
        source: "192.168.2.194:5060".parse().unwrap(),
        transport: Transport::Udp,
    }
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/{path}")).unwrap()
}

/// A REGISTER for 9301 with the given Call-ID, CSeq, Contact values and optional Expires.
fn register(call_id: &str, cseq: u32, contacts: &[&str], expires: Option<u32>) -> Vec<u8> {
    let mut builder = RequestBuilder::new("REGISTER", "sip:192.168.2.81")
        .header("Via", "SIP/2.0/UDP 192.168.2.194;branch=z9hG4bK1")
        .header("From", "<sip:9301@192.168.2.81>;tag=1")
        .header("To", "<sip:9301@192.168.2.81>")
        .header("Call-ID", call_id)
        .header("CSeq", &format!("{cseq} REGISTER"));
    for contact in contacts {
        builder = builder.header("Contact", contact);
    }
    if let Some(expires) = expires {
        builder = builder.header("Expires", &expires.to_string());
    }
    builder.build()
}

fn run(raw: &[u8], now: SystemTime, current: &[Binding]) -> RegisterOutcome {
    let request = Message::parse(raw).unwrap();
    request.check_request().unwrap();
    process_register(
        &request,
        "9301",
        now,
        origin(),
        &RegistrarPolicy::default(),
        current,
    )
}

fn applied(outcome: RegisterOutcome) -> (Vec<Binding>, Vec<BindingChange>, Vec<String>) {
    match outcome {
        RegisterOutcome::Ok {
            bindings_after,
            changes,
            response_contacts,
            ..
        } => (bindings_after, changes, response_contacts),
        reject => panic!("expected 200, got {reject:?}"),
    }
}

fn bindings_after(raw: &[u8], now: SystemTime, current: &[Binding]) -> Vec<Binding> {
    applied(run(raw, now, current)).0
}

#[test]
fn seed_authenticated_register_makes_one_binding_for_an_hour() {
    let raw = read("seed-flows/D-2-register-auth/04.sip");
    let (after, changes, contacts) = applied(run(&raw, at(T0), &[]));
    assert_eq!(after.len(), 1);
    let binding = &after[0];
    assert_eq!(binding.aor, "9301");
    assert_eq!(
        binding.contact,
        "sip:9301@192.168.2.194;user=phone;transport=udp"
    );
    assert_eq!(binding.expires_at, T0 + 3600);
    assert_eq!(binding.call_id, "311316842@192.168.2.194");
    assert_eq!(binding.cseq, 2);
    assert_eq!(binding.source, origin().source);
    assert_eq!(binding.transport, Transport::Udp);
    assert_eq!(binding.registered_at, T0);
    assert_eq!(binding.q, None);
    assert_eq!(changes, vec![BindingChange::Upsert(binding.clone())]);
    assert_eq!(
        contacts,
        vec!["<sip:9301@192.168.2.194;user=phone;transport=udp>;expires=3600"]
    );
}

#[test]
fn response_contacts_carry_the_time_left_not_the_time_requested() {
    let raw = read("seed-flows/D-2-register-auth/04.sip");
    let before = bindings_after(&raw, at(T0), &[]);
    let query = register("query-1", 1, &[], None);
    let (after, changes, contacts) = applied(run(&query, at(T0 + 600), &before));
    assert_eq!(after, before);
    assert!(changes.is_empty());
    assert_eq!(
        contacts,
        vec!["<sip:9301@192.168.2.194;user=phone;transport=udp>;expires=3000"]
    );
}

#[test]
fn register_without_contact_is_a_query_that_changes_nothing() {
    let query = register("q", 1, &[], None);
    let (after, changes, contacts) = applied(run(&query, at(T0), &[]));
    assert!(after.is_empty() && changes.is_empty() && contacts.is_empty());
}

#[test]
fn expires_header_applies_when_the_contact_has_no_expires_parameter() {
    let raw = register("c1", 1, &["<sip:9301@10.0.0.1>"], Some(120));
    assert_eq!(bindings_after(&raw, at(T0), &[])[0].expires_at, T0 + 120);
}

#[test]
fn contact_expires_parameter_wins_over_the_expires_header() {
    let raw = register("c1", 1, &["<sip:9301@10.0.0.1>;expires=300"], Some(120));
    assert_eq!(bindings_after(&raw, at(T0), &[])[0].expires_at, T0 + 300);
}

#[test]
fn default_expires_applies_without_any_expiry() {
    let raw = register("c1", 1, &["<sip:9301@10.0.0.1>"], None);
    assert_eq!(bindings_after(&raw, at(T0), &[])[0].expires_at, T0 + 3600);
}

#[test]
fn rfc2543_date_expires_counts_from_now() {
    // The seed's proxy form: an absolute date in quotes, 30 minutes after T0.
    let raw = register(
        "c1",
        1,
        &[r#"<sip:9301@10.0.0.1>;expires="tue, 23 Oct 2001 14:30:00 GMT""#],
        None,
    );
    assert_eq!(bindings_after(&raw, at(T0), &[])[0].expires_at, T0 + 1800);
}

#[test]
fn rfc2543_date_in_the_past_removes_the_binding() {
    let first = register("c1", 1, &["<sip:9301@10.0.0.1>"], None);
    let before = bindings_after(&first, at(T0), &[]);
    let raw = register(
        "c1",
        2,
        &[r#"<sip:9301@10.0.0.1>;expires="Tue, 23 Oct 2001 13:00:00 GMT""#],
        None,
    );
    assert!(bindings_after(&raw, at(T0), &before).is_empty());
}

#[test]
fn interval_below_the_minimum_is_refused_with_423_and_min_expires() {
    let first = register("c1", 1, &["<sip:9301@10.0.0.1>"], None);
    let before = bindings_after(&first, at(T0), &[]);
    let raw = register(
        "c1",
        2,
        &["<sip:9301@10.0.0.1>", "<sip:9301@10.0.0.2>;expires=30"],
        None,
    );
    assert_eq!(
        run(&raw, at(T0), &before),
        RegisterOutcome::Reject {
            status: 423,
            reason: "Interval Too Brief",
            min_expires: Some(60),
        }
    );
}

#[test]
fn interval_above_the_maximum_is_shortened() {
    let raw = register("c1", 1, &["<sip:9301@10.0.0.1>;expires=86400"], None);
    let (after, _, contacts) = applied(run(&raw, at(T0), &[]));
    assert_eq!(after[0].expires_at, T0 + 7200);
    assert_eq!(contacts, vec!["<sip:9301@10.0.0.1>;expires=7200"]);
}

#[test]
fn expires_zero_removes_only_that_contact() {
    let raw = register(
        "c1",
        1,
        &["<sip:9301@10.0.0.1>", "<sip:9301@10.0.0.2>"],
        None,
    );
    let before = bindings_after(&raw, at(T0), &[]);
    let remove = register("c1", 2, &["<sip:9301@10.0.0.1>;expires=0"], None);
    let (after, changes, _) = applied(run(&remove, at(T0 + 5), &before));
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].contact, "sip:9301@10.0.0.2");
    assert_eq!(
        changes,
        vec![BindingChange::Remove {
            aor: "9301".into(),
            contact: "sip:9301@10.0.0.1".into()
        }]
    );
}

#[test]
fn star_with_expires_zero_removes_every_binding() {
    let raw = register(
        "c1",
        1,
        &["<sip:9301@10.0.0.1>", "<sip:9301@10.0.0.2>"],
        None,
    );
    let before = bindings_after(&raw, at(T0), &[]);
    let star = register("c2", 1, &["*"], Some(0));
    let (after, changes, contacts) = applied(run(&star, at(T0), &before));
    assert!(after.is_empty() && contacts.is_empty());
    assert_eq!(changes.len(), 2);
    assert!(changes
        .iter()
        .all(|c| matches!(c, BindingChange::Remove { .. })));
}

#[test]
fn star_without_expires_zero_is_a_bad_request() {
    for expires in [None, Some(3600)] {
        let star = register("c2", 1, &["*"], expires);
        assert_eq!(
            run(&star, at(T0), &[]),
            RegisterOutcome::Reject {
                status: 400,
                reason: "Contact * Needs Expires 0",
                min_expires: None
            }
        );
    }
}

#[test]
fn star_mixed_with_a_contact_is_a_bad_request() {
    // check_request refuses it already; the rules must not trust that and must not panic.
    let raw = register("c2", 1, &["*", "<sip:9301@10.0.0.1>"], Some(0));
    let request = Message::parse(&raw).unwrap();
    assert!(request.check_request().is_err());
    let outcome = process_register(
        &request,
        "9301",
        at(T0),
        origin(),
        &RegistrarPolicy::default(),
        &[],
    );
    assert_eq!(
        outcome,
        RegisterOutcome::Reject {
            status: 400,
            reason: "Bad Contact",
            min_expires: None
        }
    );
}

#[test]
fn star_does_not_undo_a_later_register_of_the_same_call_id() {
    let raw = register("c1", 5, &["<sip:9301@10.0.0.1>"], None);
    let before = bindings_after(&raw, at(T0), &[]);
    let star = register("c1", 4, &["*"], Some(0));
    assert_eq!(
        run(&star, at(T0), &before),
        RegisterOutcome::Reject {
            status: 500,
            reason: "Out of Order",
            min_expires: None
        }
    );
}

#[test]
fn same_call_id_with_a_cseq_not_higher_fails_with_500_and_changes_nothing() {
    let raw = register("c1", 5, &["<sip:9301@10.0.0.1>"], None);
    let before = bindings_after(&raw, at(T0), &[]);
    for cseq in [4, 5] {
        // The second contact is new and would be fine alone: all or nothing (step 7).
        let late = register(
            "c1",
            cseq,
            &["<sip:9301@10.0.0.2>", "<sip:9301@10.0.0.1>;expires=0"],
            None,
        );
        assert_eq!(
            run(&late, at(T0), &before),
            RegisterOutcome::Reject {
                status: 500,
                reason: "Out of Order",
                min_expires: None
            },
            "CSeq {cseq}"
        );
    }
    let next = register("c1", 6, &["<sip:9301@10.0.0.1>;expires=0"], None);
    assert!(bindings_after(&next, at(T0), &before).is_empty());
}

#[test]
fn a_retransmitted_register_gets_the_same_200_and_changes_nothing() {
    // No transaction is kept for REGISTER, so the repeat reaches the rules again.
    let raw = register(
        "c1",
        5,
        &["<sip:9301@10.0.0.1>", "<sip:9301@10.0.0.3>;expires=0"],
        Some(600),
    );
    let before = bindings_after(&raw, at(T0), &[]);
    let (after, changes, contacts) = applied(run(&raw, at(T0 + 3), &before));
    assert!(changes.is_empty());
    assert_eq!(after, before, "the expiry is not refreshed by a repeat");
    assert_eq!(contacts.len(), 1);
    assert!(contacts[0].contains("expires=597"), "{contacts:?}");
}

#[test]
fn a_different_call_id_replaces_the_binding_whatever_its_cseq() {
    let raw = register("before-reboot", 900, &["<sip:9301@10.0.0.1>"], None);
    let before = bindings_after(&raw, at(T0), &[]);
    let reboot = register("after-reboot", 1, &["<sip:9301@10.0.0.1>"], Some(600));
    let (after, changes, _) = applied(run(&reboot, at(T0 + 10), &before));
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].call_id, "after-reboot");
    assert_eq!(after[0].cseq, 1);
    assert_eq!(after[0].expires_at, T0 + 10 + 600);
    assert_eq!(changes, vec![BindingChange::Upsert(after[0].clone())]);
}

#[test]
fn contacts_equal_after_rfc3261_comparison_are_one_binding() {
    let raw = register(
        "c1",
        1,
        &["<sip:9301@PC33.Example.COM;Transport=UDP>"],
        None,
    );
    let before = bindings_after(&raw, at(T0), &[]);
    let again = register(
        "c1",
        2,
        &["<SIP:9301@pc33.example.com;transport=udp>"],
        None,
    );
    let after = bindings_after(&again, at(T0), &before);
    assert_eq!(after.len(), 1);
    // The latest form as received is kept, and the store key does not change.
    assert_eq!(after[0].contact, "SIP:9301@pc33.example.com;transport=udp");
    assert_eq!(after[0].store_key(), before[0].store_key());
}

#[test]
fn user_part_and_port_are_significant_in_the_contact_identity() {
    let raw = register(
        "c1",
        1,
        &[
            "<sip:alice@10.0.0.1>",
            "<sip:ALICE@10.0.0.1>",
            "<sip:alice@10.0.0.1:5060>",
        ],
        None,
    );
    assert_eq!(bindings_after(&raw, at(T0), &[]).len(), 3);
}

#[test]
fn two_contacts_make_two_bindings_ordered_by_q() {
    let raw = register(
        "c1",
        1,
        &["<sip:9301@10.0.0.1>;q=0.2, <sip:9301@10.0.0.2>;q=0.75"],
        None,
    );
    let (after, changes, contacts) = applied(run(&raw, at(T0), &[]));
    assert_eq!(after.len(), 2);
    assert_eq!(changes.len(), 2);
    assert_eq!(after[0].q, Some(750));
    assert_eq!(after[1].q, Some(200));
    assert_eq!(
        contacts,
        vec![
            "<sip:9301@10.0.0.2>;expires=3600;q=0.75",
            "<sip:9301@10.0.0.1>;expires=3600;q=0.2"
        ]
    );
}

#[test]
fn a_contact_named_twice_in_one_request_is_not_out_of_order_with_itself() {
    let raw = register(
        "c1",
        1,
        &[
            "<sip:9301@10.0.0.1>;expires=100",
            "<sip:9301@10.0.0.1>;expires=200",
        ],
        None,
    );
    let after = bindings_after(&raw, at(T0), &[]);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].expires_at, T0 + 200);
}

#[test]
fn expired_bindings_are_dropped_and_reported_for_removal() {
    let raw = register("c1", 1, &["<sip:9301@10.0.0.1>;expires=60"], None);
    let before = bindings_after(&raw, at(T0), &[]);
    let other = register("c2", 1, &["<sip:9301@10.0.0.2>"], None);
    let (after, changes, _) = applied(run(&other, at(T0 + 61), &before));
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].contact, "sip:9301@10.0.0.2");
    assert!(changes.contains(&BindingChange::Remove {
        aor: "9301".into(),
        contact: "sip:9301@10.0.0.1".into()
    }));
}

#[test]
fn cparam01_unknownparam_is_a_contact_param_not_part_of_the_uri() {
    let raw = read("torture/rfc4475/cparam01.dat");
    let (after, _, contacts) = applied(run(&raw, at(T0), &[]));
    assert_eq!(after[0].contact, "sip:+19725552222@gw1.example.net");
    assert_eq!(
        contacts,
        vec!["<sip:+19725552222@gw1.example.net>;expires=3600"]
    );
}

#[test]
fn cparam02_after_cparam01_replaces_its_binding_and_cparam01_again_takes_it_back() {
    // RFC 3261 section 19.1.4 ignores a uri-parameter only one of two URIs has: the two
    // contacts are one binding, and each REGISTER (another Call-ID) updates it.
    let first = read("torture/rfc4475/cparam01.dat");
    let (after, _, _) = applied(run(&first, at(T0), &[]));
    let second = read("torture/rfc4475/cparam02.dat");
    let (after, _, contacts) = applied(run(&second, at(T0 + 1), &after));
    assert_eq!(after.len(), 1);
    assert_eq!(
        contacts,
        vec!["<sip:+19725552222@gw1.example.net;unknownparam>;expires=3600"]
    );
    let (after, _, contacts) = applied(run(&first, at(T0 + 2), &after));
    assert_eq!(after.len(), 1);
    assert_eq!(
        contacts,
        vec!["<sip:+19725552222@gw1.example.net>;expires=3600"]
    );
}

#[test]
fn cparam02_unknownparam_inside_brackets_stays_in_the_uri() {
    let raw = read("torture/rfc4475/cparam02.dat");
    let (after, _, contacts) = applied(run(&raw, at(T0), &[]));
    assert_eq!(
        after[0].contact,
        "sip:+19725552222@gw1.example.net;unknownparam"
    );
    assert_eq!(
        contacts,
        vec!["<sip:+19725552222@gw1.example.net;unknownparam>;expires=3600"]
    );
}

#[test]
fn regescrt_keeps_the_escaped_route_header_in_the_contact_uri() {
    let raw = read("torture/rfc4475/regescrt.dat");
    let (after, _, contacts) = applied(run(&raw, at(T0), &[]));
    assert_eq!(
        after[0].contact,
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    );
    assert_eq!(
        contacts,
        vec!["<sip:user@example.com?Route=%3Csip:sip.example.com%3E>;expires=3600"]
    );
}

#[test]
fn escnull_registers_two_distinct_bindings() {
    let raw = read("torture/rfc4475/escnull.dat");
    assert_eq!(bindings_after(&raw, at(T0), &[]).len(), 2);
}

#[test]
fn bindings_survive_a_json_round_trip() {
    let raw = read("seed-flows/D-2-register-auth/04.sip");
    let binding = bindings_after(&raw, at(T0), &[]).remove(0);
    let json = serde_json::to_string(&binding).unwrap();
    assert!(json.contains(r#""transport":"udp""#), "{json}");
    assert_eq!(serde_json::from_str::<Binding>(&json).unwrap(), binding);
}

#[test]
fn q_values_parse_to_thousandths_and_print_back() {
    for (text, millis) in [
        ("1", 1000),
        ("0", 0),
        ("0.5", 500),
        ("0.05", 50),
        ("0.125", 125),
    ] {
        assert_eq!(parse_q_millis(text), Some(millis), "{text}");
    }
    for bad in ["2", "1.5", "0.1234", "", "x"] {
        assert_eq!(parse_q_millis(bad), None, "{bad}");
    }
    assert_eq!(format_q(500), "0.5");
    assert_eq!(format_q(50), "0.05");
    assert_eq!(format_q(125), "0.125");
    assert_eq!(format_q(1000), "1");
}

#[test]
fn a_minimum_above_an_hour_cannot_refuse_a_request_of_an_hour_or_more() {
    // RFC 3261 section 10.3 step 6 allows 423 only below one hour.
    let policy = RegistrarPolicy {
        min_expires: 7200,
        max_expires: 86400,
        default_expires: 7200,
    };
    let outcome = |expires: u32| {
        let raw = register(
            "c1",
            1,
            &[&format!("<sip:9301@10.0.0.1>;expires={expires}")],
            None,
        );
        let request = Message::parse(&raw).unwrap();
        process_register(&request, "9301", at(T0), origin(), &policy, &[])
    };
    assert!(matches!(
        outcome(3599),
        RegisterOutcome::Reject {
            status: 423,
            min_expires: Some(7200),
            ..
        }
    ));
    assert!(matches!(outcome(3600), RegisterOutcome::Ok { .. }));
}

#[test]
fn the_outcome_counts_new_contacts_apart_from_refreshed_ones() {
    let created = |outcome: RegisterOutcome| match outcome {
        RegisterOutcome::Ok { created, .. } => created,
        reject => panic!("expected 200, got {reject:?}"),
    };
    let first = register("c1", 1, &["<sip:9301@10.0.0.1>"], Some(3600));
    let current = bindings_after(&first, at(T0), &[]);
    assert_eq!(created(run(&first, at(T0), &[])), 1);
    // The same contact again plus a new one: one refresh, one creation.
    let second = register(
        "c1",
        2,
        &["<sip:9301@10.0.0.1>", "<sip:9301@10.0.0.2>"],
        Some(3600),
    );
    let outcome = run(&second, at(T0 + 10), &current);
    let RegisterOutcome::Ok { ref changes, .. } = outcome else {
        panic!("expected 200");
    };
    assert_eq!(changes.len(), 2);
    assert_eq!(created(outcome), 1);
}

#[test]
fn the_contact_identity_keeps_the_store_key_layout() {
    // Stored keys are made of identities: a file written by an earlier version must still match.
    assert_eq!(
        contact_identity("sip:9301@192.168.2.194;user=phone"),
        "sip:9301:@192.168.2.194:;user=phone?"
    );
    assert_eq!(
        contact_identity("SIPS:Al%69ce:pw@Example.COM:5061;Transport=TLS;lr?subject=x"),
        "sips:Alice:pw@example.com:5061;transport=tls?subject=x"
    );
    assert_eq!(
        contact_identity("sip:8000@127.0.0.1:5061"),
        "sip:8000:@127.0.0.1:5061;?"
    );
    assert_eq!(contact_identity("TEL:+1-555"), "tel:+1-555");
}
