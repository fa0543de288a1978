//! The media actor of one call: owns the RTP and RTCP sockets (an even/odd port pair from the
//! configured range, RFC 3550 section 11), runs the 20 ms clock and the RTCP interval, and
//! moves audio between the [`MediaSession`] and the line actor: microphone frames in
//! ([`MicrophoneFrame`]), earpiece frames and received DTMF keys out ([`EarpieceFrame`],
//! [`RemoteDigit`], defined here and sent to the recipients of its [`MediaListener`], so this
//! module never names the line). It updates the RTP metrics of its line once a second.
//!
//! It reads its sockets itself: each socket is a stream of readiness ([`Readiness`]) in the
//! actor's context, and the handler reads what is waiting into one buffer and hands it to the
//! session. A reader task per socket that sent each datagram as a message cost a task wake-up,
//! a copy into a new buffer and a message per packet (about a tenth of a core at 1000 calls,
//! measured with perf).

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use dialtone_media::rtcp::ntp_timestamp;
use dialtone_media::FRAME_DURATION;
use tokio::net::UdpSocket;
use tracing::debug;

use crate::error::AtaError;
use crate::media::session::{MediaCounters, MediaSession, SessionParams};
use crate::metrics::Metrics;

/// RFC 3550 6.2 suggests 5 s as the minimum RTCP interval.
const RTCP_INTERVAL: Duration = Duration::from_secs(5);

/// Binds a free RTP/RTCP pair in `from..=to` on `ip`: the first free one from a random even
/// port, wrapping around. Starting from `from` every time made each new call try every pair
/// in use before it (a thousand failed binds per call at 1000 calls, which stalled the ATA's
/// thread for tens of milliseconds as calls came and went); from a random place, a range
/// mostly free takes one or two tries.
pub fn bind_port_pair(
    ip: std::net::IpAddr,
    from: u16,
    to: u16,
) -> Result<(StdUdpSocket, StdUdpSocket), AtaError> {
    use rand::Rng;
    let first_even = from + from % 2;
    // Pairs whose odd port is still in range.
    let pairs = if to > first_even {
        usize::from((to - first_even - 1) / 2 + 1)
    } else {
        0
    };
    let start = if pairs > 0 {
        rand::thread_rng().gen_range(0..pairs)
    } else {
        0
    };
    for n in 0..pairs {
        let port = first_even + 2 * ((start + n) % pairs) as u16;
        if let Ok(rtp) = StdUdpSocket::bind(SocketAddr::new(ip, port)) {
            if let Ok(rtcp) = StdUdpSocket::bind(SocketAddr::new(ip, port + 1)) {
                rtp.set_nonblocking(true)?;
                rtcp.set_nonblocking(true)?;
                return Ok((rtp, rtcp));
            }
        }
    }
    Err(AtaError::NoRtpPort { from, to })
}

/// Start sending and receiving.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartMedia(pub SessionParams);

/// A re-INVITE changed where or whether we send.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateMedia {
    /// The new destination, if it changed.
    pub remote: Option<SocketAddr>,
    /// Whether we send.
    pub send: bool,
}

/// A 20 ms frame from the handset microphone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MicrophoneFrame(pub Vec<i16>);

/// Send this key as RFC 4733 DTMF.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendDigit(pub char);

/// Send a hook flash as RFC 4733 event 16.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendFlashEvent;

/// 20 ms of received audio, for the earpiece.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EarpieceFrame {
    /// The call it belongs to.
    pub call: u64,
    /// The samples.
    pub samples: Vec<i16>,
}

/// A DTMF key received in the call (RFC 4733).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoteDigit {
    /// The call.
    pub call: u64,
    /// The key.
    pub key: char,
}

/// Who hears what a media actor receives: the line's earpiece and its received keys.
#[derive(Clone)]
pub struct MediaListener {
    /// Where received audio goes.
    pub earpiece: Recipient<EarpieceFrame>,
    /// Where received DTMF keys go.
    pub digits: Recipient<RemoteDigit>,
}

/// The call is over; answers the session's final counters (zero when it never started).
#[derive(Message)]
#[rtype(result = "MediaCounters")]
pub struct StopMedia;

