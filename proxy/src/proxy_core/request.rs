//! Requests: validation (RFC 3261 section 16.3), route information (16.4, see `route.rs`),
//! target determination (16.5: the registrar's bindings, a Route, or the Request-URI), and
//! forwarding (16.6) by editing the received octets. REGISTER for a local domain goes to the
//! registrar; ACK and CANCEL have their own paths (sections 16.10, 16.11, 17.2.1).

use dialtone_transaction::Transport;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use dialtone_sip::{HeaderName, Message, Method, ParseError, Uri, Via};
use dialtone_transaction::TransactionKey;

use super::admission::{Authorized, Target};
use super::identity::{self, branch_for, uri_target};
use super::route::{self, RoutePlan};
use super::transaction::{PendingBranch, ProxyTransaction};
use super::{reply, Action, Destination, HeldRequest, ProxyCore, Source};
use crate::config::AuthMode;
use crate::metrics::RegistrationEvent;
use crate::registrar::{Binding, Origin, RegisterOutcome, StoreWriter};

/// RFC 3261 section 18.1.1: over UDP, requests larger than the path MTU minus 200 octets go
/// over TCP instead (1300 for an Ethernet-sized MTU).
const UDP_SIZE_LIMIT: usize = 1300;

/// What the proxy allows and says so in OPTIONS answers and 405s.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, NOTIFY, REFER, INFO, UPDATE, MESSAGE, SUBSCRIBE, PRACK";

impl ProxyCore {
    /// A message that could not be parsed: answer it when it looks like a request.
    pub(super) fn on_unparseable(
        &self,
        source: Source,
        bytes: &[u8],
        error: &ParseError,
        actions: &mut Vec<Action>,
    ) {
        self.metrics
            .parse_errors
            .with_label_values(&[error.kind()])
            .inc();
        let Some((response, top_via)) =
            reply::fallback_response(bytes, error.status_code(), &error.reason_phrase())
        else {
            return;
        };
        let via = top_via.as_deref().and_then(|v| Via::parse(v).ok());
        let to = reply::reply_destination(&source, via.as_ref());
        self.metrics.response_sent(error.status_code()).inc();
        actions.push(Action::Send {
            to,
            bytes: response,
        });
    }

    /// Answers without a transaction (for requests that will not get one).
    fn reply_stateless(
        &self,
        source: Source,
        request: &Message<'_>,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
        actions: &mut Vec<Action>,
    ) {
        let via = request.top_via().ok();
        let to = reply::reply_destination(&source, via.as_ref());
        let bytes = reply::local_response(
            request,
            source.addr,
            status,
            reason,
            extra,
            &self.to_tag,
            self.server_header.as_deref(),
        );
        self.metrics.response_sent(status).inc();
        actions.push(Action::Send { to, bytes });
    }

