//! What the per-request steps the gateway owns allocate, counted by this test binary's global
//! allocator on the calling thread only: the rate-limit headers, a limiter decision, a request
//! id. Counts, not timings: each bound is what the step must allocate at most (issue 14,
//! "nothing allocated per request that can be built once").

use http::HeaderValue;
use imgproxy_gateway::limits::headers;
use imgproxy_gateway::limits::local::LocalLimiter;
use imgproxy_gateway::limits::rules::{Decision, Kind, Rule, Shape, Standing};
use imgproxy_gateway::request_id::RequestId;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

struct Counting;

thread_local! {
    static HERE: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call goes to the system allocator unchanged; counting touches a thread-local
// cell with a const initializer (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HERE.with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HERE.with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations `step` makes on this thread.
fn allocations(step: impl FnOnce()) -> u64 {
    let before = HERE.with(Cell::get);
    step();
    HERE.with(Cell::get) - before
}

fn standing(kind: Kind, limit: u64, remaining: u64, reset: u64, window: u64) -> Standing {
    Standing {
        kind,
        limit,
        remaining,
        reset,
        window,
    }
}

#[test]
fn the_headers_of_a_request_are_one_buffer_and_one_list() {
    let decision = Decision {
        rejected: None,
        standings: [
            standing(Kind::Ip, 20, 19, 1_001, 20),
            standing(Kind::UserMinute, 1000, 998, 1_042, 60),
            standing(Kind::UserHour, 5000, 4000, 3_600, 3600),
            standing(Kind::Api, 100, 50, 1_030, 60),
            standing(Kind::Requests, 100_000, 5, 2_000_000, 2_592_000),
        ]
        .into_iter()
        .collect(),
        shared: false,
    };
    let mut rendered = Vec::new();
    // The first request of a plan on this thread writes its `RateLimit-Policy` too.
    let first = allocations(|| rendered = headers::render(&decision, 1_000));
    assert_eq!(rendered.len(), 8);
    // Every later one reuses it: the values' one shared buffer, the list.
    let n = allocations(|| rendered = headers::render(&decision, 1_001));
    assert_eq!(rendered.len(), 8);
    assert!(n <= 2, "{n} allocations for the limit headers");
    assert!(
        first <= n + 3,
        "{first} allocations for a plan's first limit headers"
    );
}

#[test]
fn a_limiter_decision_allocates_nothing_once_its_counters_exist() {
    let limiter = LocalLimiter::default();
    let rule = |kind, key: &str, shape| Rule {
        kind,
        key: key.into(),
        limit: 1_000_000,
        shape,
    };
    let rules = [
        rule(
            Kind::Ip,
            "ip:{ip:10.0.0.1}",
            Shape::Bucket { per_minute: 60 },
        ),
        rule(
            Kind::UserMinute,
            "um:{u:a}",
            Shape::Window { start: 0, secs: 60 },
        ),
        rule(
            Kind::UserHour,
            "uh:{u:a}",
            Shape::Window {
                start: 0,
                secs: 3600,
            },
        ),
        rule(
            Kind::Api,
            "api:{api:/x}",
            Shape::Window { start: 0, secs: 60 },
        ),
        rule(
            Kind::Requests,
            "qr:{u:a}",
            Shape::Period {
                start: 0,
                end: 10_000,
                seed: 0,
            },
        ),
    ];
    assert!(limiter.check(&rules, 1_000, 1).admitted());
    let n = allocations(|| {
        for i in 0..100 {
            black_box(limiter.check(&rules, 1_000 + i, 1));
        }
    });
    assert_eq!(n, 0, "100 decisions over 5 rules");
}

#[test]
fn a_request_id_is_shared_or_made_once() {
    let given = HeaderValue::from_static("client-request-1");
    let n = allocations(|| {
        black_box(RequestId::from_header(Some(&given)));
    });
    assert_eq!(n, 0, "a well-formed client id is shared");
    // The thread's random generator is set up by its first use.
    black_box(RequestId::from_header(None));
    let mut fresh = None;
    let n = allocations(|| fresh = Some(RequestId::from_header(None)));
    assert!(n <= 1, "{n} allocations for a fresh id");
    let fresh = fresh.unwrap_or_default();
    let n = allocations(|| {
        black_box(fresh.value());
        black_box(fresh.value());
    });
    assert_eq!(n, 0, "allocations to send it twice");
}
