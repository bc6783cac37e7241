//! A bot author's first five minutes, as a test: a fresh crate made of the README's
//! `Cargo.toml` block and its whole-bot program (twilight's book ping bot with botscope added)
//! builds, runs against the fake Discord and serves every family of the parts it wraps within
//! 15 seconds.
//!
//! The crate is built in its own target directory beside this test's (the outer `cargo test`
//! holds its own), with this workspace's `Cargo.lock` as a start, and `botscope` pointed at the
//! workspace by path: everything else resolves as it would for the user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use botscope_testkit::gateway::FakeGateway;
use botscope_testkit::rest::FakeDiscord;
use botscope_testkit::{Scrape, client};
use botscope_tests::prometheus::free_port;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// The first fenced block of `lang` after the heading `heading` in the root README.
fn readme_block(heading: &str, lang: &str) -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let after = readme
        .split_once(heading)
        .unwrap_or_else(|| panic!("README.md has no {heading:?}"))
        .1;
    let fence = format!("```{lang}\n");
    let body = after
        .split_once(&fence)
        .unwrap_or_else(|| panic!("no ```{lang} block after {heading:?}"))
        .1;
    body.split_once("\n```")
        .expect("a closed block")
        .0
        .to_owned()
}

/// The README's dependencies, with `botscope` taken from this workspace.
fn manifest() -> String {
    let dependencies = readme_block("## Add it to a bot", "toml");
    let botscope = repo().join("crates/botscope");
    let dependencies = dependencies
        .lines()
        .map(
            |line| match line.strip_prefix("botscope = { version = \"0.1\",") {
                Some(rest) => format!(
                    "botscope = {{ path = {:?},{rest}",
                    botscope.display().to_string()
                ),
                None => line.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        dependencies.contains("path ="),
        "the botscope line moved:\n{dependencies}"
    );
    format!(
        "[package]\nname = \"pingbot\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [workspace]\n\n{dependencies}\n"
    )
}

/// Writes the crate and builds it; the binary's path.
fn build() -> PathBuf {
    // target/debug/deps/<this test> → target
    let target = std::env::current_exe()
        .expect("test executable")
        .ancestors()
        .nth(3)
        .expect("a target directory")
        .to_path_buf();
    let root = target.join("readme-bot");
    std::fs::create_dir_all(root.join("src")).expect("crate folder");
    std::fs::write(root.join("Cargo.toml"), manifest()).expect("Cargo.toml");
    std::fs::write(
        root.join("src/main.rs"),
        readme_block("### A whole bot", "rust,ignore"),
    )
    .expect("main.rs");
    if !root.join("Cargo.lock").exists() {
        std::fs::copy(repo().join("Cargo.lock"), root.join("Cargo.lock")).expect("Cargo.lock");
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "--quiet", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", root.join("target"))
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the README's bot does not build");
    root.join("target/debug/pingbot")
}

/// The bot as a child process, killed on drop.
struct Bot(Child);

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
#[ignore = "builds a fresh crate (minutes the first time): run by .ci/run"]
async fn the_readme_bot_builds_and_serves_every_family_within_15_seconds() {
    let binary = tokio::task::spawn_blocking(build).await.expect("build");

    let rest = FakeDiscord::spawn().await.expect("fake REST");
    let gateway = FakeGateway::builder()
        .heartbeat_interval(Duration::from_millis(500))
        .spawn()
        .await
        .expect("fake gateway");
    let port = free_port();
    let started = Instant::now();
    let _bot = Bot(Command::new(&binary)
        .env("DISCORD_TOKEN", "fake-token-for-the-readme-bot")
        .env("DISCORD_API", rest.url())
        .env("DISCORD_GATEWAY", gateway.url())
        .env("METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("the bot starts"));

    let families = [
        "pingbot_discord_api_requests_total",
        "pingbot_discord_api_request_duration_seconds_bucket",
        "pingbot_gateway_events_total",
        "pingbot_gateway_latency_seconds_bucket",
        "pingbot_gateway_shard_status",
        "pingbot_database_queries_total",
        "pingbot_database_query_duration_seconds_bucket",
        "pingbot_database_connections",
        "pingbot_scheduler_jobs_total",
        "pingbot_scheduler_job_duration_seconds_bucket",
        "pingbot_scheduler_queue_depth",
        "pingbot_system_tasks",
        "process_resident_memory_bytes",
    ];
    let mut missing = families.to_vec();
    let mut pinged = false;
    while !missing.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not live 15 s after start: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !pinged && gateway.identifies(0) > 0 {
            gateway.message_create(0, 10, "!ping");
            pinged = true;
        }
        let Ok(reply) = client::get(([127, 0, 0, 1], port).into(), "/metrics").await else {
            continue;
        };
        let scrape = Scrape::parse(&reply.text());
        missing.retain(|family| !scrape.has(family));
    }
    // The ping was answered through the proxy: Pong! reached the fake.
    assert!(
        rest.requests()
            .iter()
            .any(|request| request.path.ends_with("/channels/10/messages")),
        "no answer to !ping"
    );
}
