//! `Telemetry::tracing_layer` with traces off costs a bot nothing: botscope's `debug` unit
//! spans stay disabled under an `info` log layer. With traces on it wants them.

use botscope::Telemetry;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn telemetry(traces: bool) -> Telemetry {
    let mut builder = Telemetry::builder()
        .serve(false)
        .system_metrics(false)
        .set_global(false);
    if traces {
        // nothing is exported in this test: the endpoint is never reached
        builder = builder
            .traces(botscope::traces::Traces::otlp().endpoint("http://127.0.0.1:9/v1/traces"));
    }
    builder.install().expect("telemetry")
}

fn debug_span_enabled(telemetry: &Telemetry) -> bool {
    let subscriber = tracing_subscriber::registry()
        .with(telemetry.tracing_layer())
        .with(
            tracing_subscriber::fmt::layer()
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        );
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::debug_span!(target: "botscope_jobs", "job");
        let info = tracing::info_span!("info");
        assert!(!info.is_disabled(), "the log layer wants info spans");
        !span.is_disabled()
    })
}

#[test]
fn with_traces_off_the_layer_wants_no_debug_span() {
    assert!(!debug_span_enabled(&telemetry(false)));
}

#[tokio::test]
async fn with_traces_on_the_layer_wants_every_unit_span() {
    assert!(debug_span_enabled(&telemetry(true)));
}
