//! One call's offer/answer (RFC 3264), sans-IO: the SDP versions the call has sent and the
//! answer it has prepared, with `dialtone-sdp` doing the negotiation itself.
//!
//! The call actor (`call::actor`) owns one [`Negotiator`]. It asks it for the INVITE's offer
//! ([`Negotiator::offer`]) or prepares the answer to an incoming offer
//! ([`Negotiator::prepare_answer`], sent when the subscriber answers,
//! [`Negotiator::accept`]); it hands it the peer's answers (183, 2xx, the 2xx to our
//! re-INVITE: [`Negotiator::process_answer`]) and re-offers ([`Negotiator::answer_reoffer`]);
//! and on hook flash it asks for the hold or resume offer ([`Negotiator::hold_or_resume`]).
//! What comes back is SDP bytes for the dialog and [`NegotiatedAudio`] for the media actor.
//!
//! Every description we send after the first is a new version of the last one we sent (RFC
//! 3264 section 8), so the negotiator keeps that last one.

use std::net::IpAddr;

use dialtone_sdp::{
    build_offer, hold_offer, negotiate_answer, parse_bytes, process_answer, resume_offer, Codec,
    LocalSession, NegotiatedAudio, SessionDescription,
};

use crate::error::{AtaError, Unusable};

/// The `s=` line of our descriptions.
const SESSION_NAME: &str = "Dialtone ATA Call";

/// One call's SDP state. See the module docs.
#[derive(Debug)]
pub struct Negotiator {
    codecs: Vec<Codec>,
    user: String,
    address: IpAddr,
    port: u16,
    /// The last description we sent (or are about to send): offer, answer or re-offer.
    local: Option<SessionDescription>,
    /// UAS: the answer to the INVITE's offer, until the subscriber answers.
    prepared: Option<(SessionDescription, NegotiatedAudio)>,
    held: bool,
}

impl Negotiator {
    /// A negotiator offering `codecs` (in order) for `user`, receiving RTP on `address`.
    pub fn new(codecs: Vec<Codec>, user: String, address: IpAddr) -> Self {
        Negotiator {
            codecs,
            user,
            address,
            port: 0,
            local: None,
            prepared: None,
            held: false,
        }
    }

    /// The RTP port our descriptions announce, once the media actor has bound its pair.
    pub fn set_port(&mut self, port: u16) {
        self.port = port;
    }

    /// UAC: the INVITE's offer, session `session_id`.
    pub fn offer(&mut self, session_id: u64) -> Result<Vec<u8>, AtaError> {
        let offer = build_offer(&self.codecs, &self.local_session(session_id))?;
        let bytes = offer.to_string().into_bytes();
        self.local = Some(offer);
        Ok(bytes)
    }

    /// UAS: the offer in an INVITE's body. Read before the media is opened, so that a call
    /// we must refuse binds no ports; the ATA 186 and every peer of the lab offer in the
    /// INVITE, so an empty body is refused rather than answered with an offer.
    pub fn read_offer(body: &[u8]) -> Result<SessionDescription, AtaError> {
        if body.is_empty() {
            return Err(AtaError::Unusable(Unusable::InviteWithoutOffer));
        }
        Ok(parse_bytes(body)?)
    }

    /// UAS: answers the INVITE's `offer` (session `session_id`); the answer waits for
    /// [`Negotiator::accept`].
    pub fn prepare_answer(
        &mut self,
        offer: &SessionDescription,
        session_id: u64,
    ) -> Result<(), AtaError> {
        let answer = negotiate_answer(offer, &self.codecs, &self.local_session(session_id))?;
        self.prepared = Some((answer.description, answer.audio));
        Ok(())
    }

    /// UAS: the subscriber answered. The prepared answer, for the 200, and the audio it
    /// agreed; `None` when there is none (or it was already sent).
    pub fn accept(&mut self) -> Option<(Vec<u8>, NegotiatedAudio)> {
        let (description, audio) = self.prepared.take()?;
        let bytes = description.to_string().into_bytes();
        self.local = Some(description);
        Some((bytes, audio))
    }

    /// UAC: the peer's answer to our last offer (in a 183, a 2xx, or the 2xx to our
    /// re-INVITE).
    pub fn process_answer(&self, sdp: Option<&[u8]>) -> Result<NegotiatedAudio, AtaError> {
        match (&self.local, sdp.map(parse_bytes)) {
            (Some(offer), Some(Ok(answer))) => {
                process_answer(offer, &answer).map_err(AtaError::from)
            }
            (_, Some(Err(e))) => Err(e.into()),
            _ => Err(AtaError::Unusable(Unusable::AnswerWithoutSdp)),
        }
    }

    /// The peer's re-offer (a re-INVITE: hold, resume, a new address): our answer, with
    /// our session id and the version after our last description's.
    pub fn answer_reoffer(
        &mut self,
        sdp: Option<&[u8]>,
    ) -> Result<(Vec<u8>, NegotiatedAudio), AtaError> {
        let body = sdp.ok_or(AtaError::Unusable(Unusable::ReinviteWithoutOffer))?;
        let offer = parse_bytes(body)?;
        let session_id = self
            .local
            .as_ref()
            .and_then(|s| s.origin.session_id.parse().ok())
            .unwrap_or(1);
        let mut local = self.local_session(session_id);
        local.session_version = self
            .local
            .as_ref()
            .map(|s| s.origin.session_version + 1)
            .unwrap_or(session_id);
        let answer = negotiate_answer(&offer, &self.codecs, &local)?;
        let bytes = answer.description.to_string().into_bytes();
        self.local = Some(answer.description);
        Ok((bytes, answer.audio))
    }

    /// The re-offer that puts the call on hold (RFC 3264 section 8.4, `a=sendonly`); `None`
    /// when it is held already or before we have sent any description.
    pub fn hold(&mut self) -> Option<Vec<u8>> {
        if self.held {
            return None;
        }
        self.hold_or_resume()
    }

    /// The re-offer that takes the call off hold; `None` when it is not held.
    pub fn resume(&mut self) -> Option<Vec<u8>> {
        if !self.held {
            return None;
        }
        self.hold_or_resume()
    }

    /// Hook flash: the re-offer that puts the call on hold, or the one that resumes it
    /// (RFC 3264 section 8.4), alternately; `None` before we have sent any description.
    pub fn hold_or_resume(&mut self) -> Option<Vec<u8>> {
        let previous = self.local.as_ref()?;
        let next = if self.held {
            resume_offer(previous)
        } else {
            hold_offer(previous)
        };
        let next = next.ok()?;
        self.held = !self.held;
        let bytes = next.to_string().into_bytes();
        self.local = Some(next);
        Some(bytes)
    }

    fn local_session(&self, id: u64) -> LocalSession {
        let mut local = LocalSession::new(self.user.clone(), id, self.address, self.port);
        local.session_name = SESSION_NAME.into();
        local
    }
}

#[cfg(test)]
#[path = "negotiator_tests.rs"]
mod tests;
