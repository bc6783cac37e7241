//! The logs of the real `botscope-proxy` binary at `RUST_LOG=trace`: start and stop lines, one
//! line per request it could not forward, and no token, query or raw path anywhere in its
//! output, whatever a client sends.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use botscope_testkit::client;
use botscope_testkit::interaction::snowflake_at;
use botscope_testkit::rest::FakeDiscord;
use twilight_http::Client;
use twilight_model::http::interaction::{InteractionResponse, InteractionResponseType};
use twilight_model::id::Id;

/// A bot token of the real shape.
const BOT_TOKEN: &str = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
const WEBHOOK_TOKEN: &str = "Wh00kT0kenSecretXq9-Lw3_rTaN0x7YbVvUu2PcZsDfGhJkLmNoPqRsTuVwXyZaBcDe";
const INTERACTION_TOKEN: &str = "aW50ZXJhY3Rpb246OTk5OTk5OnNlY3JldC1pbnRlcmFjdGlvbi10b2tlbg";
const QUERY_SECRET: &str = "q-secret-7f3a9c1e";
const HEADER_SECRET: &str = "reason-secret-5b2d8e";
const METRICS_TOKEN: &str = "metrics-bearer-secret-c4e1";
const CHANNEL_ID: u64 = 745_809_834_183_753_828;
const WEBHOOK_ID: u64 = 1_000_000_000_000_000_123;

/// A running binary: its address, and a thread each reading stdout and stderr.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
}

