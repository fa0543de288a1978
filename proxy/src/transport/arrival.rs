//! When a datagram reached the socket, as the kernel saw it (`SO_TIMESTAMPNS`), for message
//! capture (call ladders, `/api/trace`, HEP).
//!
//! Why not the time the worker read it: datagrams of one peer are spread over the workers
//! (`udp.rs::spread_each_datagram`), so two that a peer sent back to back (the seed ATA's ACK
//! of a 407 and its INVITE with credentials, a 180 and a 200) can be read by two workers in
//! the other order. The kernel's stamp is taken as each datagram is queued, in the order it
//! arrived, so the capture shows the call as it happened on the wire. Only sockets whose
//! messages are captured ask for it: reading the stamp needs `recvmsg` with a control buffer
//! instead of `recvfrom`.

use std::net::SocketAddr;
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

/// One datagram received into `buf`: its length, its sender, and its arrival time when the
/// kernel stamped it (see [`stamp_arrivals`]). Like `recv_from` on a non-blocking socket, it
/// fails with `WouldBlock` when nothing is queued.
pub fn recv_stamped(
    socket: &std::net::UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr, Option<SystemTime>)> {
    // Room for one `cmsghdr` and a `timespec`, aligned for both.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut arrival = None;
    // SAFETY: `try_init` hands over zeroed storage for a socket address and its size, which
    // `recvmsg` fills and whose length it reports back through `msg_namelen`. Every pointer in
    // `msg` (the address storage, `iov` over `buf`, `control`) is live for the call, with its
    // size. The control messages are walked with the libc macros over the `msghdr` that
    // `recvmsg` filled (they stop at `msg_controllen`), and the timestamp is read unaligned
    // from the data of a header whose level and type say it holds a `timespec`.
    let (received, from) = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = storage.cast();
            msg.msg_namelen = *len;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control) as _;
            let n = libc::recvmsg(socket.as_raw_fd(), &mut msg, 0);
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            *len = msg.msg_namelen;
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let at: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    arrival = u64::try_from(at.tv_sec).ok().map(|seconds| {
                        SystemTime::UNIX_EPOCH + Duration::new(seconds, at.tv_nsec as u32)
                    });
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            Ok(n as usize)
        })?
    };
    let from = from
        .as_socket()
        .ok_or_else(|| std::io::Error::other("datagram from a non-IP address"))?;
    Ok((received, from, arrival))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_socket_reports_each_datagrams_arrival_in_order() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        stamp_arrivals(&socket).unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 64];
        // Linux turns arrival stamping on for the whole system a moment after the first socket
        // asks (a deferred static key); until then a datagram is stamped as it is read. Wait,
        // boundedly, for a datagram whose stamp is clearly older than its read.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            client
                .send_to(b"warm-up", socket.local_addr().unwrap())
                .unwrap();
            std::thread::sleep(Duration::from_millis(10));
            let read_at = SystemTime::now();
            let (_, _, arrival) = recv_stamped(&socket, &mut buf).unwrap();
            let age = read_at.duration_since(arrival.expect("stamped"));
            if age.is_ok_and(|age| age >= Duration::from_millis(5)) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "stamps stay read times"
            );
        }
        let before = SystemTime::now();
        client
            .send_to(b"first", socket.local_addr().unwrap())
            .unwrap();
        client
            .send_to(b"second", socket.local_addr().unwrap())
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let read_at = SystemTime::now();
        let (n, from, first) = recv_stamped(&socket, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"first");
        assert_eq!(from, client.local_addr().unwrap());
        let (n, _, second) = recv_stamped(&socket, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"second");
        let (first, second) = (first.expect("stamped"), second.expect("stamped"));
        assert!(before <= first && first <= second, "arrival order");
        assert!(
            second < read_at,
            "the arrival, not the read 20 ms later: {:?}",
            read_at.duration_since(second)
        );
    }

    #[test]
    fn an_unstamped_socket_reports_no_arrival_and_an_empty_one_would_block() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let error = recv_stamped(&socket, &mut buf).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::WouldBlock);
        socket.set_nonblocking(false).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"x", socket.local_addr().unwrap()).unwrap();
        let (n, _, arrival) = recv_stamped(&socket, &mut buf).unwrap();
        assert_eq!(n, 1);
        assert_eq!(arrival, None);
    }
}
