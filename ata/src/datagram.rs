//! Sending a UDP datagram from an actor handler without blocking it. `try_send_to` succeeds
//! at once almost always; it reports `WouldBlock` while tokio has not yet seen the socket
//! writable (right after it was created) or when the send buffer is full, and then the send
//! is finished on a task instead of being lost. Used by the endpoint (SIP) and media (RTP)
//! actors.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tracing::debug;

/// Sends `bytes` to `destination` on `socket`, now or on a task.
pub fn send(socket: &Arc<UdpSocket>, bytes: &[u8], destination: SocketAddr) {
    match socket.try_send_to(bytes, destination) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let socket = socket.clone();
            let bytes = bytes.to_vec();
            actix_rt::spawn(async move {
                if let Err(e) = socket.send_to(&bytes, destination).await {
                    debug!(%destination, error = %e, "send failed");
                }
            });
        }
        Err(e) => debug!(%destination, error = %e, "send failed"),
    }
}
