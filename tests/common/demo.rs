//! The `disruptor` demo bot as a child process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use botscope_testkit::client;

use crate::prometheus::free_port;

/// The demo binary: `BOTSCOPE_DEMO_BIN`, else `examples/disruptor` beside this test's
/// target directory (`cargo build --example disruptor` puts it there; `.ci/run` does).
pub fn binary() -> PathBuf {
    let path = std::env::var_os("BOTSCOPE_DEMO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/debug/deps/<test> → target/debug/examples/disruptor
            let exe = std::env::current_exe().expect("test executable path");
            exe.parent()
                .and_then(|deps| deps.parent())
                .map(|profile| profile.join("examples").join("disruptor"))
                .unwrap_or_default()
        });
    assert!(
        path.is_file(),
        "demo binary not found at {}: run `cargo build --example disruptor` first (.ci/run does) or set BOTSCOPE_DEMO_BIN",
        path.display()
    );
    path
}

/// A running demo, killed on drop.
#[derive(Debug)]
pub struct Demo {
    child: Child,
    metrics: SocketAddr,
}

impl Demo {
    /// Starts the demo on the embedded fake Discord with shards `first..=last` of `total`,
    /// and waits until its `/metrics` answers.
    pub async fn start(first: u32, last: u32, total: u32) -> Self {
        Self::start_with(first, last, total, &[]).await
    }

    /// [`start`](Self::start) with the extra environment variables `env` (e.g.
    /// `BOTSCOPE_NAMING`).
    pub async fn start_with(first: u32, last: u32, total: u32, env: &[(&str, &str)]) -> Self {
        Self::start_logged(first, last, total, env, Stdio::inherit()).await
    }

    /// [`start_with`](Self::start_with), its log lines (stderr) sent to `stderr` (a file,
    /// say, for a test that reads them).
    pub async fn start_logged(
        first: u32,
        last: u32,
        total: u32,
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Self {
        let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = Command::new(binary())
            .env_remove("DISCORD_TOKEN")
            .env_remove("DATABASE_URL")
            .env_remove("BOTSCOPE_NAMING")
            .env("BOTSCOPE_LISTEN", metrics.to_string())
            .env("DISRUPTOR_SHARDS", format!("{first}-{last}"))
            .env("DISRUPTOR_SHARD_TOTAL", total.to_string())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the demo");
        let mut demo = Self { child, metrics };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(reply) = client::get(metrics, "/healthz").await
                && reply.status == 200
            {
                return demo;
            }
            if let Ok(Some(status)) = demo.child.try_wait() {
                panic!("the demo exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not serve /metrics within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Where it serves `/metrics`.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
