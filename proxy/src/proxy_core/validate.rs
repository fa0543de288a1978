//! Request validation (RFC 3261 section 16.3), and the answer to what cannot be validated at
//! all: a message the parser refused still gets a 400 naming the fault when it looks like a
//! request (RFC 4475).

use dialtone_sip::{HeaderName, Method, ParseError, SipUri, Uri, Via};

use super::new_request::NewRequest;
use super::{ack_cancel_options, identity, reply, Action, ProxyCore, Source};

/// Section 16.3 for a new request: the Request-URI's scheme (step 2), Max-Forwards (step 3),
/// loops (step 4) and Proxy-Require (step 5). Returns the SIP Request-URI when the request may
/// go on; otherwise it has been answered.
pub(super) fn validate<'m>(new: &mut NewRequest<'_, 'm>) -> Option<SipUri<'m>> {
    let request = new.request;
    let sip = match request.request_uri().copied()? {
        Uri::Sip(sip) => sip,
        Uri::Tel(_) => {
            new.respond(404, "Not Found", &[]);
            return None;
        }
        Uri::Other { .. } => {
            new.respond(416, "Unsupported URI Scheme", &[]);
            return None;
        }
    };
    if sip.headers.is_some() {
        // RFC 4475 section 3.1.2.11: headers have no place in a Request-URI.
        new.respond(400, "Bad Request-URI", &[]);
        return None;
    }
    if request.max_forwards().ok().flatten() == Some(0) {
        let addressed_to_proxy = sip.user.is_none() && new.core.identity.is_local_domain(sip.host);
        if request.method() == Some(Method::Options) && addressed_to_proxy {
            ack_cancel_options::answer_options(new);
        } else {
            new.respond(483, "Too Many Hops", &[]);
        }
        return None;
    }
    if identity::is_loop(&new.core.identity, request) {
        new.respond(482, "Loop Detected", &[]);
        return None;
    }
    let unsupported: Vec<&str> = request.tokens(HeaderName::ProxyRequire).collect();
    if !unsupported.is_empty() {
        let list = unsupported.join(", ");
        new.respond(420, "Bad Extension", &[("Unsupported", list)]);
        return None;
    }
    Some(sip)
}

/// A message that could not be parsed: answer it when it looks like a request.
pub(super) fn on_unparseable(
    core: &ProxyCore,
    source: Source,
    bytes: &[u8],
    error: &ParseError,
    actions: &mut Vec<Action>,
) {
    core.metrics
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
    core.metrics.response_sent(error.status_code()).inc();
    actions.push(Action::Send {
        to,
        bytes: response,
    });
}
