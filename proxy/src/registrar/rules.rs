//! The registrar's rules (RFC 3261 section 10.3), sans-IO: a REGISTER, the current bindings of
//! its address-of-record and `now` go in; the bindings after it, the changes the store must make
//! and the Contact values of the 200 OK come out, or the rejection to send.
//!
//! Steps 1 to 4 of section 10.3 (the Request-URI's domain, Require, authentication, computing
//! the AOR from To) belong to the proxy core, which calls [`process_register`] for steps 5 to 8.
//! [`super::location`] holds the bindings in memory and applies the outcome under the AOR's
//! lock; [`super::store`] persists the [`BindingChange`]s.

use dialtone_transaction::Transport;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::SystemTime;

use dialtone_sip::headers::parse_contact_expires;
use dialtone_sip::{Contacts, Message, NameAddr};
use serde::{Deserialize, Serialize};

use super::binding::{contact_identity, unix_seconds, Binding, BindingChange};

/// RFC 3261 section 10.3 step 6 lets a registrar answer 423 only for intervals under one hour.
const ONE_HOUR: u32 = 3600;

/// The registrar's expiry limits, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrarPolicy {
    /// Shorter non-zero intervals are refused with 423 and this Min-Expires (section 10.3 step 6).
    pub min_expires: u32,
    /// Longer intervals are shortened to this (section 10.3 step 6 lets the registrar decrease).
    pub max_expires: u32,
    /// The interval when neither the contact nor the request gives one.
    pub default_expires: u32,
}

impl Default for RegistrarPolicy {
    fn default() -> Self {
        RegistrarPolicy {
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
        }
    }
}

/// What to answer to a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// 200 OK: the request was applied (or was a query).
    Ok {
        /// Every binding of the AOR afterwards, highest q first.
        bindings_after: Vec<Binding>,
        /// What the store must do.
        changes: Vec<BindingChange>,
        /// How many of the upserts in `changes` bind a contact the AOR did not have (the
        /// others refresh one): for the registration event counters.
        created: usize,
        /// The Contact header values of the 200 OK.
        response_contacts: Vec<String>,
    },
    /// A failure response; nothing was changed.
    Reject {
        status: u16,
        reason: &'static str,
        /// The Min-Expires header value of a 423.
        min_expires: Option<u32>,
    },
}

impl RegisterOutcome {
    fn reject(status: u16, reason: &'static str) -> RegisterOutcome {
        RegisterOutcome::Reject {
            status,
            reason,
            min_expires: None,
        }
    }
}

/// Where a REGISTER came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub source: SocketAddr,
    pub transport: Transport,
}

/// Applies a REGISTER to the current bindings of `aor` (RFC 3261 section 10.3 steps 5 to 8).
///
/// `request` has passed [`Message::check_request`]; `current` are the AOR's bindings now (expired
/// ones among them are dropped and reported as removals). The outcome is all or nothing: a
/// rejection changes no binding (section 10.3 step 7, last paragraph).
pub fn process_register(
    request: &Message<'_>,
    aor: &str,
    now: SystemTime,
    origin: Origin,
    policy: &RegistrarPolicy,
    current: &[Binding],
) -> RegisterOutcome {
    // check_request has validated these; a caller that skipped it still gets a 400, not a panic.
    let bad = |reason| RegisterOutcome::reject(400, reason);
    let Ok(call_id) = request.call_id() else {
        return bad("Bad Call-ID");
    };
    let Ok(cseq) = request.cseq() else {
        return bad("Bad CSeq");
    };
    let Ok(contacts) = request.contacts() else {
        return bad("Bad Contact");
    };
    let Ok(expires_header) = request.expires() else {
        return bad("Bad Expires");
    };
    let update = Update {
        aor,
        call_id,
        cseq: cseq.seq,
        now,
        origin,
    };
    let before = unexpired(current, now);
    let requested = match contacts {
        Contacts::List(list) => requested_contacts(list, expires_header, policy, now),
        Contacts::Wildcard => Vec::new(),
    };
    let mut working: Vec<Keyed<'_>> = before.iter().map(Keyed::lent).collect();
    let outcome = match contacts {
        Contacts::Wildcard => remove_all(&update, expires_header, &mut working),
        Contacts::List(list) if list.is_empty() => Ok(()),
        Contacts::List(_) => {
            if is_retransmission(&update, &requested, &before) {
                Ok(())
            } else {
                apply_contacts(&update, &requested, &before, &mut working)
            }
        }
    };
    if let Err(reject) = outcome {
        return reject;
    }
    working.sort_by_key(|k| std::cmp::Reverse(k.binding.priority()));
    let created = working
        .iter()
        .filter(|k| !before.iter().any(|b| b.identity == k.identity))
        .count();
    let changes = diff(current, &before, &working, now);
    let bindings_after: Vec<Binding> = working
        .into_iter()
        .map(|k| k.binding.into_owned())
        .collect();
    RegisterOutcome::Ok {
        changes,
        created,
        response_contacts: bindings_after
            .iter()
            .map(|b| b.response_contact(now))
            .collect(),
        bindings_after,
    }
}

