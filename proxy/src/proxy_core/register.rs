//! REGISTER for one of our domains (RFC 3261 section 10.3): authentication with the
//! registrar's challenge code, the location service's rules, the registration metrics, and the
//! 200 held until the store has committed what the REGISTER changed.

use std::time::SystemTime;

use bytes::Bytes;
use dialtone_sip::{Message, Uri};

use super::admission::Authorized;
use super::new_request::NewRequest;
use super::{reply, Action, HeldRequest, ProxyCore};
use crate::auth::Claimed;
use crate::config::AuthMode;
use crate::metrics::RegistrationEvent;
use crate::registrar::{to_persist, Applied, BindingChange, Origin, RegisterOutcome};

/// Seconds a REGISTER whose changes could not be saved is asked to wait before trying again:
/// the writer retries the commit every second meanwhile.
const STORE_RETRY_AFTER: u32 = 5;

/// A REGISTER for a local domain (RFC 3261 section 10.3).
pub(super) fn register(new: &mut NewRequest<'_, '_>) {
    let core = new.core;
    let request = new.request;
    let Ok(to) = request.to() else {
        return new.respond(400, "Bad To", &[]);
    };
    let aor = match (&to.uri, to.uri.as_sip().and_then(|s| s.user_unescaped())) {
        (Uri::Sip(_), Some(user)) => user.into_owned(),
        _ => return new.respond(400, "Bad To (not a SIP AOR)", &[]),
    };
    let mut replayed = false;
    if core.auth_mode != AuthMode::None {
        let raw_user = to.uri.user().unwrap_or("");
        match new.authenticate(Claimed::User(raw_user), core.register_challenge, true) {
            Some(authorized) => replayed = authorized == Authorized::Replayed,
            None => return,
        }
    }
    let origin = Origin {
        source: new.source.addr,
        transport: new.source.transport,
    };
    // The proxy keeps no transaction for REGISTER, so the retransmission of one sent with
    // qop comes back with a nonce count already used: it gets its 200 again, and only it.
    let applied = if replayed {
        match core
            .location
            .register_repeat(request, &aor, new.wall, origin, &core.policy)
        {
            Some(outcome) => outcome,
            None => return new.challenge(core.register_challenge, true),
        }
    } else {
        core.location
            .register(request, &aor, new.wall, origin, &core.policy)
    };
    let Applied { outcome, sequence } = applied;
    match outcome {
        RegisterOutcome::Ok {
            changes,
            created,
            response_contacts,
            bindings_after,
        } => {
            count_changes(core, &changes, created);
            // The registrations gauge is read from the location service at scrape time
            // (http.rs): counting bindings here would walk the whole map per REGISTER.
            let mut extra: Vec<(&str, String)> = response_contacts
                .into_iter()
                .map(|c| ("Contact", c))
                .collect();
            extra.push(("Date", httpdate_now(new.wall)));
            if let Some(sequence) = sequence {
                let changes = to_persist(changes, bindings_after);
                new.actions.push(Action::Persist { sequence, changes });
            }
            let first = new.actions.len();
            new.respond(200, "OK", &extra);
            if core.location.is_persistent() {
                // Also when nothing changed (a fetch, a retransmission): its Persist writes
                // the AOR's bindings again, and the 200 waits for that commit.
                let held = HeldRequest {
                    request: new.tx.request().clone(),
                    source: new.tx.source(),
                };
                send_when_stored(&mut new.actions[first..], &held);
            }
        }
        RegisterOutcome::Reject {
            status,
            reason,
            min_expires,
        } => {
            core.metrics
                .registration_event(RegistrationEvent::Rejected)
                .inc();
            let extra: Vec<(&str, String)> = min_expires
                .map(|m| vec![("Min-Expires", m.to_string())])
                .unwrap_or_default();
            new.respond(status, reason, &extra);
        }
    }
}

/// Counts what a REGISTER did to its AOR's bindings.
fn count_changes(core: &ProxyCore, changes: &[BindingChange], created: usize) {
    let upserts = changes
        .iter()
        .filter(|c| matches!(c, BindingChange::Upsert(_)))
        .count();
    for (event, count) in [
        (RegistrationEvent::Created, created),
        (
            RegistrationEvent::Refreshed,
            upserts.saturating_sub(created),
        ),
        (RegistrationEvent::Removed, changes.len() - upserts),
    ] {
        if count > 0 {
            core.metrics.registration_event(event).inc_by(count as u64);
        }
    }
}

/// The Date header of a 200 to REGISTER (RFC 3261 section 10.3 step 8 allows it; the seed's
/// ATA sets its clock from it), formatted once a second per thread and copied otherwise: at
/// tens of thousands of REGISTERs a second the formatting showed in profiles.
fn httpdate_now(wall: SystemTime) -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let second = wall
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != second {
            *last = (second, httpdate::fmt_http_date(wall));
        }
        last.1.clone()
    })
}

/// The answer to a REGISTER whose changes the store could not save, in place of its held
/// 200 (RFC 3261 section 10.3 step 7): a 500 asking the client to come back. Built only
/// when a commit fails, from the request kept with the held response, so that a REGISTER
/// whose commit succeeds (all but a few) does not pay for it.
pub(super) fn not_stored_response(core: &ProxyCore, held: &HeldRequest) -> Option<Bytes> {
    let request = Message::parse(&held.request).ok()?;
    Some(reply::local_response(
        &request,
        held.source,
        500,
        "Server Internal Error",
        &[("Retry-After", STORE_RETRY_AFTER.to_string())],
        &core.to_tag,
        core.server_header.as_deref(),
    ))
}

/// Turns the sends among `actions` into sends that wait for the store's next commit, and are
/// answered otherwise if it fails (see [`not_stored_response`]).
fn send_when_stored(actions: &mut [Action], held: &HeldRequest) {
    for action in actions {
        if let Action::Send { to, bytes } = action {
            *action = Action::SendWhenStored {
                to: *to,
                bytes: std::mem::take(bytes),
                request: held.clone(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::httpdate_now;

    #[test]
    fn the_date_header_follows_the_clock_across_seconds() {
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(httpdate_now(t), "Sun, 09 Sep 2001 01:46:40 GMT");
        // Within the same second the copy is the same text.
        assert_eq!(
            httpdate_now(t + Duration::from_millis(999)),
            "Sun, 09 Sep 2001 01:46:40 GMT"
        );
        assert_eq!(
            httpdate_now(t + Duration::from_secs(1)),
            "Sun, 09 Sep 2001 01:46:41 GMT"
        );
        // Back in time too (the wall clock can be set back).
        assert_eq!(
            httpdate_now(t - Duration::from_secs(86_400)),
            "Sat, 08 Sep 2001 01:46:40 GMT"
        );
    }
}
