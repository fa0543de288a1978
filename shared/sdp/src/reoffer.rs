//! Re-offers within a call (RFC 3264 section 8): the `o=` version increment every changed
//! description needs, hold and resume, and recognising that the peer has put us on hold.
//!
//! A re-offer starts from the description we last sent (offer or answer), so the codecs and
//! port stay what the peer already agreed to; `offer_answer.rs` then reads the peer's answer.

use crate::attribute::Direction;
use crate::error::NegotiationError;
use crate::session::SessionDescription;

/// Adds one to the `o=` session version, as every changed description must (RFC 3264 section 8).
pub fn increment_version(description: &mut SessionDescription) -> Result<(), NegotiationError> {
    description.origin.session_version = description
        .origin
        .session_version
        .checked_add(1)
        .ok_or(NegotiationError::VersionOverflow)?;
    Ok(())
}

/// A new version of `previous` whose active audio streams have `direction`, written explicitly
/// at media level so it overrides any session-level direction.
pub fn reoffer(
    previous: &SessionDescription,
    direction: Direction,
) -> Result<SessionDescription, NegotiationError> {
    let mut next = previous.clone();
    increment_version(&mut next)?;
    let mut any_audio = false;
    for media in next
        .media
        .iter_mut()
        .filter(|m| m.is_audio() && m.port != 0)
    {
        media.set_direction(direction);
        any_audio = true;
    }
    if !any_audio {
        return Err(NegotiationError::NoAudio);
    }
    Ok(next)
}

/// A hold re-offer: we stop receiving, so `sendrecv` becomes `sendonly` and `recvonly` becomes
/// `inactive` (RFC 3264 section 8.4). For an `a=inactive` hold use [`reoffer`] directly.
pub fn hold_offer(previous: &SessionDescription) -> Result<SessionDescription, NegotiationError> {
    let (_, audio) = previous
        .first_active_audio()
        .ok_or(NegotiationError::NoAudio)?;
    let current = previous.media_direction(audio);
    reoffer(previous, Direction::from_flags(current.sends(), false))
}

/// A resume re-offer: back to `sendrecv`, whichever kind of hold was used.
pub fn resume_offer(previous: &SessionDescription) -> Result<SessionDescription, NegotiationError> {
    reoffer(previous, Direction::SendRecv)
}

/// Whether `description`'s author is holding the call: its first active audio stream does not
/// receive, by `a=sendonly`, `a=inactive`, or the RFC 2543 `c=0.0.0.0` older peers still send.
pub fn is_hold(description: &SessionDescription) -> bool {
    description
        .first_active_audio()
        .is_some_and(|(_, audio)| !description.stream_direction(audio).receives())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;
    use crate::test_data::seed_offer;

    fn seed() -> SessionDescription {
        parse(seed_offer()).unwrap()
    }

    #[test]
    fn hold_offer_is_sendonly_with_the_next_version() {
        let held = hold_offer(&seed()).unwrap();
        assert_eq!(held.origin.session_version, 206155);
        assert_eq!(held.media[0].direction(), Some(Direction::SendOnly));
        assert!(is_hold(&held));
        assert!(held.to_string().contains("a=sendonly\r\n"));
    }

    #[test]
    fn holding_a_recvonly_stream_makes_it_inactive() {
        let recvonly = reoffer(&seed(), Direction::RecvOnly).unwrap();
        let held = hold_offer(&recvonly).unwrap();
        assert_eq!(held.media[0].direction(), Some(Direction::Inactive));
        assert_eq!(held.origin.session_version, 206156);
    }

    #[test]
    fn resume_offer_returns_to_sendrecv() {
        let held = reoffer(&seed(), Direction::Inactive).unwrap();
        assert!(is_hold(&held));
        let resumed = resume_offer(&held).unwrap();
        assert_eq!(resumed.media[0].direction(), Some(Direction::SendRecv));
        assert!(!is_hold(&resumed));
        assert_eq!(resumed.origin.session_version, 206156);
    }

    #[test]
    fn zero_connection_address_is_recognised_as_hold() {
        let old_style = seed_offer().replace("c=IN IP4 192.168.3.175", "c=IN IP4 0.0.0.0");
        assert!(is_hold(&parse(&old_style).unwrap()));
        assert!(!is_hold(&seed()));
    }

    #[test]
    fn session_level_sendonly_is_a_hold() {
        let text = seed_offer().replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
        assert!(is_hold(&parse(&text).unwrap()));
    }

    #[test]
    fn version_overflow_is_an_error_not_a_wrap() {
        let mut sdp = seed();
        sdp.origin.session_version = u64::MAX;
        assert_eq!(
            increment_version(&mut sdp),
            Err(NegotiationError::VersionOverflow)
        );
    }

    #[test]
    fn reoffer_without_audio_is_refused() {
        let mut sdp = seed();
        sdp.media[0].port = 0;
        assert_eq!(
            reoffer(&sdp, Direction::SendOnly),
            Err(NegotiationError::NoAudio)
        );
    }
}