/// A binding with its contact identity, computed once. The AOR's current bindings are lent,
/// not copied: a REGISTER that refreshes one binding copied every binding of its AOR three
/// times over (a fifth of its allocations).
struct Keyed<'b> {
    identity: Cow<'b, str>,
    binding: Cow<'b, Binding>,
}

impl<'b> Keyed<'b> {
    fn new(binding: &'b Binding) -> Keyed<'b> {
        Keyed {
            identity: Cow::Owned(binding.identity()),
            binding: Cow::Borrowed(binding),
        }
    }

    /// The same binding, borrowed from this one.
    fn lent(&self) -> Keyed<'_> {
        Keyed {
            identity: Cow::Borrowed(&self.identity),
            binding: Cow::Borrowed(&self.binding),
        }
    }
}

/// The parts of the request every binding update records.
struct Update<'r> {
    aor: &'r str,
    call_id: &'r str,
    cseq: u32,
    now: SystemTime,
    origin: Origin,
}

impl Update<'_> {
    /// Section 10.3 step 7: a binding made under the same Call-ID may only be changed by a
    /// higher CSeq, so that a delayed, out-of-order REGISTER cannot undo a later one.
    fn may_change(&self, existing: &Binding) -> bool {
        existing.call_id != self.call_id || self.cseq > existing.cseq
    }

    /// The binding was made by this very request (same Call-ID and CSeq): the request is a
    /// retransmission.
    fn is_same_request(&self, existing: &Binding) -> bool {
        existing.call_id == self.call_id && self.cseq == existing.cseq
    }

    fn binding(&self, contact: &str, q: Option<u16>, expires: u32) -> Binding {
        let now = unix_seconds(self.now);
        Binding {
            aor: self.aor.to_owned(),
            contact: contact.to_owned(),
            q,
            expires_at: now + u64::from(expires),
            call_id: self.call_id.to_owned(),
            cseq: self.cseq,
            source: self.origin.source,
            transport: self.origin.transport,
            registered_at: now,
        }
    }
}

/// Section 10.3 step 7 answers a failed step with 500; the reason phrase says why.
fn out_of_order() -> RegisterOutcome {
    RegisterOutcome::reject(500, "Out of Order")
}

/// One Contact of the request, with what is worked out from it once: its identity among the
/// AOR's bindings and the interval it asks for (step 6; an error is answered as it stands).
struct Requested<'c, 'a> {
    contact: &'c NameAddr<'a>,
    identity: String,
    expires: Result<u32, RegisterOutcome>,
}