/// Datagrams can be read from the RTP (`false`) or RTCP (`true`) socket.
struct ReadyToRead(bool);

/// A socket's readiness to be read, as a stream for the actor's context: an item whenever the
/// socket has datagrams (tokio's readiness stays set until a read finds none).
struct Readiness {
    socket: Arc<UdpSocket>,
    control: bool,
}

impl Stream for Readiness {
    type Item = ReadyToRead;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        // An error is reported by the read that follows.
        self.socket
            .poll_recv_ready(cx)
            .map(|_| Some(ReadyToRead(self.control)))
    }
}

/// Datagrams read at most per wake-up, so one flooded socket cannot hold the thread.
const READS_PER_WAKE: usize = 32;

/// The actor.
pub struct MediaActor {
    call: u64,
    line_name: String,
    line: MediaListener,
    metrics: Metrics,
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    session: Option<MediaSession>,
    buffer: Box<[u8]>,
    reported: MediaCounters,
    ticks: u32,
}

impl MediaActor {
    /// A media actor on a bound pair; it sends nothing until [`StartMedia`].
    pub fn new(
        call: u64,
        line_name: String,
        line: MediaListener,
        metrics: Metrics,
        sockets: (StdUdpSocket, StdUdpSocket),
    ) -> Result<Self, AtaError> {
        Ok(MediaActor {
            call,
            line_name,
            line,
            metrics,
            rtp: Arc::new(UdpSocket::from_std(sockets.0)?),
            rtcp: Arc::new(UdpSocket::from_std(sockets.1)?),
            session: None,
            buffer: vec![0u8; 2048].into_boxed_slice(),
            reported: MediaCounters::default(),
            ticks: 0,
        })
    }

    /// Our RTP port, for the SDP.
    pub fn local_port(socket: &StdUdpSocket) -> u16 {
        socket.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    fn tick(&mut self) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let tick = session.tick(Instant::now());
        if let Some(destination) = tick.destination {
            for packet in &tick.packets {
                crate::datagram::send(&self.rtp, packet, destination);
            }
        }
        self.line.earpiece.do_send(EarpieceFrame {
            call: self.call,
            samples: tick.playout.samples,
        });
        self.ticks += 1;
        if self.ticks % 50 == 0 {
            self.report_metrics();
        }
    }

    fn report_metrics(&mut self) {
        let Some(session) = self.session.as_ref() else {
            return;
        };
        let now = session.counters();
        let line = [self.line_name.as_str()];
        let delta = |a: u64, b: u64| a.saturating_sub(b);
        self.metrics
            .rtp_packets_sent
            .with_label_values(&line)
            .inc_by(delta(now.packets_sent, self.reported.packets_sent));
        self.metrics
            .rtp_bytes_sent
            .with_label_values(&line)
            .inc_by(delta(now.bytes_sent, self.reported.bytes_sent));
        self.metrics
            .rtp_packets_received
            .with_label_values(&line)
            .inc_by(delta(now.packets_received, self.reported.packets_received));
        self.metrics
            .rtp_bytes_received
            .with_label_values(&line)
            .inc_by(delta(now.bytes_received, self.reported.bytes_received));
        let lost_now = now.lost.max(0) as u64;
        let lost_before = self.reported.lost.max(0) as u64;
        self.metrics
            .rtp_packets_lost
            .with_label_values(&line)
            .inc_by(delta(lost_now, lost_before));
        self.metrics
            .rtp_jitter
            .with_label_values(&line)
            .set(now.jitter.as_secs_f64());
        self.metrics.mos.with_label_values(&line).set(now.mos);
        self.reported = now;
    }

    /// Reads what waits on one socket and hands it to the session.
    fn read(&mut self, control: bool) {
        let socket = if control { &self.rtcp } else { &self.rtp };
        for _ in 0..READS_PER_WAKE {
            let (len, source) = match socket.try_recv_from(&mut self.buffer) {
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!(error = %e, "RTP receive error");
                    return;
                }
            };
            let Some(session) = self.session.as_mut() else {
                continue;
            };
            let now = Instant::now();
            let datagram = &self.buffer[..len];
            if control {
                session.on_rtcp(now, wall_ntp(), datagram);
            } else if let Some(key) = session.on_rtp(now, datagram, source) {
                self.line.digits.do_send(RemoteDigit {
                    call: self.call,
                    key,
                });
            }
        }
    }
}

