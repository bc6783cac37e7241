//! The demo with traces on, as its README says: `OTEL_TRACES_EXPORTER=otlp` and an
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (here the testkit's receiver). Its interactions arrive as
//! whole traces, its log lines lead to them, and no token is in any span. A value of
//! `OTEL_TRACES_EXPORTER` botscope cannot serve stops it with a clear message.

use std::process::{Command, Stdio};
use std::time::Duration;

use botscope_testkit::otlp::{Kind, OtlpReceiver};
use botscope_tests::demo::{Demo, binary};

#[tokio::test]
async fn the_demo_sends_each_interaction_as_one_trace_and_logs_its_ids() {
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let endpoint = receiver.endpoint();
    let log_path = std::env::temp_dir().join(format!("demo-traces-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).expect("a log file");
    let demo = Demo::start_logged(
        0,
        1,
        2,
        &[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("RUST_LOG", "warn,disruptor=debug"),
        ],
        Stdio::from(log),
    )
    .await;

    // a command's callback through twilight and the proxy, in a trace whose root is the event
    let callback = receiver
        .wait_for(Duration::from_secs(60), |span| {
            span.kind == Kind::Client && span.name.starts_with("POST /interactions/") && {
                // a slash command's (a button's runs no query)
                let trace = receiver.trace(&span.trace_id);
                trace
                    .iter()
                    .any(|root| root.name == "gateway INTERACTION_CREATE")
                    && trace.iter().any(|query| query.name == "INSERT command_log")
            }
        })
        .await
        .unwrap();
    let trace = receiver.trace(&callback.trace_id);
    let tree = receiver.tree(&callback.trace_id);
    let by_id = |id: &str| {
        trace
            .iter()
            .find(|span| span.span_id == id)
            .unwrap_or_else(|| panic!("no parent {id} in\n{tree}"))
    };
    let request = by_id(&callback.parent_span_id);
    assert_eq!(request.name, "request", "{tree}");
    let command = by_id(&request.parent_span_id);
    assert!(command.name.starts_with("command "), "{tree}");
    let event = by_id(&command.parent_span_id);
    assert_eq!(event.name, "gateway INTERACTION_CREATE", "{tree}");
    assert_eq!(event.parent_span_id, "", "{tree}");
    let queries: Vec<_> = trace
        .iter()
        .filter(|span| {
            span.parent_span_id == command.span_id && span.attribute("db.system.name").is_some()
        })
        .map(|span| span.name.as_str())
        .collect();
    assert_eq!(
        queries,
        ["SELECT guild_settings", "INSERT command_log"],
        "{tree}"
    );
    assert_eq!(event.service_name.as_deref(), Some("disruptor"));

    // a log line written in a command leads to a trace the receiver has
    let mut led = None;
    for _ in 0..300 {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        led = text
            .lines()
            .filter(|line| line.contains("answered"))
            .filter_map(|line| line.strip_prefix("trace_id="))
            .filter_map(|rest| rest.split_once(' '))
            .map(|(trace_id, _)| trace_id.to_owned())
            .find(|trace_id| {
                receiver
                    .trace(trace_id)
                    .iter()
                    .any(|span| span.name.starts_with("command "))
            });
        if led.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        led.is_some(),
        "no log line with a received trace's id:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );

    drop(demo);
    let _ = std::fs::remove_file(&log_path);
    // the demo's bot token and every interaction token stay out of its spans
    for span in receiver.spans() {
        for text in span.texts() {
            for secret in [
                "fake-token-for-the-demo",
                "fake-interaction-token-do-not-log",
                "aW50ZXJhY3Rpb246",
            ] {
                assert!(!text.contains(secret), "{secret} in {}: {text}", span.name);
            }
        }
    }
}

#[test]
fn an_exporter_botscope_cannot_serve_stops_the_demo_with_a_clear_message() {
    let output = Command::new(binary())
        .env_remove("DISCORD_TOKEN")
        .env("OTEL_TRACES_EXPORTER", "zipkin")
        .env("BOTSCOPE_LISTEN", "127.0.0.1:0")
        .output()
        .expect("run the demo");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(r#"unsupported OTEL_TRACES_EXPORTER="zipkin": use otlp, or none"#),
        "{stderr}"
    );
}
