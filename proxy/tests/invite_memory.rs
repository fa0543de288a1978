//! Heap held per live INVITE transaction in the proxy core, and allocations per message (an
//! INVITE and its 180; a REGISTER to a durable registrar), counted by a global allocator
//! wrapper. For the INVITEs: a registered callee answers 180 and never picks up,
//! as in `tests/bench/memory.py --only invites`, without the process's other noise and
//! exactly (a count, not a timing: the same on any machine).
//!
//! `DIALTONE_LEAK_CORE=1 heaptrack <this test binary>` shows where the held bytes come from.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use dialtone_proxy::calls::CallTracker;
use dialtone_proxy::config::{Config, FileConfig, ProxyFlags};
use dialtone_proxy::metrics::ProxyMetrics;
use dialtone_proxy::proxy_core::{Action, ProxyCore, Source};
use dialtone_proxy::registrar::LocationService;
use dialtone_transaction::Transport;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn source(addr: &str) -> Source {
    Source {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
        local: "127.0.0.1:5070".parse().unwrap(),
    }
}

fn sent(actions: &[Action]) -> Vec<Bytes> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { bytes, .. } => Some(bytes.clone()),
            Action::SendWhenStored { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .collect()
}

fn invite(n: usize) -> Bytes {
    Bytes::copy_from_slice(
        format!(
            "INVITE sip:9000@127.0.0.1:5070 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK{n:012x};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:8000@127.0.0.1>;tag=c{n}\r\n\
         To: <sip:9000@127.0.0.1>\r\n\
         Call-ID: inv{n}-{n:08x}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:8000@127.0.0.1:40000>\r\n\
         Content-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
}

/// A 180 to a forwarded INVITE: its Vias, From, To with a tag, Call-ID and CSeq.
fn ringing(forwarded: &[u8]) -> Bytes {
    let text = std::str::from_utf8(forwarded).unwrap();
    let mut out = String::from("SIP/2.0 180 Ringing\r\n");
    for line in text.split("\r\n").skip(1) {
        let lower = line.to_ascii_lowercase();
        if ["via:", "from:", "call-id:", "cseq:"]
            .iter()
            .any(|h| lower.starts_with(h))
        {
            out.push_str(line);
            out.push_str("\r\n");
        } else if lower.starts_with("to:") {
            out.push_str(line);
            out.push_str(";tag=ring\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Bytes::copy_from_slice(out.as_bytes())
}

/// Bytes of heap (as requested; the allocator adds its own headers) the core may hold per
/// ringing INVITE: 898 when this was set (2 946 before issue 22's work on it). The received
/// INVITE is kept as its skeleton (`Message::skeleton`) once forwarded, and the relayed 180
/// as its differences from that skeleton (`dialtone_sip::Delta`); the branch keeps only the
/// head of its forwarded copy (`Message::forwarded_head`, as a delta against the skeleton)
/// once the 180 came; the transaction, its branch, its keys (digests, no heap) and the
/// tables are the rest. Issue 22 asks for at most 1 KiB of the process's memory per ringing
/// INVITE (`tests/bench/memory.py` measures 1 005 B with this), the allocator's headers and
/// the timer entries included; this guards against going back.
const BYTES_BUDGET: isize = 940;

/// Heap allocations for one INVITE and its 180 (100 Trying, the forwarded INVITE and the
/// relayed 180 included; 5 of them are this test's own): 59 when this was written, 91 before.
/// Three of them make the skeletons (a parse of the forwarded copy and two copies), and two
/// keep the provisionals (the 100 boxed, the 180 as its delta), traded for the octets a
/// ringing call no longer holds.
const ALLOCATIONS_BUDGET: usize = 61;

/// The counts are process-wide: one test at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn core_with(location: LocationService) -> ProxyCore {
    let flags = ProxyFlags {
        listen: vec!["udp:127.0.0.1:5070".into()],
        ..Default::default()
    };
    let config = Config::merge(FileConfig::default(), &flags).unwrap();
    let metrics = ProxyMetrics::new();
    ProxyCore::new(
        &config,
        location,
        metrics.clone(),
        CallTracker::new(metrics),
    )
}

#[test]
fn a_ringing_invite_transaction_stays_within_its_memory_and_allocation_budget() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let core = core_with(LocationService::new());
    let now = Instant::now();
    let wall = SystemTime::now();
    let register = Bytes::from_static(b"REGISTER sip:127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:41000;branch=z9hG4bKreg1\r\nMax-Forwards: 70\r\nFrom: <sip:9000@127.0.0.1>;tag=r\r\nTo: <sip:9000@127.0.0.1>\r\nCall-ID: reg1@127.0.0.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:9000@127.0.0.1:41000>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n");
    let answer = core.handle_message(now, wall, source("127.0.0.1:41000"), register);
    assert!(sent(&answer)[0].starts_with(b"SIP/2.0 200"), "{answer:?}");

    let ring = |n: usize| {
        let actions = core.handle_message(now, wall, source("127.0.0.1:40000"), invite(n));
        let forwarded = sent(&actions)
            .into_iter()
            .find(|b| b.starts_with(b"INVITE"))
            .expect("the INVITE was forwarded");
        let actions =
            core.handle_message(now, wall, source("127.0.0.1:41000"), ringing(&forwarded));
        assert!(sent(&actions).iter().any(|b| b.starts_with(b"SIP/2.0 180")));
    };
    for n in 0..500 {
        ring(n);
    }
    const COUNT: usize = 5000;
    let before = LIVE.load(Ordering::Relaxed);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    for n in 1_000_000..1_000_000 + COUNT {
        ring(n);
    }
    let per = (LIVE.load(Ordering::Relaxed) - before) / COUNT as isize;
    let allocs = (ALLOCATIONS.load(Ordering::Relaxed) - allocations) / COUNT;
    eprintln!("{per} bytes held and {allocs} allocations per ringing INVITE");
    assert_eq!(core.active_transactions(), 500 + COUNT);
    if std::env::var_os("DIALTONE_LEAK_CORE").is_some() {
        // For heaptrack: what the core holds then shows up as leaked, with its call stacks.
        std::mem::forget(core);
        return;
    }
    assert!(
        per <= BYTES_BUDGET,
        "{per} bytes held per ringing INVITE transaction, budget {BYTES_BUDGET}"
    );
    assert!(
        allocs <= ALLOCATIONS_BUDGET,
        "{allocs} allocations per INVITE and its 180, budget {ALLOCATIONS_BUDGET}"
    );
}

/// Allocations (and reallocations) per REGISTER to a registrar whose bindings are durable,
/// from the datagram to the 200 and the changes for the store's writer, of a new AOR and of a
/// refresh of its one binding (what a registrar mostly sees): each one and its free is CPU on
/// the worker, at tens of thousands of REGISTERs a second. A new AOR took 44 before the changes
/// went to the writer uncopied and contact identities were written without a temporary string,
/// and 39 (36 since) before the Contact headers were lent, not copied, to each step of the
/// rules. A refresh took 53 (43 since) before the rules lent the AOR's current bindings instead
/// of copying them three times.
///
/// Not done, on purpose: encoding an AOR's bindings into a buffer of their exact size (measured
/// first, or kept and copied out) would save five more, but the long-lived buffers then landed
/// among the request's short-lived ones and glibc's heap fragmented: 265 bytes per binding
/// against 235 measured first, 725 against 281 kept (`tests/bench/memory.py`).
const REGISTER_ALLOCATIONS_BUDGET: usize = 37;
const REFRESH_ALLOCATIONS_BUDGET: usize = 44;

#[test]
fn a_register_stays_within_its_allocation_budget() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let core = core_with(LocationService::with_bindings(Vec::new(), true));
    let (now, wall) = (Instant::now(), SystemTime::now());
    let register = |n: usize, cseq: u32| {
        let text = format!(
            "REGISTER sip:127.0.0.1:5070 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:41000;branch=z9hG4bKreg{n}-{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{n}@127.0.0.1>;tag=r{n}\r\n\
             To: <sip:{n}@127.0.0.1>\r\n\
             Call-ID: reg{n}@127.0.0.1\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{n}@127.0.0.1:41000>;expires=3600\r\n\
             Expires: 3600\r\n\
             Content-Length: 0\r\n\r\n"
        );
        Bytes::from(text)
    };
    for n in 0..500 {
        core.handle_message(now, wall, source("127.0.0.1:41000"), register(n, 1));
    }
    const COUNT: usize = 2000;
    for (cseq, what, budget) in [
        (1, "of a new AOR", REGISTER_ALLOCATIONS_BUDGET),
        (2, "refreshing a binding", REFRESH_ALLOCATIONS_BUDGET),
    ] {
        let messages: Vec<Bytes> = (100_000..100_000 + COUNT)
            .map(|n| register(n, cseq))
            .collect();
        let allocations = ALLOCATIONS.load(Ordering::Relaxed);
        for message in messages {
            let actions = core.handle_message(now, wall, source("127.0.0.1:41000"), message);
            assert!(
                actions.iter().any(|a| matches!(a, Action::Persist { .. })),
                "{actions:?}"
            );
            assert!(sent(&actions)[0].starts_with(b"SIP/2.0 200"), "{actions:?}");
        }
        let allocs = (ALLOCATIONS.load(Ordering::Relaxed) - allocations) / COUNT;
        eprintln!("{allocs} allocations per REGISTER {what}");
        assert!(
            allocs <= budget,
            "{allocs} allocations per REGISTER {what}, budget {budget}"
        );
    }
}
