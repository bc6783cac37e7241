//! What exporting traces adds to a unit of work: a decorated job run with no subscriber
//! (traces off) vs under `Telemetry::tracing_layer()` with traces on, its span sent through
//! the SDK's batch processor and opentelemetry-otlp to the testkit's receiver on loopback.
//! The two are sampled alternately in the same run (so machine noise hits both alike); the
//! medians and their ratio are printed, then how many spans the receiver got.

use std::hint::black_box;

use botscope::Telemetry;
use botscope::jobs::Job;
use botscope::traces::Traces;
use botscope_testkit::Scrape;
use botscope_testkit::bench::interleaved_async;
use botscope_testkit::otlp::OtlpReceiver;
use tracing_subscriber::layer::SubscriberExt as _;

async fn work(x: u64) -> Result<u64, std::io::Error> {
    tokio::task::yield_now().await;
    Ok(black_box(x) + 1)
}

/// Runs per batch; the testkit samples 101 batches of each side.
const BATCH: u32 = 200;
/// Every span the on side makes fits the queue.
const SPANS: usize = 101 * BATCH as usize;

fn main() {
    // the receiver serves on a runtime of its own, as a collector beside the bot would
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the receiver's runtime");
    let receiver = server.block_on(OtlpReceiver::start()).expect("a receiver");
    let telemetry = Telemetry::builder()
        .namespace("bench")
        .serve(false)
        .system_metrics(false)
        .set_global(false)
        .traces(
            Traces::otlp()
                .endpoint(receiver.traces_url())
                // room for every sample: the measured path is the one that keeps the span
                .max_queue_size(2 * SPANS),
        )
        .install()
        .expect("telemetry");
    let job = Job::builder("bench_job")
        .meter(telemetry.meter("bench"))
        .build(|| work(1))
        .expect("a named job");

    let off = tracing::Dispatch::none();
    let on = tracing::Dispatch::new(tracing_subscriber::registry().with(telemetry.tracing_layer()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    // both sides set a default dispatcher for the run, so that costs both alike
    let run_in = |dispatch: &tracing::Dispatch| {
        let dispatch = dispatch.clone();
        let job = job.clone();
        async move {
            let _default = tracing::dispatcher::set_default(&dispatch);
            job.run().await
        }
    };
    // A call site's interest is cached when it is first hit: hit the job's under the
    // exporting subscriber first, as a bot's global subscriber would be.
    runtime.block_on(run_in(&on)).expect("a job run");
    runtime
        .block_on(interleaved_async(BATCH, || run_in(&off), || run_in(&on)))
        .print("a job run with traces exported over OTLP", f64::INFINITY);

    runtime.block_on(async {
        telemetry
            .flush_traces()
            .await
            .expect("the receiver took them");
    });
    let scrape = Scrape::parse(&telemetry.render());
    println!(
        "spans: {} received, {} exported, {} dropped, of {SPANS} made",
        receiver.spans().len(),
        scrape
            .value("bench_trace_spans_exported_total", &[("status", "success")])
            .unwrap_or(0.0),
        scrape
            .value("bench_trace_spans_exported_total", &[("status", "error")])
            .unwrap_or(0.0),
    );
}
