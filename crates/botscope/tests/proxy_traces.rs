//! The real `botscope-proxy` binary with `OTEL_TRACES_EXPORTER=otlp`: a request carrying a
//! W3C `traceparent` is a child of the span it names; one without starts its own trace; an
//! exporter it cannot serve stops it with a clear message.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use botscope_testkit::client;
use botscope_testkit::otlp::{Kind, OtlpReceiver};
use botscope_testkit::rest::FakeDiscord;

struct Proxy {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(upstream: &str, endpoint: &str) -> Proxy {
    let mut child = Command::new(env!("CARGO_BIN_EXE_botscope-proxy"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--upstream", upstream])
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("a start line").expect("utf-8");
        if let Some((_, rest)) = line.split_once("forwarding http://") {
            break rest.split_once(' ').unwrap().0.parse().unwrap();
        }
    };
    // keep draining stderr so the binary never blocks on it
    std::thread::spawn(move || lines.for_each(drop));
    Proxy { child, addr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_makes_the_proxy_span_its_child() {
    let rest = FakeDiscord::spawn().await.expect("fake REST");
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let proxy = start(&rest.url(), &receiver.endpoint());

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{parent_id}-01");
    let reply = client::request(
        proxy.addr,
        "GET",
        "/api/v10/channels/745809834183753828",
        &[
            ("authorization", "Bot s3cret-bot-token"),
            ("traceparent", traceparent.as_str()),
        ],
    )
    .await
    .expect("a reply");
    // the fake knows no such channel: Discord's 404 is an answer as good as any
    assert_eq!(reply.status, 404);
    let reply = client::request(
        proxy.addr,
        "GET",
        "/api/v10/users/@me",
        &[("authorization", "Bot s3cret-bot-token")],
    )
    .await
    .expect("a reply");
    assert_eq!(reply.status, 200);

    let child = receiver
        .wait_for(Duration::from_secs(30), |span| {
            span.name == "GET /channels/{channel_id}"
        })
        .await
        .unwrap();
    assert_eq!(child.kind, Kind::Client);
    assert_eq!(child.trace_id, trace_id);
    assert_eq!(child.parent_span_id, parent_id);
    assert_eq!(child.service_name.as_deref(), Some("botscope"));
    assert_eq!(child.attribute("http.response.status_code"), Some("404"));
    assert_eq!(child.attribute("error.type"), Some("404"));
    let root = receiver
        .wait_for(Duration::from_secs(30), |span| {
            span.name == "GET /users/@me"
        })
        .await
        .unwrap();
    assert_eq!(
        root.parent_span_id, "",
        "no traceparent, a trace of its own"
    );
    assert_ne!(root.trace_id, trace_id);
    for span in receiver.spans() {
        for text in span.texts() {
            assert!(!text.contains("s3cret"), "{}: {text}", span.name);
            assert!(
                !text.contains("745809834183753828"),
                "{}: {text}",
                span.name
            );
        }
    }
    drop(proxy);
}

#[test]
fn an_exporter_it_cannot_serve_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_botscope-proxy"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(r#"cannot export traces: unsupported OTLP protocol "grpc": botscope exports http/protobuf"#),
        "{stderr}"
    );
}