fn wall_ntp() -> u64 {
    ntp_timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

impl Actor for MediaActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for (socket, control) in [(self.rtp.clone(), false), (self.rtcp.clone(), true)] {
            ctx.add_stream(Readiness { socket, control });
        }
        ctx.run_interval(FRAME_DURATION, |actor, _| actor.tick());
        ctx.run_interval(RTCP_INTERVAL, |actor, _| {
            let Some(session) = actor.session.as_mut() else {
                return;
            };
            let Some(report) = session.rtcp_report(Instant::now(), wall_ntp()) else {
                return;
            };
            let Some(destination) = actor.session.as_mut().and_then(|s| s.tick_destination())
            else {
                return;
            };
            // RTCP goes to the port above RTP (RFC 3550 11) unless SDP said otherwise.
            let rtcp_to = SocketAddr::new(destination.ip(), destination.port().saturating_add(1));
            crate::datagram::send(&actor.rtcp, &report, rtcp_to);
        });
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.report_metrics();
    }
}

impl Handler<StartMedia> for MediaActor {
    type Result = ();

    fn handle(&mut self, msg: StartMedia, _ctx: &mut Context<Self>) {
        self.session = Some(MediaSession::new(msg.0));
    }
}

impl Handler<UpdateMedia> for MediaActor {
    type Result = ();

    fn handle(&mut self, msg: UpdateMedia, _ctx: &mut Context<Self>) {
        if let Some(session) = self.session.as_mut() {
            session.update(msg.remote, msg.send);
        }
    }
}

impl Handler<MicrophoneFrame> for MediaActor {
    type Result = ();

    fn handle(&mut self, msg: MicrophoneFrame, _ctx: &mut Context<Self>) {
        if let Some(session) = self.session.as_mut() {
            session.push_microphone(msg.0);
        }
    }
}

impl Handler<SendDigit> for MediaActor {
    type Result = ();

    fn handle(&mut self, msg: SendDigit, _ctx: &mut Context<Self>) {
        if let Some(session) = self.session.as_mut() {
            session.send_digit(msg.0);
        }
    }
}

impl Handler<SendFlashEvent> for MediaActor {
    type Result = ();

    fn handle(&mut self, _msg: SendFlashEvent, _ctx: &mut Context<Self>) {
        if let Some(session) = self.session.as_mut() {
            session.send_flash();
        }
    }
}

impl Handler<StopMedia> for MediaActor {
    type Result = MessageResult<StopMedia>;

    fn handle(&mut self, _msg: StopMedia, ctx: &mut Context<Self>) -> Self::Result {
        ctx.stop();
        MessageResult(
            self.session
                .as_ref()
                .map(MediaSession::counters)
                .unwrap_or_default(),
        )
    }
}

impl StreamHandler<ReadyToRead> for MediaActor {
    fn handle(&mut self, msg: ReadyToRead, _ctx: &mut Context<Self>) {
        self.read(msg.0);
    }

    /// A readiness stream never ends by itself; the actor stops only on [`StopMedia`].
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_pair_is_an_even_port_and_the_next_and_every_pair_of_the_range_is_found() {
        let ip: std::net::IpAddr = [127, 0, 0, 1].into();
        let mut held = Vec::new();
        for _ in 0..3 {
            let (rtp, rtcp) = bind_port_pair(ip, 47001, 47007).expect("a free pair");
            let port = rtp.local_addr().expect("addr").port();
            assert_eq!(port % 2, 0);
            assert!((47002..=47007).contains(&port), "{port}");
            assert_eq!(rtcp.local_addr().expect("addr").port(), port + 1);
            held.push((rtp, rtcp));
        }
        let error = bind_port_pair(ip, 47001, 47007).expect_err("all taken");
        assert!(matches!(error, AtaError::NoRtpPort { .. }), "{error}");
    }
}
