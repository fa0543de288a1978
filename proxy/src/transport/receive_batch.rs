//! Every datagram queued on a UDP socket, up to [`SLOTS`], in one `recvmmsg` call, each with
//! its sender and, on a stamped socket (`arrival.rs`), its arrival time.
//!
//! Why not a `recvmsg` per datagram: each wake-up of a worker then made one more receive to
//! learn that the queue was empty (`EAGAIN`), and one per datagram before it. At 200 calls a
//! second that was 12.9 receives per call of which 4.7 failed (`perf trace`), against one
//! `recvmmsg` per wake-up: it stops at the first empty read, so a short batch also says that
//! the queue ran dry, which is all the worker's readiness needs to be cleared.
//!
//! Why not nix's `recvmmsg`: it sets each header's control length once, when its headers are
//! made, and the kernel shrinks that field to what each receive used, so a slot that once got
//! no stamp would get none again. The headers are made afresh on the stack for each call here.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::SystemTime;

use super::arrival::arrival_of;

/// Datagrams one call can receive.
pub const SLOTS: usize = 16;
/// Room for each (the message size cap is 64 KiB).
const SLOT_BYTES: usize = 65_535;
/// Room for one control message with a `timespec`, aligned for its header.
type Control = [u64; 8];

/// One datagram of the batch.
#[derive(Clone, Copy)]
struct Received {
    slot: usize,
    len: usize,
    from: SocketAddr,
    arrival: Option<SystemTime>,
}

/// The buffers a UDP worker receives into, reused from call to call.
pub struct ReceiveBatch {
    /// All the slots' bytes in one zeroed allocation: the kernel maps its pages only as
    /// datagrams first touch them, so a slot that only ever holds small datagrams costs a page.
    bytes: Vec<u8>,
    addresses: Vec<libc::sockaddr_storage>,
    controls: Vec<Control>,
    received: Vec<Received>,
}

impl Default for ReceiveBatch {
    fn default() -> Self {
        ReceiveBatch {
            bytes: vec![0; SLOTS * SLOT_BYTES],
            // SAFETY: an all-zero `sockaddr_storage` is a valid value (family AF_UNSPEC).
            addresses: vec![unsafe { std::mem::zeroed() }; SLOTS],
            controls: vec![[0; 8]; SLOTS],
            received: Vec::with_capacity(SLOTS),
        }
    }
}

impl ReceiveBatch {
    /// Receives what `socket` (non-blocking) has queued, up to [`SLOTS`] datagrams, replacing
    /// the batch; with `stamped`, each datagram's arrival time too.
    ///
    /// `Ok` means the batch is full and more may be queued. `WouldBlock` means the queue ran
    /// dry, after the datagrams the batch now holds, if any: returned as an error so that a
    /// readiness wrapper (tokio's `try_io`) clears the socket's readiness. Any other error
    /// leaves the batch empty.
    pub fn receive(&mut self, socket: &UdpSocket, stamped: bool) -> io::Result<()> {
        self.received.clear();
        let mut iovecs: [libc::iovec; SLOTS] = std::array::from_fn(|slot| libc::iovec {
            iov_base: self.bytes[slot * SLOT_BYTES..].as_mut_ptr().cast(),
            iov_len: SLOT_BYTES,
        });
        // SAFETY: an all-zero `mmsghdr` is a valid value (null pointers, zero lengths).
        let mut headers: [libc::mmsghdr; SLOTS] = unsafe { std::mem::zeroed() };
        for (slot, header) in headers.iter_mut().enumerate() {
            let msg = &mut header.msg_hdr;
            msg.msg_name = (&mut self.addresses[slot] as *mut libc::sockaddr_storage).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            msg.msg_iov = &mut iovecs[slot];
            msg.msg_iovlen = 1;
            if stamped {
                msg.msg_control = self.controls[slot].as_mut_ptr().cast();
                msg.msg_controllen = std::mem::size_of::<Control>() as _;
            }
        }
        // SAFETY: every header points to live storage of the size it states: its address slot,
        // its `iovec` over its own `SLOT_BYTES` of `bytes`, its control buffer. All of them
        // outlive the call, and `SLOTS` headers are passed.
        let count = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                SLOTS as _,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let count = usize::try_from(count).map_err(|_| io::Error::last_os_error())?;
        for (slot, header) in headers.iter().take(count).enumerate() {
            // SAFETY: the kernel filled this address slot and wrote its length back.
            let address =
                unsafe { socket2::SockAddr::new(self.addresses[slot], header.msg_hdr.msg_namelen) };
            // A datagram from a non-IP address cannot come to a UDP socket; skipped if it did.
            let Some(from) = address.as_socket() else {
                continue;
            };
            // SAFETY: the kernel filled this header for this datagram, and its control buffer
            // is still the live slot of `controls` (or null when not stamped).
            let arrival = stamped
                .then(|| unsafe { arrival_of(&header.msg_hdr) })
                .flatten();
            self.received.push(Received {
                slot,
                len: header.msg_len as usize,
                from,
                arrival,
            });
        }
        if count < SLOTS {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    }

    /// Forgets the last batch (for a call whose receive did not run).
    pub fn clear(&mut self) {
        self.received.clear();
    }

    /// The datagrams received by the last call, in arrival order: bytes, sender, arrival.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr, Option<SystemTime>)> {
        self.received.iter().map(|r| {
            let start = r.slot * SLOT_BYTES;
            (&self.bytes[start..start + r.len], r.from, r.arrival)
        })
    }
}

#[cfg(test)]
#[path = "receive_batch_tests.rs"]
mod tests;