    pub(super) fn on_request(
        &self,
        now: Instant,
        wall: SystemTime,
        source: Source,
        raw: &Bytes,
        request: &Message<'_>,
        actions: &mut Vec<Action>,
    ) {
        let Some(method) = request.method() else {
            return;
        };
        self.metrics.request_received(&method).inc();
        if let Err(error) = request.check_request() {
            self.metrics
                .parse_errors
                .with_label_values(&[error.kind()])
                .inc();
            if method != Method::Ack {
                let (status, reason) = match error {
                    // RFC 4475 section 3.1.2.18: an unknown method with a mismatched CSeq is
                    // best answered 501 at a proxy.
                    ParseError::CSeqMethodMismatch if matches!(method, Method::Extension(_)) => {
                        (501, "Not Implemented".to_string())
                    }
                    _ => (error.status_code(), error.reason_phrase()),
                };
                self.reply_stateless(source, request, status, &reason, &[], actions);
            }
            return;
        }
        let Some(key) = dialtone_transaction::server_key(request) else {
            return;
        };
        let raw = raw.slice_ref(request.as_bytes());
        if method == Method::Ack {
            self.on_ack(now, wall, source, request, &key, actions);
            return;
        }
        let via = request.top_via().ok();
        let reply_to = reply::reply_destination(&source, via.as_ref());
        if let Some(entry) = self.servers.get(&key).map(|e| e.value().clone()) {
            let mut tx = entry.lock().unwrap_or_else(|p| p.into_inner());
            tx.on_retransmission(now, &self.transaction_env(), reply_to, actions);
            self.after(now, &key, &mut tx, actions);
            return;
        }
        if method == Method::Cancel {
            self.on_cancel(now, source, request, &key, raw, reply_to, actions);
            return;
        }
        let is_invite = method == Method::Invite;
        let mut tx = ProxyTransaction::new(
            now,
            &self.timers,
            raw,
            method.as_str(),
            reply_to,
            source.addr,
        );
        if is_invite {
            // RFC 3261 section 16.2: 100 Trying at once, so the caller stops retransmitting.
            tx.respond_to(
                request,
                now,
                &self.transaction_env(),
                100,
                "Trying",
                &[],
                actions,
            );
        }
        self.process(now, wall, source, request, &key, &mut tx, actions);
        if tx.answered_statelessly() {
            return;
        }
        let entry = Arc::new(Mutex::new(tx));
        if !self.insert_new(&key, &entry) {
            return;
        }
        self.metrics
            .transactions_active
            .set(self.servers.len() as i64);
        let mut tx = entry.lock().unwrap_or_else(|p| p.into_inner());
        self.after(now, &key, &mut tx, actions);
    }

    /// Enters a new server transaction in the table; false when a copy of the same request,
    /// handled at the same moment on another worker (UDP datagrams are spread over them),
    /// entered it first. That one is then the transaction, and what this copy sent is what a
    /// retransmission would have caused: the same branch id downstream, another 100 Trying.
    /// Overwriting it instead would orphan the first transaction's branches.
    pub(super) fn insert_new(
        &self,
        key: &TransactionKey,
        entry: &Arc<Mutex<ProxyTransaction>>,
    ) -> bool {
        match self.servers.entry(key.clone()) {
            dashmap::mapref::entry::Entry::Occupied(_) => false,
            dashmap::mapref::entry::Entry::Vacant(vacant) => {
                vacant.insert(entry.clone());
                true
            }
        }
    }

