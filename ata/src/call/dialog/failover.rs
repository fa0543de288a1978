//! A dialog whose next hop is a host name (a cluster's `Record-Route`, issue 21 item 4): the
//! lookup the call actor is asked to make, its answer, and our in-dialog requests sent again
//! to the name's next address when the one tried times out, cannot be reached or answers 503
//! (RFC 3263 section 4.3: a new client transaction, so a new branch; the request is otherwise
//! the same, CSeq included). The ACK to a 2xx has no transaction and is not retried: it goes
//! to the preferred address, like every request after a failover.

use std::net::SocketAddr;

use super::super::hops::HopLookup;
use super::super::route::route_plan;
use super::{Dialog, Output, Phase};
use crate::identity;

/// One of our in-dialog requests awaiting its final response.
#[derive(Debug, Clone)]
pub(super) struct InFlight {
    method: String,
    cseq: u32,
    bytes: Vec<u8>,
    tried: Vec<SocketAddr>,
}

impl Dialog {
    /// The host name the call actor should resolve for this dialog's next hop, once: asked
    /// when the route set is known (the peer's tag came), and only for a name.
    pub fn take_hop_lookup(&mut self) -> Option<HopLookup> {
        if self.remote_tag.is_none() || self.phase == Phase::Terminated {
            return None;
        }
        let plan = route_plan(&self.route_set, &self.remote_target);
        self.hops.lookup_for(&plan.next_hop)
    }

    /// The addresses `host` resolved to, best first (empty when it did not resolve: requests
    /// keep going to the proxy the call was set up through).
    pub fn hop_resolved(&mut self, host: &str, targets: Vec<SocketAddr>) {
        self.hops.resolved(host, targets);
    }

    /// Sends an in-dialog request (BYE, re-INVITE, REFER, NOTIFY, INFO) as a client
    /// transaction, kept until its final response in case it must go elsewhere.
    pub(super) fn send_in_dialog(&mut self, bytes: Vec<u8>, destination: SocketAddr) {
        let (method, cseq) = method_and_cseq(&bytes);
        self.in_flight.retain(|r| r.method != method);
        self.in_flight.push(InFlight {
            method,
            cseq,
            bytes: bytes.clone(),
            tried: vec![destination],
        });
        self.outputs
            .push_back(Output::Request { bytes, destination });
    }

    /// A final response to our `method` request with `cseq`: a 503 sends it to the next
    /// address (true: the response is dealt with); any other final ends its keeping.
    pub(super) fn settle_in_flight(&mut self, method: &str, cseq: u32, status: u16) -> bool {
        if status == 503 && self.retry_elsewhere(method, Some(cseq)) {
            return true;
        }
        self.in_flight
            .retain(|r| !(r.method == method && r.cseq == cseq));
        false
    }

    /// Our `method` request (with `cseq`, when known) failed at its next hop: sends it again,
    /// in a new transaction, to the next address of the hop's name not yet tried. False when
    /// there is none (an IP next hop, or every address tried): the failure stands.
    pub(super) fn retry_elsewhere(&mut self, method: &str, cseq: Option<u32>) -> bool {
        let Some(index) = self
            .in_flight
            .iter()
            .position(|r| r.method == method && cseq.is_none_or(|c| c == r.cseq))
        else {
            return false;
        };
        let Some(next) = self.hops.next_untried(&self.in_flight[index].tried) else {
            self.in_flight.remove(index);
            return false;
        };
        let branch = identity::new_branch(&mut self.rng);
        let entry = &mut self.in_flight[index];
        entry.tried.push(next);
        entry.bytes = with_branch(&entry.bytes, &branch);
        let bytes = entry.bytes.clone();
        self.hops.prefer(next);
        self.outputs.push_back(Output::Request {
            bytes,
            destination: next,
        });
        true
    }
}

/// The method of the request line and the CSeq number of a request we built.
fn method_and_cseq(bytes: &[u8]) -> (String, u32) {
    let text = String::from_utf8_lossy(bytes);
    let method = text.split(' ').next().unwrap_or("").to_owned();
    let cseq = text
        .lines()
        .find_map(|line| line.strip_prefix("CSeq:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (method, cseq)
}

/// `bytes` with the top Via's branch (the first `branch=` of a request we built: our Via is
/// its first header) replaced by `branch`.
fn with_branch(bytes: &[u8], branch: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let Some(start) = text.find("branch=").map(|at| at + "branch=".len()) else {
        return bytes.to_vec();
    };
    let end = text[start..]
        .find([';', '\r', ',', ' '])
        .map_or(text.len(), |len| start + len);
    let mut out = String::with_capacity(text.len() + branch.len());
    out.push_str(&text[..start]);
    out.push_str(branch);
    out.push_str(&text[end..]);
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_branch_is_replaced_and_nothing_else() {
        let request = b"BYE sip:b@127.0.0.3 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKold;rport\r\nCSeq: 7 BYE\r\n\r\n";
        let again = with_branch(request, "z9hG4bKnew");
        assert_eq!(
            String::from_utf8(again).unwrap(),
            "BYE sip:b@127.0.0.3 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKnew;rport\r\nCSeq: 7 BYE\r\n\r\n"
        );
        assert_eq!(method_and_cseq(request), ("BYE".into(), 7));
    }
}