/// Whether `request` only repeats the REGISTER that made `current` (see [`is_retransmission`]):
/// the registrar answers such a request again without it changing anything. The proxy asks
/// this of a REGISTER whose digest nonce count was used already (RFC 7616 section 3.4.5 would
/// have it re-challenged): a retransmission carries its original count, and must get its 200.
pub fn repeats_current(
    request: &Message<'_>,
    aor: &str,
    now: SystemTime,
    origin: Origin,
    policy: &RegistrarPolicy,
    current: &[Binding],
) -> bool {
    let (Ok(call_id), Ok(cseq), Ok(Contacts::List(list)), Ok(expires_header)) = (
        request.call_id(),
        request.cseq(),
        request.contacts(),
        request.expires(),
    ) else {
        return false;
    };
    let update = Update {
        aor,
        call_id,
        cseq: cseq.seq,
        now,
        origin,
    };
    let requested = requested_contacts(list, expires_header, policy, now);
    is_retransmission(&update, &requested, &unexpired(current, now))
}

/// The bindings still in force at `now`, each with its identity. Each identity is computed
/// once per request: an AOR may hold many bindings (RFC 4475 escnull registers two, a lab load
/// test thousands) and parsing URIs in a nested loop made one REGISTER quadratic.
fn unexpired(current: &[Binding], now: SystemTime) -> Vec<Keyed<'_>> {
    current
        .iter()
        .filter(|b| !b.is_expired(now))
        .map(Keyed::new)
        .collect()
}

/// The request's contacts with what the rules work out from each, once.
fn requested_contacts<'c, 'a>(
    list: &'c [NameAddr<'a>],
    expires_header: Option<u32>,
    policy: &RegistrarPolicy,
    now: SystemTime,
) -> Vec<Requested<'c, 'a>> {
    list.iter()
        .map(|contact| Requested {
            contact,
            identity: contact_identity(contact.uri.as_str()),
            expires: requested_expires(contact, expires_header, policy, now),
        })
        .collect()
}

/// Whether the request repeats the one that made the current bindings: every contact it adds
/// is bound under its Call-ID and CSeq already, every contact it removes is gone. The proxy
/// keeps no transaction for REGISTER (RFC 3261 section 8.2.7, a stateless UAS), so a
/// retransmission reaches the rules again and must get the same 200 with nothing changed;
/// anything else with the same CSeq stays out of order (step 7).
fn is_retransmission(
    update: &Update<'_>,
    requested: &[Requested<'_, '_>],
    before: &[Keyed],
) -> bool {
    let mut repeats_a_binding = false;
    for r in requested {
        let existing = before.iter().find(|k| k.identity == r.identity);
        match (existing, &r.expires) {
            (Some(k), Ok(expires)) if *expires > 0 && update.is_same_request(&k.binding) => {
                repeats_a_binding = true
            }
            (None, Ok(0)) => {}
            _ => return false,
        }
    }
    repeats_a_binding
}

/// `Contact: *` (section 10.3 step 6): only with `Expires: 0`, then every binding goes, each
/// subject to the Call-ID/CSeq check of step 7.
fn remove_all(
    update: &Update<'_>,
    expires_header: Option<u32>,
    working: &mut Vec<Keyed>,
) -> Result<(), RegisterOutcome> {
    if expires_header != Some(0) {
        return Err(RegisterOutcome::reject(400, "Contact * Needs Expires 0"));
    }
    if !working.iter().all(|k| update.may_change(&k.binding)) {
        return Err(out_of_order());
    }
    working.clear();
    Ok(())
}