    /// Sections 16.3 to 16.6 for a new request with its server transaction.
    #[allow(clippy::too_many_arguments)]
    fn process(
        &self,
        now: Instant,
        wall: SystemTime,
        source: Source,
        request: &Message<'_>,
        key: &TransactionKey,
        tx: &mut ProxyTransaction,
        actions: &mut Vec<Action>,
    ) {
        let method = request.method().unwrap_or(Method::Options);
        let Some(uri) = request.request_uri().copied() else {
            return;
        };
        let sip = match uri {
            Uri::Sip(sip) => sip,
            Uri::Tel(_) => {
                return tx.respond_to(
                    request,
                    now,
                    &self.transaction_env(),
                    404,
                    "Not Found",
                    &[],
                    actions,
                );
            }
            Uri::Other { .. } => {
                return tx.respond_to(
                    request,
                    now,
                    &self.transaction_env(),
                    416,
                    "Unsupported URI Scheme",
                    &[],
                    actions,
                )
            }
        };
        if sip.headers.is_some() {
            // RFC 4475 section 3.1.2.11: headers have no place in a Request-URI.
            return tx.respond_to(
                request,
                now,
                &self.transaction_env(),
                400,
                "Bad Request-URI",
                &[],
                actions,
            );
        }
        let addressed_to_proxy = sip.user.is_none() && self.identity.is_local_domain(sip.host);
        if request.max_forwards().ok().flatten() == Some(0) {
            if method == Method::Options && addressed_to_proxy {
                return self.answer_options(request, now, tx, actions);
            }
            return tx.respond_to(
                request,
                now,
                &self.transaction_env(),
                483,
                "Too Many Hops",
                &[],
                actions,
            );
        }
        if identity::is_loop(&self.identity, request) {
            return tx.respond_to(
                request,
                now,
                &self.transaction_env(),
                482,
                "Loop Detected",
                &[],
                actions,
            );
        }
        let unsupported: Vec<&str> = request.tokens(HeaderName::ProxyRequire).collect();
        if !unsupported.is_empty() {
            let list = unsupported.join(", ");
            return tx.respond_to(
                request,
                now,
                &self.transaction_env(),
                420,
                "Bad Extension",
                &[("Unsupported", list)],
                actions,
            );
        }
        let plan = match route::plan(&self.identity, request) {
            Ok(plan) => plan,
            Err(reason) => {
                return tx.respond_to(
                    request,
                    now,
                    &self.transaction_env(),
                    400,
                    reason,
                    &[],
                    actions,
                )
            }
        };
        let target = self.target(request, &sip, &plan);
        if method == Method::Register && matches!(target, Target::Proxy | Target::LocalUser(_)) {
            return self.register(now, wall, source, request, tx, actions);
        }
        match target {
            Target::Proxy if method == Method::Options => {
                self.answer_options(request, now, tx, actions)
            }
            // Addressed to the proxy itself, which only answers OPTIONS and REGISTER
            // (RFC 3261 section 8.2.1: 405 with the methods it allows).
            Target::Proxy => tx.respond_to(
                request,
                now,
                &self.transaction_env(),
                405,
                "Method Not Allowed",
                &[("Allow", "OPTIONS, REGISTER".to_string())],
                actions,
            ),
            Target::LocalUser(ref user) => {
                if self.admit(now, wall, source, request, &plan, &target, tx, actions) {
                    self.fork_to_bindings(now, wall, source, request, &plan, user, tx, actions);
                }
            }
            Target::Elsewhere(ref next_hop) => {
                if self.admit(now, wall, source, request, &plan, &target, tx, actions) {
                    self.forward_single(now, source, request, key, &plan, next_hop, tx, actions);
                }
            }
        }
    }

    /// A next hop that is this proxy's own address: sending there would only bring the
    /// request back (and answer it 482 one hop later), so it is refused at once.
    pub(super) fn refuse_own_address(
        &self,
        request: &Message<'_>,
        now: Instant,
        tx: &mut ProxyTransaction,
        actions: &mut Vec<Action>,
    ) {
        tracing::debug!("a request whose next hop is this proxy itself was refused");
        tx.respond_to(
            request,
            now,
            &self.transaction_env(),
            482,
            "Loop Detected",
            &[self.next_hop_is_us_warning()],
            actions,
        );
    }

    /// The Warning of a 482 for a request whose next hop is this proxy.
    pub(super) fn next_hop_is_us_warning(&self) -> (&'static str, String) {
        (
            "Warning",
            self.identity.warning("the next hop is this proxy"),
        )
    }

    fn answer_options(
        &self,
        request: &Message<'_>,
        now: Instant,
        tx: &mut ProxyTransaction,
        actions: &mut Vec<Action>,
    ) {
        tx.respond_to(
            request,
            now,
            &self.transaction_env(),
            200,
            "OK",
            &[
                ("Allow", ALLOW.to_string()),
                ("Accept", "application/sdp".to_string()),
            ],
            actions,
        );
    }

