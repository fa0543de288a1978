//! A call's media: the pure RTP/RTCP session in [`session`] (encode, packetise, receive,
//! jitter buffer, statistics, RFC 4733 DTMF) and the actix shell in [`actor`] that owns the
//! RTP and RTCP sockets and the 20 ms clock.
pub mod actor;
pub mod session;
