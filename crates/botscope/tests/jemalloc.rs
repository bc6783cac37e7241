//! Feature `jemalloc`: heap figures under the Go runtime's names, with jemalloc as the
//! global allocator.
#![cfg(feature = "jemalloc")]

use botscope::Telemetry;
use botscope_testkit::Scrape;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::test]
async fn heap_types_appear_and_follow_allocations() {
    let telemetry = Telemetry::builder()
        .namespace("disruptor")
        .serve(false)
        .set_global(false)
        .install()
        .expect("install");
    let heap = |scrape: &Scrape, kind: &str| {
        scrape
            .value("disruptor_system_memory_bytes", &[("type", kind)])
            .unwrap_or_else(|| panic!("type={kind} missing from\n{}", scrape.text()))
    };

    let before = Scrape::parse(&telemetry.render());
    for kind in [
        "heap_alloc",
        "heap_inuse",
        "heap_sys",
        "heap_idle",
        "heap_released",
        "resident",
        "virtual",
    ] {
        heap(&before, kind);
    }
    assert!(heap(&before, "heap_sys") >= heap(&before, "heap_inuse"));
    assert!(heap(&before, "heap_inuse") >= heap(&before, "heap_alloc"));

    let block = vec![7u8; 64 << 20];
    let during = Scrape::parse(&telemetry.render());
    assert!(heap(&during, "heap_alloc") >= heap(&before, "heap_alloc") + (60 << 20) as f64);
    drop(std::hint::black_box(block));
}