/// Steps 6 and 7 for a list of contacts. Each contact is checked against the bindings as they
/// were before this request, so a request naming one contact twice is not out of order with
/// itself; the later mention wins.
fn apply_contacts<'w>(
    update: &Update<'_>,
    requested: &'w [Requested<'_, '_>],
    before: &[Keyed<'_>],
    working: &mut Vec<Keyed<'w>>,
) -> Result<(), RegisterOutcome> {
    for r in requested {
        let expires = r.expires.clone()?;
        if let Some(existing) = before.iter().find(|k| k.identity == r.identity) {
            if !update.may_change(&existing.binding) {
                return Err(out_of_order());
            }
        }
        working.retain(|k| k.identity != r.identity);
        if expires > 0 {
            let q = contact_q(r.contact)?;
            working.push(Keyed {
                identity: Cow::Borrowed(&r.identity),
                binding: Cow::Owned(update.binding(r.contact.uri.as_str(), q, expires)),
            });
        }
    }
    Ok(())
}

/// Step 6: the contact's `expires` parameter, else the Expires header, else the default; a
/// non-zero interval under the minimum is refused with 423, one over the maximum is shortened.
fn requested_expires(
    contact: &NameAddr<'_>,
    expires_header: Option<u32>,
    policy: &RegistrarPolicy,
    now: SystemTime,
) -> Result<u32, RegisterOutcome> {
    let requested = match contact.params.get("expires") {
        Some(Some(value)) => parse_contact_expires(value)
            .map_err(|_| RegisterOutcome::reject(400, "Bad Contact Expires"))?
            .seconds_from(now),
        Some(None) => return Err(RegisterOutcome::reject(400, "Bad Contact Expires")),
        None => match expires_header {
            Some(seconds) => seconds,
            None => return Ok(policy.default_expires.min(policy.max_expires)),
        },
    };
    // Step 6 allows 423 only "if ... smaller than one hour"; a minimum above an hour cannot be
    // enforced that way, so longer requests below it are accepted as they are.
    if requested > 0 && requested < policy.min_expires && requested < ONE_HOUR {
        return Err(RegisterOutcome::Reject {
            status: 423,
            reason: "Interval Too Brief",
            min_expires: Some(policy.min_expires),
        });
    }
    Ok(requested.min(policy.max_expires))
}

/// The contact's `q` in thousandths. `check_request` has validated its form (RFC 3261 section
/// 20.10: at most three decimals, 0 to 1).
fn contact_q(contact: &NameAddr<'_>) -> Result<Option<u16>, RegisterOutcome> {
    match contact.params.get("q") {
        None => Ok(None),
        Some(value) => parse_q_millis(value.unwrap_or(""))
            .map(Some)
            .ok_or(RegisterOutcome::reject(400, "Bad Contact q")),
    }
}

fn parse_q_millis(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut millis = 0u16;
    for (i, digit) in frac.bytes().enumerate() {
        millis += u16::from(digit - b'0') * [100, 10, 1][i];
    }
    let q = whole + millis;
    (q <= 1000).then_some(q)
}

/// The changes that turn `current` into `after`, in the order the store must apply them:
/// removals of expired bindings, removals of bindings this request ended, then upserts of
/// bindings that are new or changed (one may reuse the key of an expired one).
fn diff(
    current: &[Binding],
    before: &[Keyed],
    after: &[Keyed],
    now: SystemTime,
) -> Vec<BindingChange> {
    let after_ids: HashSet<&str> = after.iter().map(|k| k.identity.as_ref()).collect();
    let before_by_id: HashMap<&str, &Binding> = before
        .iter()
        .map(|k| (k.identity.as_ref(), k.binding.as_ref()))
        .collect();
    let mut changes: Vec<BindingChange> = current
        .iter()
        .filter(|b| b.is_expired(now))
        .map(BindingChange::remove)
        .collect();
    changes.extend(
        before
            .iter()
            .filter(|k| !after_ids.contains(k.identity.as_ref()))
            .map(|k| BindingChange::remove(&k.binding)),
    );
    changes.extend(
        after
            .iter()
            .filter(|k| before_by_id.get(k.identity.as_ref()) != Some(&k.binding.as_ref()))
            .map(|k| BindingChange::Upsert(k.binding.as_ref().clone())),
    );
    changes
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
