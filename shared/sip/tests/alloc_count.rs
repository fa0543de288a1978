//! Heap allocations on the parse path, counted with a counting global allocator.
//!
//! The parser promises one allocation per message (the header index, sized before it is filled),
//! so that a message's cost does not grow by an allocation per header line. Counting is per
//! thread, so tests running side by side do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dialtone_sip::Message;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (ALLOCATIONS.with(Cell::get) - before, out)
}

const INVITE: &[u8] = include_bytes!("../../../tests/data/seed-flows/D-3-call-noauth/01.sip");

/// The seed INVITE with `n` unknown headers added after the start line.
fn invite_with_unknown_headers(n: usize) -> Vec<u8> {
    let text = std::str::from_utf8(INVITE).expect("UTF-8");
    let (start_line, rest) = text.split_once("\r\n").expect("a start line");
    let mut out = format!("{start_line}\r\n");
    for i in 0..n {
        out.push_str(&format!("X-Lab-Header-{i}: value {i}; with=params\r\n"));
    }
    out.push_str(rest);
    out.into_bytes()
}

#[test]
fn parsing_the_seed_invite_allocates_once() {
    let (count, parsed) = allocations_during(|| Message::parse(INVITE).map(|m| m.headers().len()));
    assert_eq!(parsed, Ok(10));
    assert_eq!(count, 1, "only the header index");
}

#[test]
fn parse_allocations_do_not_grow_with_the_number_of_headers() {
    let ten = invite_with_unknown_headers(10);
    let forty = invite_with_unknown_headers(40);
    let (count_ten, n_ten) = allocations_during(|| Message::parse(&ten).map(|m| m.headers().len()));
    let (count_forty, n_forty) =
        allocations_during(|| Message::parse(&forty).map(|m| m.headers().len()));
    assert_eq!(n_ten, Ok(20));
    assert_eq!(n_forty, Ok(50));
    assert_eq!(count_ten, count_forty);
    assert_eq!(count_forty, 1);
}

#[test]
fn typed_reads_a_proxy_makes_allocate_nothing() {
    let m = Message::parse(INVITE).expect("parses");
    let (count, ok) = allocations_during(|| {
        m.top_via().is_ok()
            && m.max_forwards().is_ok()
            && m.top_route().is_ok()
            && m.call_id().is_ok()
            && m.cseq().is_ok()
            && m.from().is_ok()
            && m.to().is_ok()
    });
    assert!(ok);
    assert_eq!(count, 0);
}

#[test]
fn forwarding_edits_allocate_a_fixed_number_of_times() {
    let count_for = |raw: &[u8]| {
        let m = Message::parse(raw).expect("parses");
        allocations_during(|| {
            m.edit()
                .insert_header_first("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx")
                .insert_header_first("Record-Route", "<sip:10.0.0.1:5060;lr>")
                .decrement_max_forwards()
                .finish()
        })
        .0
    };
    let ten = invite_with_unknown_headers(10);
    let forty = invite_with_unknown_headers(40);
    assert_eq!(count_for(&ten), count_for(&forty));
    assert!(
        count_for(INVITE) <= 4,
        "staged text, splices, their sorted copy, output"
    );
}
