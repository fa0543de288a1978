//! When a datagram reached the socket, as the kernel saw it (`SO_TIMESTAMPNS`), for message
//! capture (call ladders, `/api/trace`, HEP).
//!
//! Why not the time the worker read it: datagrams of one peer are spread over the workers
//! (`udp.rs::spread_each_datagram`), so two that a peer sent back to back (the seed ATA's ACK
//! of a 407 and its INVITE with credentials, a 180 and a 200) can be read by two workers in
//! the other order. The kernel's stamp is taken as each datagram is queued, in the order it
//! arrived, so the capture shows the call as it happened on the wire. Only sockets whose
//! messages are captured ask for it: reading the stamp needs a control buffer per datagram
//! (`receive_batch.rs`).

use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

/// Asks the kernel to stamp each datagram `socket` receives with its arrival time.
pub fn stamp_arrivals(socket: &std::net::UdpSocket) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the option value is a live `c_int` and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The arrival time the kernel stamped on a datagram (see [`stamp_arrivals`]), read from the
/// control messages of the `msghdr` that `recvmsg` or `recvmmsg` filled.
///
/// # Safety
///
/// `msg` must be a header the kernel filled for a datagram, whose `msg_control` (if not null)
/// still points to the live control buffer of `msg_controllen` bytes it wrote.
pub unsafe fn arrival_of(msg: &libc::msghdr) -> Option<SystemTime> {
    let mut arrival = None;
    // SAFETY: the libc macros walk the control messages the kernel wrote and stop at
    // `msg_controllen` (the caller's promise); the timestamp is read unaligned from the data of
    // a header whose level and type say it holds a `timespec`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let at: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                arrival = u64::try_from(at.tv_sec).ok().map(|seconds| {
                    SystemTime::UNIX_EPOCH + Duration::new(seconds, at.tv_nsec as u32)
                });
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    arrival
}
