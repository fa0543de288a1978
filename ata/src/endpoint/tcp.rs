//! SIP over TCP for the endpoint (RFC 3261 section 18.3): one task per connection reads the
//! stream, cuts it into messages with `dialtone_sip::StreamFramer` (Content-Length framing,
//! CRLF keep-alives answered) and hands each to the endpoint as a [`StreamMessage`]; what the
//! endpoint sends to that peer goes through the connection's queue. Connections are keyed by
//! the peer's address, so a response goes back on the connection its request came in on
//! (18.2.2) and our requests to the proxy reuse the connection we opened (18.1.1).
//!
//! The endpoint owns the map of queues; this module owns only the tasks.

use std::net::SocketAddr;

use actix::prelude::*;
use bytes::Bytes;
use dialtone_sip::framer::{Frame, StreamFramer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::debug;

/// A whole message received on a connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StreamMessage {
    /// The message.
    pub bytes: Bytes,
    /// The connection's peer.
    pub peer: SocketAddr,
}

/// A new connection (accepted, or opened by us) and the queue that writes to it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StreamOpened {
    /// The connection's peer.
    pub peer: SocketAddr,
    /// Its write queue.
    pub queue: mpsc::UnboundedSender<Bytes>,
}

/// A connection ended (closed by the peer, a read or write error, or a framing error).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StreamClosed {
    /// The connection's peer.
    pub peer: SocketAddr,
}

/// What a connection task reports to: the endpoint.
#[derive(Clone)]
pub struct StreamOwner {
    /// Received messages.
    pub messages: Recipient<StreamMessage>,
    /// New connections.
    pub opened: Recipient<StreamOpened>,
    /// Ended connections.
    pub closed: Recipient<StreamClosed>,
}

/// Accepts connections on `listener` until the endpoint goes away.
pub fn listen(listener: TcpListener, owner: StreamOwner) {
    actix_rt::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let (queue, outgoing) = mpsc::unbounded_channel();
                    if owner.opened.try_send(StreamOpened { peer, queue }).is_err() {
                        break;
                    }
                    actix_rt::spawn(run(stream, peer, outgoing, owner.clone()));
                }
                Err(e) => debug!(error = %e, "TCP accept failed"),
            }
        }
    });
}

/// Opens a connection to `peer`; returns its queue at once (what is queued before the
/// connection is up is written once it is).
pub fn connect(peer: SocketAddr, owner: StreamOwner) -> mpsc::UnboundedSender<Bytes> {
    let (queue, outgoing) = mpsc::unbounded_channel();
    actix_rt::spawn(async move {
        match TcpStream::connect(peer).await {
            Ok(stream) => run(stream, peer, outgoing, owner).await,
            Err(e) => {
                debug!(%peer, error = %e, "TCP connect failed");
                let _ = owner.closed.try_send(StreamClosed { peer });
            }
        }
    });
    queue
}

async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    mut outgoing: mpsc::UnboundedReceiver<Bytes>,
    owner: StreamOwner,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (pong, mut pongs) = mpsc::unbounded_channel::<()>();
    let write = async move {
        loop {
            tokio::select! {
                bytes = outgoing.recv() => match bytes {
                    Some(bytes) => writer.write_all(&bytes).await?,
                    None => return Ok::<(), std::io::Error>(()),
                },
                Some(()) = pongs.recv() => writer.write_all(b"\r\n").await?,
            }
        }
    };
    let messages = owner.messages.clone();
    let read = async move {
        let mut framer = StreamFramer::new();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = reader.read(&mut buffer).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            framer.push(&buffer[..n]);
            loop {
                match framer.next_frame() {
                    Ok(Some(Frame::Message(bytes))) => {
                        let _ = messages.try_send(StreamMessage { bytes, peer });
                    }
                    // RFC 5626 3.5.1: a CRLFCRLF ping gets a CRLF pong.
                    Ok(Some(Frame::Ping)) => {
                        let _ = pong.send(());
                    }
                    Ok(None) => break,
                    Err(e) => {
                        debug!(%peer, error = %e, "unframable SIP stream; closing");
                        return Ok(());
                    }
                }
            }
        }
    };
    let result = tokio::select! {
        r = write => r,
        r = read => r,
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "TCP connection failed");
    }
    let _ = owner.closed.try_send(StreamClosed { peer });
}