    /// A REGISTER for a local domain (RFC 3261 section 10.3).
    fn register(
        &self,
        now: Instant,
        wall: SystemTime,
        source: Source,
        request: &Message<'_>,
        tx: &mut ProxyTransaction,
        actions: &mut Vec<Action>,
    ) {
        let Ok(to) = request.to() else {
            return tx.respond_to(
                request,
                now,
                &self.transaction_env(),
                400,
                "Bad To",
                &[],
                actions,
            );
        };
        let aor = match (&to.uri, to.uri.as_sip().and_then(|s| s.user_unescaped())) {
            (Uri::Sip(_), Some(user)) => user.into_owned(),
            _ => {
                return tx.respond_to(
                    request,
                    now,
                    &self.transaction_env(),
                    400,
                    "Bad To (not a SIP AOR)",
                    &[],
                    actions,
                )
            }
        };
        let mut replayed = false;
        if self.auth_mode != AuthMode::None {
            let raw_user = to.uri.user().unwrap_or("").to_string();
            match self.authenticate(
                now,
                wall,
                source.addr.ip(),
                request,
                &raw_user,
                self.register_challenge,
                true,
                tx,
                actions,
            ) {
                Some(authorized) => replayed = authorized == Authorized::Replayed,
                None => return,
            }
        }
        let origin = Origin {
            source: source.addr,
            transport: match source.transport {
                Transport::Udp => Transport::Udp,
                Transport::Tcp => Transport::Tcp,
            },
        };
        // The proxy keeps no transaction for REGISTER, so the retransmission of one sent with
        // qop comes back with a nonce count already used: it gets its 200 again, and only it.
        let outcome = if replayed {
            match self
                .location
                .register_repeat(request, &aor, wall, origin, &self.policy)
            {
                Some(outcome) => outcome,
                None => {
                    let code = self.register_challenge;
                    return self.challenge(request, now, wall, code, true, tx, actions);
                }
            }
        } else {
            self.location
                .register(request, &aor, wall, origin, &self.policy)
        };
        match outcome {
            RegisterOutcome::Ok {
                changes,
                created,
                response_contacts,
                ..
            } => {
                let upserts = changes
                    .iter()
                    .filter(|c| matches!(c, crate::registrar::BindingChange::Upsert(_)))
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
                        self.metrics.registration_event(event).inc_by(count as u64);
                    }
                }
                // The registrations gauge is read from the location service at scrape time
                // (http.rs): counting bindings here would walk the whole map per REGISTER.
                let mut extra: Vec<(&str, String)> = response_contacts
                    .into_iter()
                    .map(|c| ("Contact", c))
                    .collect();
                extra.push(("Date", httpdate_now(wall)));
                let first = actions.len();
                tx.respond_to(
                    request,
                    now,
                    &self.transaction_env(),
                    200,
                    "OK",
                    &extra,
                    actions,
                );
                if let Some(store) = self.location.store() {
                    // Also when nothing changed (a fetch, a retransmission): its 200 then
                    // waits for the batch that holds what an earlier REGISTER changed.
                    let held = HeldRequest {
                        request: tx.request().clone(),
                        source: tx.source(),
                    };
                    send_when_stored(&mut actions[first..], store, &held);
                }
            }
            RegisterOutcome::Reject {
                status,
                reason,
                min_expires,
            } => {
                self.metrics
                    .registration_event(RegistrationEvent::Rejected)
                    .inc();
                let extra: Vec<(&str, String)> = min_expires
                    .map(|m| vec![("Min-Expires", m.to_string())])
                    .unwrap_or_default();
                tx.respond_to(
                    request,
                    now,
                    &self.transaction_env(),
                    status,
                    reason,
                    &extra,
                    actions,
                );
            }
        }
    }

    /// Section 16.5 for a local user: every registered contact is a target (parallel forking).
    #[allow(clippy::too_many_arguments)]
    fn fork_to_bindings(
        &self,
        now: Instant,
        wall: SystemTime,
        source: Source,
        request: &Message<'_>,
        plan: &RoutePlan,
        user: &str,
        tx: &mut ProxyTransaction,
        actions: &mut Vec<Action>,
    ) {
        let bindings = self.location.lookup(user, wall);
        if bindings.is_empty() {
            if self.auth.is_known_user(user) {
                return tx.respond_to(
                    request,
                    now,
                    &self.transaction_env(),
                    480,
                    "Temporarily Unavailable",
                    &[],
                    actions,
                );
            }
            return tx.respond_to(
                request,
                now,
                &self.transaction_env(),
                404,
                "Not Found",
                &[],
                actions,
            );
        }
        let (targets, looped) = self.binding_targets(&bindings);
        if targets.is_empty() && looped {
            return self.refuse_own_address(request, now, tx, actions);
        }
        for (index, (contact, destination)) in targets.iter().enumerate() {
            let branch_id = branch_for(request, index);
            let (destination, bytes, udp_fallback) = self.forwarded(
                source,
                request,
                plan,
                Some(contact),
                *destination,
                &branch_id,
            );
            tx.add_branch(
                now,
                &self.transaction_env(),
                destination,
                &branch_id,
                bytes,
                actions,
            );
            if let Some(udp) = udp_fallback {
                tx.set_udp_fallback(&branch_id, udp);
            }
        }
        if tx.final_sent() {
            return;
        }
        if targets.is_empty() {
            tx.respond_to(
                request,
                now,
                &self.transaction_env(),
                480,
                "Temporarily Unavailable",
                &[],
                actions,
            );
        }
    }

    /// Where each of a user's bindings is reached, and the Request-URI it gets: over TCP, the
    /// connection its REGISTER came on; over UDP, its contact's address when it gives one,
    /// else the REGISTER's source. Contacts that do not parse, and any that lead back to this
    /// proxy (a contact naming our own address, or one of our domains with a user, would have
    /// it send requests to itself), are left out. A contact's escaped `?headers` (RFC 4475
    /// regescrt registers `?Route=...`) stay in the binding but never reach the Request-URI,
    /// where RFC 3261 section 19.1.1 (table 1) forbids them: honoured, a `Route` there would
    /// let anyone who can register send the proxy's requests wherever they like.
    /// The flag says whether any was left out for that reason.
    fn binding_targets<'b>(&self, bindings: &'b [Binding]) -> (Vec<(&'b str, Destination)>, bool) {
        let mut targets = Vec::with_capacity(bindings.len());
        let mut looped = false;
        for binding in bindings {
            let Ok(contact) = Uri::parse(&binding.contact) else {
                continue;
            };
            let destination = match binding.transport {
                Transport::Tcp => Destination {
                    transport: Transport::Tcp,
                    addr: binding.source,
                },
                Transport::Udp => match uri_target(&contact)
                    .and_then(|(host, port, t)| Some((host.parse::<IpAddr>().ok()?, port, t)))
                {
                    Some((ip, port, transport)) => Destination {
                        transport,
                        addr: SocketAddr::new(ip, port),
                    },
                    None => Destination {
                        transport: Transport::Udp,
                        addr: binding.source,
                    },
                },
            };
            let names_us = contact.as_sip().is_some_and(|sip| {
                sip.user.is_some() && sip.maddr().is_none() && self.identity.is_this_proxy(sip)
            });
            if names_us || self.identity.is_own_address(destination.addr) {
                tracing::debug!(contact = %binding.contact, "a binding leads back to this proxy; skipped");
                looped = true;
                continue;
            }
            let request_uri = match contact.as_sip().and_then(|sip| sip.headers) {
                Some(headers) => &binding.contact[..binding.contact.len() - headers.len() - 1],
                None => binding.contact.as_str(),
            };
            targets.push((request_uri, destination));
        }
        (targets, looped)
    }

    /// Forwards to one URI: a Route's next hop, or the Request-URI.
    #[allow(clippy::too_many_arguments)]
    fn forward_single(
        &self,
        now: Instant,
        source: Source,
        request: &Message<'_>,
        key: &TransactionKey,
        plan: &RoutePlan,
        next_hop: &str,
        tx: &mut ProxyTransaction,
        actions: &mut Vec<Action>,
    ) {
        let Ok(uri) = Uri::parse(next_hop) else {
            return tx.respond_to(
                request,
                now,
                &self.transaction_env(),
                400,
                "Bad Route",
                &[],
                actions,
            );
        };
        let Some((host, port, transport)) = uri_target(&uri) else {
            return tx.respond_to(
                request,
                now,
                &self.transaction_env(),
                416,
                "Unsupported URI Scheme",
                &[],
                actions,
            );
        };
        let branch_id = branch_for(request, 0);
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                let destination = Destination {
                    transport,
                    addr: SocketAddr::new(ip, port),
                };
                if self.identity.is_own_address(destination.addr) {
                    return self.refuse_own_address(request, now, tx, actions);
                }
                let (destination, bytes, udp_fallback) = self.forwarded(
                    source,
                    request,
                    plan,
                    plan.new_request_uri.as_deref(),
                    destination,
                    &branch_id,
                );
                tx.add_branch(
                    now,
                    &self.transaction_env(),
                    destination,
                    &branch_id,
                    bytes,
                    actions,
                );
                if let Some(udp) = udp_fallback {
                    tx.set_udp_fallback(&branch_id, udp);
                }
            }
            Err(_) => {
                let placeholder = Destination {
                    transport,
                    addr: SocketAddr::from(([0, 0, 0, 0], port)),
                };
                let (_, bytes, _) = self.forwarded(
                    source,
                    request,
                    plan,
                    plan.new_request_uri.as_deref(),
                    placeholder,
                    &branch_id,
                );
                tx.set_pending(PendingBranch {
                    branch_id,
                    request: bytes,
                });
                // RFC 3263 section 4 looks at what the URI gave, not at the defaults.
                let sip = uri.as_sip();
                actions.push(Action::Resolve {
                    key: key.clone(),
                    host,
                    port: sip.and_then(|s| s.port),
                    transport: sip.and_then(|s| s.transport()).map(|_| transport),
                });
            }
        }
    }

    /// The received request edited for forwarding (RFC 3261 section 16.6), and the transport
    /// it must go over (TCP when too big for UDP, section 18.1.1). When it goes over TCP only
    /// for its size, the UDP edition comes too, for the retry over UDP that section asks for
    /// when the connection is refused.
    fn forwarded(
        &self,
        source: Source,
        request: &Message<'_>,
        plan: &RoutePlan,
        new_request_uri: Option<&str>,
        destination: Destination,
        branch_id: &str,
    ) -> (Destination, Bytes, Option<Bytes>) {
        let bytes = self.edit_for_forwarding(
            source,
            request,
            plan,
            new_request_uri,
            destination,
            branch_id,
        );
        if destination.transport == Transport::Udp && bytes.len() > UDP_SIZE_LIMIT {
            let tcp = Destination {
                transport: Transport::Tcp,
                addr: destination.addr,
            };
            let tcp_bytes =
                self.edit_for_forwarding(source, request, plan, new_request_uri, tcp, branch_id);
            return (tcp, tcp_bytes, Some(bytes));
        }
        (destination, bytes, None)
    }

    fn edit_for_forwarding(
        &self,
        source: Source,
        request: &Message<'_>,
        plan: &RoutePlan,
        new_request_uri: Option<&str>,
        destination: Destination,
        branch_id: &str,
    ) -> Bytes {
        let transport = destination.transport;
        let outbound = self.identity.listen_toward(transport, destination.addr);
        let mut edit = request.edit();
        if let Some(uri) = new_request_uri {
            edit.set_request_uri(uri);
        }
        // RFC 3261 section 18.2.1 / RFC 3581: note where the request really came from.
        if let Some((index, header)) = request
            .headers()
            .iter()
            .enumerate()
            .find(|(_, h)| h.name == HeaderName::Via)
        {
            let mut values = dialtone_sip::lex::split_commas(header.value);
            if let Some(first) = values.next() {
                if let Ok(via) = Via::parse(first) {
                    if let Some(updated) = reply::via_with_received(first, &via, source.addr) {
                        let rest: Vec<&str> = values.collect();
                        let value = if rest.is_empty() {
                            updated
                        } else {
                            format!("{updated}, {}", rest.join(", "))
                        };
                        edit.set_header_value(index, &value);
                    }
                }
            }
        }
        edit.insert_header_first(
            "Via",
            &self.identity.via_from(transport, outbound, branch_id),
        );
        let method = request.method().unwrap_or(Method::Options);
        let in_dialog = route::has_to_tag(request);
        if !in_dialog && matches!(method, Method::Invite | Method::Subscribe | Method::Refer) {
            self.record_route(&mut edit, source, outbound, transport);
        }
        if plan.own_routes > 0 {
            edit.remove_first_values(HeaderName::Route, plan.own_routes);
        }
        if plan.remove_last_route {
            remove_last_route(request, &mut edit);
        }
        edit.decrement_max_forwards();
        if transport == Transport::Tcp {
            edit.ensure_content_length();
        }
        Bytes::from(edit.finish())
    }

    /// Section 16.6 step 4: our Record-Route. A request that arrived on one of our addresses
    /// and leaves from another (two networks) gets one per side, the one facing the callee on
    /// top (RFC 5658 section 4): the callee's later requests then reach us on its network, and
    /// the caller's, which use the route set in reverse, on the caller's.
    fn record_route(
        &self,
        edit: &mut dialtone_sip::Editor<'_, '_>,
        source: Source,
        outbound: SocketAddr,
        transport: Transport,
    ) {
        let inbound = self.identity.listen_at(source.transport, source.local);
        let inbound_host = self.identity.host_of(inbound);
        if inbound_host != self.identity.host_of(outbound) {
            // Lines inserted at the top come out in the order they are inserted.
            edit.insert_header_first(
                "Record-Route",
                &self.identity.record_route_of(transport, outbound),
            );
            edit.insert_header_first(
                "Record-Route",
                &self.identity.record_route_of(source.transport, inbound),
            );
        } else {
            edit.insert_header_first(
                "Record-Route",
                &self.identity.record_route_of(source.transport, inbound),
            );
        }
    }

    /// ACK: absorbed when it acknowledges our own non-2xx final; otherwise (the ACK of a 2xx,
    /// an end-to-end request) forwarded statelessly along its route (RFC 3261 section 16.11).
    fn on_ack(
        &self,
        now: Instant,
        wall: SystemTime,
        source: Source,
        request: &Message<'_>,
        key: &TransactionKey,
        actions: &mut Vec<Action>,
    ) {
        if let Some(entry) = self.servers.get(key).map(|e| e.value().clone()) {
            let mut tx = entry.lock().unwrap_or_else(|p| p.into_inner());
            let absorbed = tx.on_ack(now, &self.transaction_env(), actions);
            self.after(now, key, &mut tx, actions);
            if absorbed {
                return;
            }
        }
        self.forward_stateless(wall, source, request, actions);
    }

    fn forward_stateless(
        &self,
        wall: SystemTime,
        source: Source,
        request: &Message<'_>,
        actions: &mut Vec<Action>,
    ) {
        if request.max_forwards().ok().flatten() == Some(0) {
            return;
        }
        let Ok(plan) = route::plan(&self.identity, request) else {
            return;
        };
        let Some(uri) = request.request_uri().and_then(|u| u.as_sip()).copied() else {
            return;
        };
        let target = self.target(request, &uri, &plan);
        if !self.admits_ack(request, &plan, &target) {
            tracing::debug!(?target, "an ACK that may not pass the proxy was dropped");
            return;
        }
        let next_hops = match target {
            Target::Proxy => return,
            Target::LocalUser(user) => {
                let bindings = self.location.lookup(&user, wall);
                let (targets, _) = self.binding_targets(&bindings);
                targets
                    .into_iter()
                    .map(|(uri, destination)| (uri.to_string(), destination))
                    .collect()
            }
            Target::Elsewhere(next_hop) => {
                let Ok(next) = Uri::parse(&next_hop) else {
                    return;
                };
                let Some((host, port, transport)) = uri_target(&next) else {
                    return;
                };
                let Ok(ip) = host.parse::<IpAddr>() else {
                    tracing::debug!(%host, "stateless forward to a name is not supported; dropped");
                    return;
                };
                let addr = SocketAddr::new(ip, port);
                if self.identity.is_own_address(addr) {
                    return;
                }
                let new_uri = plan.new_request_uri.clone().unwrap_or_default();
                vec![(new_uri, Destination { transport, addr })]
            }
        };
        let branch_id = branch_for(request, 0);
        for (new_uri, destination) in next_hops {
            let new_uri = (!new_uri.is_empty()).then_some(new_uri.as_str());
            let (to, bytes, _) =
                self.forwarded(source, request, &plan, new_uri, destination, &branch_id);
            actions.push(Action::Send { to, bytes });
        }
    }

    /// CANCEL (RFC 3261 section 16.10): 200 to the CANCEL at once, then CANCEL every pending
    /// branch; the 487s come back through the branches.
    #[allow(clippy::too_many_arguments)]
    fn on_cancel(
        &self,
        now: Instant,
        source: Source,
        request: &Message<'_>,
        key: &TransactionKey,
        raw: Bytes,
        reply_to: Destination,
        actions: &mut Vec<Action>,
    ) {
        let invite = key
            .cancelled_invite()
            .and_then(|k| self.servers.get(&k).map(|e| (k, e.value().clone())));
        let Some((invite_key, invite_entry)) = invite else {
            return self.reply_stateless(
                source,
                request,
                481,
                "Call/Transaction Does Not Exist",
                &[],
                actions,
            );
        };
        let mut cancel_tx =
            ProxyTransaction::new(now, &self.timers, raw, "CANCEL", reply_to, source.addr);
        cancel_tx.respond_to(
            request,
            now,
            &self.transaction_env(),
            200,
            "OK",
            &[],
            actions,
        );
        let entry = Arc::new(Mutex::new(cancel_tx));
        if !self.insert_new(key, &entry) {
            return;
        }
        {
            let mut cancel_tx = entry.lock().unwrap_or_else(|p| p.into_inner());
            self.after(now, key, &mut cancel_tx, actions);
        }
        let mut invite_tx = invite_entry.lock().unwrap_or_else(|p| p.into_inner());
        if !invite_tx.final_sent() {
            invite_tx.cancel(now, &self.transaction_env(), actions);
        }
        self.after(now, &invite_key, &mut invite_tx, actions);
    }
}