impl Proxy {
    /// Starts the binary in front of `upstream`, logging at `rust_log` (the default level if
    /// `None`), and waits for its start line.
    fn start(upstream: &str, rust_log: Option<&str>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_botscope-proxy"));
        command
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--upstream", upstream])
            .env("BOTSCOPE_BEARER_TOKEN", METRICS_TOKEN)
            .env_remove("BOTSCOPE_NAMESPACE")
            .env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            out.read_to_string(&mut text).expect("utf-8 stdout");
            text
        });
        let (lines, started) = mpsc::channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            for line in err.lines() {
                let line = line.expect("utf-8 stderr");
                let _ = lines.send(line.clone());
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let addr = loop {
            let line = started
                .recv_timeout(Duration::from_secs(30))
                .expect("a start line within 30 s");
            if let Some((_, rest)) = line.split_once("forwarding http://") {
                let (addr, rest) = rest.split_once(' ').unwrap();
                assert!(rest.starts_with(&format!("to {upstream};")), "{line}");
                assert!(line.contains(" INFO "), "{line}");
                break addr.parse().unwrap();
            }
        };
        Self {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    /// Stops it with SIGTERM and returns its whole output, stdout then stderr.
    fn stop(mut self) -> String {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        let stdout = self.stdout.join().unwrap();
        let stderr = self.stderr.join().unwrap();
        assert!(status.success(), "{status}\n{stderr}");
        assert!(
            stderr.lines().any(|line| line.contains(" INFO ")
                && line.contains("stopping")
                && line.contains("SIGTERM")),
            "{stderr}"
        );
        assert!(
            stderr
                .lines()
                .last()
                .is_some_and(|line| line.ends_with("stopped")),
            "{stderr}"
        );
        stdout + &stderr
    }

    fn client(&self) -> Client {
        Client::builder()
            .proxy(self.addr.to_string(), true)
            .ratelimiter(None)
            .token(BOT_TOKEN.to_owned())
            .build()
    }
}

/// No secret and no raw path in `output`.
fn assert_nothing_leaked(output: &str, raw_paths: &[&str]) {
    for secret in [
        BOT_TOKEN,
        WEBHOOK_TOKEN,
        INTERACTION_TOKEN,
        QUERY_SECRET,
        HEADER_SECRET,
        METRICS_TOKEN,
    ]
    .iter()
    .chain(raw_paths)
    {
        assert!(!output.contains(secret), "{secret} in\n{output}");
    }
}

/// Requests twilight-http would never make, sent over a plain socket, each with the bot token,
/// a secret header and a secret query; they stay loopback-only and end with whatever status
/// the proxy (or Discord) chooses.
fn hostile_paths() -> Vec<String> {
    [
        format!("/api/v10/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}?wait=true&secret={QUERY_SECRET}"),
        format!("/api/v10/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}/messages/@original"),
        format!("/api/v10/interactions/{CHANNEL_ID}/{INTERACTION_TOKEN}/callback"),
        format!("/api/v10/channels/{CHANNEL_ID}/{WEBHOOK_TOKEN}/%2e%2e/{QUERY_SECRET}"),
        format!("/api/v10/channels/{CHANNEL_ID}/messages/../{WEBHOOK_TOKEN}"),
        format!("/api/v10/channels/{CHANNEL_ID}/messages?before={QUERY_SECRET}%00%ff"),
        format!("/api/v10/users/{QUERY_SECRET}é\u{7f}"),
        format!("/{WEBHOOK_TOKEN}/not-the-api?{QUERY_SECRET}"),
        format!("http://evil.example/api/v10/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"),
    ]
    .into()
}

async fn send_hostile(addr: SocketAddr) -> Vec<u16> {
    let auth = format!("Bot {BOT_TOKEN}");
    let mut statuses = Vec::new();
    for path in hostile_paths() {
        for method in ["GET", "POST"] {
            let reply = client::request(
                addr,
                method,
                &path,
                &[
                    ("authorization", &auth),
                    ("x-audit-log-reason", HEADER_SECRET),
                    ("content-length", "0"),
                ],
            )
            .await;
            // A request line hyper refuses is closed without an answer.
            if let Ok(reply) = reply {
                statuses.push(reply.status);
            }
        }
    }
    statuses
}

/// The status of a twilight-http call: its response's, or the error's.
fn status<T>(result: Result<twilight_http::Response<T>, twilight_http::Error>) -> u16 {
    match result {
        Ok(response) => response.status().get(),
        Err(error) => match error.kind() {
            twilight_http::error::ErrorType::Response { status, .. } => status.get(),
            other => panic!("no answer: {other:?}"),
        },
    }
}

/// What a bot does: typed calls with its token, a webhook token and an interaction token.
async fn send_typed(client: &Client) -> Vec<u16> {
    let mut statuses = vec![status(client.current_user().await)];
    statuses.push(status(
        client
            .create_message(Id::new(CHANNEL_ID))
            .content("hello")
            .await,
    ));
    statuses.push(status(
        client
            .execute_webhook(Id::new(WEBHOOK_ID), WEBHOOK_TOKEN)
            .content("from a webhook")
            .await,
    ));
    let response = InteractionResponse {
        kind: InteractionResponseType::DeferredUpdateMessage,
        data: None,
    };
    statuses.push(status(
        client
            .interaction(Id::new(302_050_872_383_242_240))
            .create_response(
                Id::new(snowflake_at(std::time::SystemTime::now())),
                INTERACTION_TOKEN,
                &response,
            )
            .await,
    ));
    statuses
}

fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_carry_no_token_query_or_raw_path() {
    install_tls();
    let fake = FakeDiscord::spawn().await.unwrap();
    let proxy = Proxy::start(&fake.url(), Some("trace"));

    let typed = send_typed(&proxy.client()).await;
    assert_eq!(typed, [200, 200, 204, 204]);
    let hostile = send_hostile(proxy.addr).await;
    assert!(!hostile.is_empty());
    assert!(hostile.iter().all(|status| *status < 500), "{hostile:?}");
    let forwarded = fake.requests();
    // The typed calls and the hostile requests the proxy let through did reach Discord.
    assert!(forwarded.len() > typed.len(), "{forwarded:?}");

    let output = tokio::task::spawn_blocking(move || proxy.stop())
        .await
        .unwrap();
    let mut raw_paths: Vec<String> = forwarded
        .iter()
        .map(|request| request.path.clone())
        .collect();
    raw_paths.extend(hostile_paths());
    let raw_paths: Vec<&str> = raw_paths.iter().map(String::as_str).collect();
    assert_nothing_leaked(&output, &raw_paths);
    // RUST_LOG=trace did turn the dependencies' lines on: the test saw what they log.
    assert!(output.lines().count() > 20, "{output}");
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_is_one_line_with_template_and_status() {
    install_tls();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    for rust_log in [Some("trace"), None] {
        let proxy = Proxy::start(&format!("http://{closed}"), rust_log);
        let client = proxy.client();
        let failures = 2;
        for _ in 0..failures {
            let failed = client
                .execute_webhook(Id::new(WEBHOOK_ID), WEBHOOK_TOKEN)
                .content("from a webhook")
                .await;
            assert_eq!(status(failed), 502);
        }

        let output = tokio::task::spawn_blocking(move || proxy.stop())
            .await
            .unwrap();
        let raw_path = format!("webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}");
        assert_nothing_leaked(&output, &[&raw_path]);
        let lines: Vec<&str> = output
            .lines()
            .filter(|line| line.contains("not forwarded"))
            .collect();
        assert_eq!(lines.len(), failures, "{output}");
        for line in lines {
            assert!(line.contains(" WARN "), "{line}");
            assert!(
                line.contains("endpoint=/webhooks/{webhook_id}/{webhook_token}"),
                "{line}"
            );
            assert!(line.contains(r#"method="POST""#), "{line}");
            assert!(line.contains("status=502"), "{line}");
        }
        // Nothing else warns about them.
        let warnings = output
            .lines()
            .filter(|line| line.contains(" WARN "))
            .count();
        assert_eq!(warnings, failures, "{output}");
        if rust_log.is_none() {
            // At the default level: the failures, the start line and the stop lines.
            let ours = output
                .lines()
                .filter(|line| !line.contains(" INFO opentelemetry:"))
                .count();
            assert_eq!(ours, failures + 3, "{output}");
        }
    }
}
