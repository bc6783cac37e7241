//! 2,000 connections held open with half-sent request heads: the bot's requests through the
//! proxy are still answered at once, the proxy holds no more sockets than its connection cap,
//! and its memory stays flat.
//!
//! Alone in its test binary: it reads the open files and the resident memory of the whole
//! process, which no sibling test may move meanwhile.

mod common;

use std::time::{Duration, Instant};

use botscope_http::proxy::DEFAULT_MAX_CONNECTIONS;
use botscope_testkit::TestMetrics;
use botscope_testkit::rest::FakeDiscord;
use common::{BOT_TOKEN, proxy_to};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use twilight_http::Client;

const HELD: usize = 2_000;

/// Raises the soft limit on open files to `needed`, or fails saying why it cannot.
fn allow_open_files(needed: u64) {
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|current| current >= needed) {
        return;
    }
    if let Some(hard) = limit.maximum {
        assert!(
            hard >= needed,
            "this test holds {needed} files open but the hard limit is {hard}: raise it \
             (`ulimit -Hn {needed}` as root, or LimitNOFILE in the service)"
        );
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(needed),
            maximum: limit.maximum,
        },
    )
    .expect("raise the soft limit on open files");
}

/// Open files of this process: the test's sockets and the proxy's.
fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|value| value.trim().parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// A request the bot makes, timed.
async fn timed(call: impl std::future::IntoFuture<Output = Result<(), twilight_http::Error>>) {
    let started = Instant::now();
    // Starved, it would wait for a held connection's header read timeout (100 s).
    tokio::time::timeout(Duration::from_secs(10), call.into_future())
        .await
        .unwrap_or_else(|_| panic!("no answer within 10 s"))
        .expect("answered");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_half_requests_neither_starve_the_bot_nor_fill_the_file_table() {
    // Both ends of every held connection live in this process, plus the proxy's upstream
    // connections and the runtime's own files.
    let needed = (HELD + DEFAULT_MAX_CONNECTIONS + 512) as u64;
    allow_open_files(needed);
    let fake = FakeDiscord::spawn().await.unwrap();
    let metrics = TestMetrics::new("disruptor");
    let (proxy, bot) = proxy_to(&fake, &metrics, |builder| builder).await;
    // The bot is running: its client has a keep-alive connection in its pool.
    bot.current_user().await.unwrap();
    let files_before = open_files();
    let rss_before = rss();

    let mut held = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
        // The proxy may have closed it already to make room: that is what it should do.
        let _ = stream
            .write_all(b"GET /api/v10/users/@me HTTP/1.1\r\nHost: x\r\n")
            .await;
        held.push(stream);
    }

    // The bot's pooled connection, or a new one if the proxy closed that one while idle.
    timed(async { bot.current_user().await.map(drop) }).await;
    // A client with no connection yet (another process of the bot) gets in too.
    let newcomer = proxy
        .configure(Client::builder().token(BOT_TOKEN.to_owned()))
        .build();
    timed(async { newcomer.current_user().await.map(drop) }).await;

    let proxy_side = open_files().saturating_sub(files_before + HELD);
    assert!(
        // Young connections may go over the cap, up to twice it.
        proxy_side <= 2 * DEFAULT_MAX_CONNECTIONS + 16,
        "the proxy holds {proxy_side} more files than the held sockets, cap {DEFAULT_MAX_CONNECTIONS}"
    );
    let growth = rss().saturating_sub(rss_before);
    assert!(
        growth < 50 * 1024 * 1024,
        "resident memory grew by {} MiB",
        growth / (1024 * 1024)
    );
    eprintln!(
        "{HELD} held: proxy side {proxy_side} files, rss +{} KiB",
        growth / 1024
    );
    drop(held);
    proxy.shutdown().await;
}