/// Removes the last Route value (strict routing, RFC 3261 section 16.4).
fn remove_last_route(request: &Message<'_>, edit: &mut dialtone_sip::Editor<'_, '_>) {
    let Some((index, header)) = request
        .headers()
        .iter()
        .enumerate()
        .rev()
        .find(|(_, h)| h.name == HeaderName::Route)
    else {
        return;
    };
    let values: Vec<&str> = dialtone_sip::lex::split_commas(header.value).collect();
    if values.len() <= 1 {
        edit.remove_header(index);
    } else {
        edit.set_header_value(index, &values[..values.len() - 1].join(", "));
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

/// Seconds a REGISTER whose changes could not be saved is asked to wait before trying again:
/// the writer retries the commit every second meanwhile.
const STORE_RETRY_AFTER: u32 = 5;

impl ProxyCore {
    /// The answer to a REGISTER whose changes the store could not save, in place of its held
    /// 200 (RFC 3261 section 10.3 step 7): a 500 asking the client to come back. Built only
    /// when a commit fails, from the request kept with the held response, so that a REGISTER
    /// whose commit succeeds (all but a few) does not pay for it.
    pub fn not_stored_response(&self, held: &HeldRequest) -> Option<Bytes> {
        let request = Message::parse(&held.request).ok()?;
        Some(reply::local_response(
            &request,
            held.source,
            500,
            "Server Internal Error",
            &[("Retry-After", STORE_RETRY_AFTER.to_string())],
            &self.to_tag,
            self.server_header.as_deref(),
        ))
    }
}

/// Turns the sends among `actions` into sends that wait for `store`'s next commit, and are
/// answered otherwise if it fails (see [`ProxyCore::not_stored_response`]).
fn send_when_stored(actions: &mut [Action], store: &StoreWriter, held: &HeldRequest) {
    for action in actions {
        if let Action::Send { to, bytes } = action {
            *action = Action::SendWhenStored {
                to: *to,
                bytes: std::mem::take(bytes),
                request: held.clone(),
                store: store.clone(),
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
