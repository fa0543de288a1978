//! Who is calling, read from an arriving INVITE, sans-IO: the number and name to show
//! (from `P-Asserted-Identity` when our proxy asserted one, RFC 3325, else from From), whether
//! the caller hid them (RFC 3323 `Privacy: id`, or an anonymous From), and the distinctive
//! ring it asks for in `Alert-Info` with the cadence that ring has.
//!
//! A caller who asked for privacy is shown as `anonymous` even when the proxy, inside our
//! trust domain, still passes its asserted identity: RFC 3325 section 7 lets the last hop
//! keep it for the network, not for the callee's display.

use dialtone_sip::{Message, NameAddr};

use super::phone::{Caller, Party};

/// The number shown for a caller who hid it.
pub const ANONYMOUS: &str = "anonymous";

/// The caller of `invite`, as the line shows it.
pub fn caller_of(invite: &Message<'_>) -> Caller {
    let from = invite.header_value_by_name("From").unwrap_or_default();
    let asserted = invite.header_value_by_name("P-Asserted-Identity");
    let privacy = invite
        .header_value_by_name("Privacy")
        .is_some_and(|p| p.split(';').any(|t| t.trim().eq_ignore_ascii_case("id")));
    let from_party = party(from);
    let anonymous = privacy
        || from_party.as_ref().is_none_or(|(p, host)| {
            p.number.eq_ignore_ascii_case(ANONYMOUS)
                || host.eq_ignore_ascii_case("anonymous.invalid")
        });
    let party = if anonymous {
        Party {
            number: ANONYMOUS.to_owned(),
            name: Some("Anonymous".to_owned()),
        }
    } else {
        asserted
            .and_then(|value| party(value.split(',').next().unwrap_or(value)))
            .or(from_party)
            .map(|(p, _)| p)
            .unwrap_or_default()
    };
    Caller {
        party,
        anonymous,
        ring_pattern: invite
            .header_value_by_name("Alert-Info")
            .and_then(ring_pattern),
    }
}

/// The number (user part) and name of a From or P-Asserted-Identity value, and the URI's
/// host.
fn party(value: &str) -> Option<(Party, String)> {
    let name_addr = NameAddr::parse(value.trim(), "From").ok()?;
    let host = name_addr
        .uri
        .as_sip()
        .map(|u| u.host.to_owned())
        .unwrap_or_default();
    let number = name_addr.uri.user().unwrap_or(&host).to_owned();
    let name = name_addr
        .display_name
        .map(|n| n.trim().trim_matches('"').trim().to_owned())
        .filter(|n| !n.is_empty());
    Some((Party { number, name }, host))
}

/// The distinctive ring an `Alert-Info` asks for: `Bellcore-dr1` to `Bellcore-dr5` (in the
/// URI, as Asterisk and Broadsoft write it, or as `info=`), or another `info=alert-...`
/// name, kept as written.
pub fn ring_pattern(alert_info: &str) -> Option<String> {
    let lower = alert_info.to_ascii_lowercase();
    if let Some(at) = lower.find("bellcore-dr") {
        let digit = lower[at + "bellcore-dr".len()..].chars().next()?;
        return ('1'..='5')
            .contains(&digit)
            .then(|| format!("Bellcore-dr{digit}"));
    }
    let at = lower.find("info=")?;
    let info: String = alert_info[at + "info=".len()..]
        .chars()
        .take_while(|c| !matches!(c, ';' | ',' | ' ' | '>'))
        .collect();
    (!info.is_empty()).then_some(info)
}

/// The ring cadence of a pattern, as (on, off) milliseconds (Telcordia GR-506 distinctive
/// ringing; the ordinary ring, 2 s on and 4 s off, for anything else).
pub fn ring_cadence(pattern: Option<&str>) -> &'static [(u32, u32)] {
    match pattern {
        Some("Bellcore-dr2") => &[(800, 400), (800, 4000)],
        Some("Bellcore-dr3") => &[(400, 200), (400, 200), (800, 4000)],
        Some("Bellcore-dr4") => &[(300, 200), (1000, 200), (300, 4000)],
        Some("Bellcore-dr5") => &[(500, 0)],
        _ => &[(2000, 4000)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(extra: &str) -> Vec<u8> {
        format!(
            "INVITE sip:8000@lab SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5064;branch=z9hG4bK1\r\n\
             From: \"Bob\" <sip:9000@lab>;tag=1\r\nTo: <sip:8000@lab>\r\nCall-ID: c\r\n\
             CSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn caller(extra: &str) -> Caller {
        let bytes = invite(extra);
        caller_of(&Message::parse(&bytes).expect("parses"))
    }

    #[test]
    fn the_number_and_name_come_from_from_or_from_the_asserted_identity() {
        let plain = caller("");
        assert_eq!(plain.party.number, "9000");
        assert_eq!(plain.party.name.as_deref(), Some("Bob"));
        assert!(!plain.anonymous);
        let asserted = caller("P-Asserted-Identity: \"Robert\" <sip:9001@lab>\r\n");
        assert_eq!(asserted.party.number, "9001");
        assert_eq!(asserted.party.name.as_deref(), Some("Robert"));
    }

    #[test]
    fn privacy_or_an_anonymous_from_hides_the_caller_even_with_an_asserted_identity() {
        let hidden = caller("Privacy: id\r\nP-Asserted-Identity: <sip:9000@lab>\r\n");
        assert!(hidden.anonymous);
        assert_eq!(hidden.party.number, ANONYMOUS);
        let bytes = String::from_utf8(invite(""))
            .expect("utf8")
            .replace(
                "\"Bob\" <sip:9000@lab>",
                "\"Anonymous\" <sip:anonymous@anonymous.invalid>",
            )
            .into_bytes();
        let from_anonymous = caller_of(&Message::parse(&bytes).expect("parses"));
        assert!(from_anonymous.anonymous);
    }

    #[test]
    fn alert_info_names_a_distinctive_ring() {
        assert_eq!(
            caller("Alert-Info: <http://127.0.0.1/Bellcore-dr2>\r\n").ring_pattern,
            Some("Bellcore-dr2".into())
        );
        assert_eq!(
            ring_pattern("<http://x>;info=alert-internal"),
            Some("alert-internal".into())
        );
        assert_eq!(
            ring_pattern("<http://x>;info=Bellcore-dr4"),
            Some("Bellcore-dr4".into())
        );
        assert_eq!(ring_pattern("<http://x>"), None);
        assert_eq!(ring_pattern("<http://x/Bellcore-dr9>"), None);
        assert_eq!(caller("").ring_pattern, None);
        assert_eq!(ring_cadence(Some("Bellcore-dr3")).len(), 3);
        assert_eq!(ring_cadence(None), &[(2000, 4000)]);
    }
}
