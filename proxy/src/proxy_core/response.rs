//! Responses (RFC 3261 section 16.7): matched to a branch by the top Via's branch and the CSeq
//! method, handed to that branch's client transaction. A response whose top Via is not ours is
//! dropped (section 18.1.2; RFC 4475 section 3.3.10 sends one to a broadcast address). A 2xx
//! to an INVITE that matches no transaction any more is relayed statelessly, since it may be a
//! retransmission the UAS sends until its ACK arrives (section 16.7 step 2, 13.3.1.4).

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use dialtone_sip::{Message, Method};

use super::{transaction, Action, Destination, ProxyCore};
use dialtone_transaction::Transport;

/// Handles a parsed response: to its branch's client transaction, or, for a 2xx to an INVITE
/// whose transaction is gone, statelessly to the next Via.
pub(super) fn receive(
    core: &ProxyCore,
    now: Instant,
    wall: SystemTime,
    raw: &Bytes,
    response: &Message<'_>,
    actions: &mut Vec<Action>,
) {
    if let Err(error) = response.check_response() {
        core.metrics
            .parse_errors
            .with_label_values(&[error.kind()])
            .inc();
        return;
    }
    let Ok(via) = response.top_via() else { return };
    if !core.identity.is_our_via(via.host, via.port) {
        return;
    }
    let Some(status) = response.status() else {
        return;
    };
    let Some(client_key) = dialtone_transaction::client_key(response) else {
        return;
    };
    let bytes = raw.slice_ref(response.as_bytes());
    let server_key = core.branches.get(&client_key).map(|k| *k.value());
    let entry = server_key
        .as_ref()
        .and_then(|k| core.servers.get(k).map(|e| e.value().clone()));
    match (server_key, entry) {
        (Some(server_key), Some(entry)) => {
            let bytes = if transaction::relayed_as_received(status) {
                Bytes::from(response.edit().remove_top_via().finish())
            } else {
                bytes
            };
            let mut tx = entry.lock().unwrap_or_else(|p| p.into_inner());
            tx.on_branch_response(
                now,
                &core.transaction_env(),
                &client_key,
                status,
                bytes,
                actions,
            );
            core.after(now, wall, &server_key, &mut tx, actions);
        }
        _ if core
            .mwi
            .on_response(now, &client_key, status, bytes.clone(), actions) => {}
        _ => {
            let is_invite_2xx = (200..300).contains(&status)
                && response
                    .cseq()
                    .map(|c| c.method == Method::Invite)
                    .unwrap_or(false);
            if is_invite_2xx {
                relay_stateless(response, actions);
            }
        }
    }
}

/// Sends a response to the next Via without our own (RFC 3261 section 16.7 step 2).
fn relay_stateless(response: &Message<'_>, actions: &mut Vec<Action>) {
    let Some(Ok(next)) = response.vias_below_top().next() else {
        return;
    };
    let ip = next
        .received()
        .or_else(|| dialtone_sip::uri::parse_host_ip(next.host));
    let Some(ip) = ip else { return };
    let port = match next.rport() {
        Some(Some(port)) => port,
        _ => next.port_or_default(),
    };
    let transport = if next.is_reliable() {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let bytes = Bytes::from(response.edit().remove_top_via().finish());
    actions.push(Action::Send {
        to: Destination {
            transport,
            addr: SocketAddr::new(ip, port),
        },
        bytes,
    });
}
