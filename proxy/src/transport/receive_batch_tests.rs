//! One `recvmmsg` per batch: senders, arrival stamps, a full batch and a dry queue.

use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::transport::arrival::stamp_arrivals;

fn pair() -> (UdpSocket, UdpSocket) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(socket.local_addr().unwrap()).unwrap();
    (socket, client)
}

/// Receives until `want` datagrams came or 5 s passed: loopback queues a datagram before
/// `send` returns, so this only guards against a broken test.
fn receive_all(
    batch: &mut ReceiveBatch,
    socket: &UdpSocket,
    stamped: bool,
    want: usize,
) -> Vec<(Vec<u8>, SocketAddr, Option<SystemTime>)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut all = Vec::new();
    while all.len() < want && Instant::now() < deadline {
        let _ = batch.receive(socket, stamped);
        all.extend(batch.datagrams().map(|(b, f, a)| (b.to_vec(), f, a)));
    }
    all
}

#[test]
fn an_empty_socket_would_block_and_leaves_the_batch_empty() {
    let (socket, _client) = pair();
    let mut batch = ReceiveBatch::default();
    let error = batch.receive(&socket, true).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
    assert_eq!(batch.datagrams().count(), 0);
}

#[test]
fn one_call_takes_every_queued_datagram_with_its_sender_and_says_the_queue_ran_dry() {
    let (socket, client) = pair();
    let other = UdpSocket::bind("127.0.0.2:0").unwrap();
    client.send(b"first").unwrap();
    other
        .send_to(b"second", socket.local_addr().unwrap())
        .unwrap();
    client.send(&[7u8; 60_000]).unwrap();
    let mut batch = ReceiveBatch::default();
    let error = batch.receive(&socket, false).unwrap_err();
    assert_eq!(
        error.kind(),
        io::ErrorKind::WouldBlock,
        "fewer than a batch"
    );
    let got: Vec<_> = batch.datagrams().collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].0, b"first");
    assert_eq!(got[0].1, client.local_addr().unwrap());
    assert_eq!(got[1].0, b"second");
    assert_eq!(got[1].1, other.local_addr().unwrap());
    assert_eq!(
        got[2].0,
        &[7u8; 60_000][..],
        "a large datagram whole, in a later slot"
    );
    assert!(
        got.iter().all(|(_, _, arrival)| arrival.is_none()),
        "not stamped"
    );
}

#[test]
fn a_full_batch_says_more_may_be_queued_and_the_next_call_takes_the_rest() {
    let (socket, client) = pair();
    for n in 0..SLOTS + 3 {
        client.send(format!("d{n}").as_bytes()).unwrap();
    }
    let mut batch = ReceiveBatch::default();
    batch
        .receive(&socket, false)
        .expect("a full batch is not an error");
    let first: Vec<_> = batch.datagrams().map(|(b, _, _)| b.to_vec()).collect();
    assert_eq!(first.len(), SLOTS);
    assert_eq!(first[0], b"d0");
    let error = batch.receive(&socket, false).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
    let rest: Vec<_> = batch.datagrams().map(|(b, _, _)| b.to_vec()).collect();
    assert_eq!(rest, [b"d16".to_vec(), b"d17".to_vec(), b"d18".to_vec()]);
}

#[test]
fn a_stamped_socket_reports_each_datagrams_arrival_in_order() {
    let (socket, client) = pair();
    stamp_arrivals(&socket).unwrap();
    let mut batch = ReceiveBatch::default();
    // Linux turns arrival stamping on for the whole system a moment after the first socket
    // asks (a deferred static key); until then a datagram is stamped as it is read. Wait,
    // boundedly, for a datagram whose stamp is clearly older than its read.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        client.send(b"warm-up").unwrap();
        std::thread::sleep(Duration::from_millis(10));
        let read_at = SystemTime::now();
        let got = receive_all(&mut batch, &socket, true, 1);
        let age = read_at.duration_since(got[0].2.expect("stamped"));
        if age.is_ok_and(|age| age >= Duration::from_millis(5)) {
            break;
        }
        assert!(Instant::now() < deadline, "stamps stay read times");
    }
    let before = SystemTime::now();
    client.send(b"first").unwrap();
    client.send(b"second").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let read_at = SystemTime::now();
    let got = receive_all(&mut batch, &socket, true, 2);
    assert_eq!(got[0].0, b"first");
    assert_eq!(got[1].0, b"second");
    let (first, second) = (got[0].2.expect("stamped"), got[1].2.expect("stamped"));
    assert!(before <= first && first <= second, "arrival order");
    assert!(
        second < read_at,
        "the arrival, not the read 20 ms later: {:?}",
        read_at.duration_since(second)
    );
}
