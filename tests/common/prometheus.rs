//! A real Prometheus server for end-to-end tests.
//!
//! The binaries come from Debian's `prometheus` package, unpacked (not installed) by `.ci/run`
//! into `~/.cache/botscope/prometheus`; `BOTSCOPE_PROMETHEUS_BIN` and `BOTSCOPE_PROMTOOL_BIN`
//! point elsewhere.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use botscope_testkit::client;
use serde_json::Value;

/// The unpack location `.ci/run` uses.
fn cached(binary: &str) -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home)
        .join(".cache/botscope/prometheus/usr/bin")
        .join(binary)
}

fn binary(env: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| cached(name), PathBuf::from);
    assert!(
        path.is_file(),
        "{name} not found at {}: run `bash .ci/run` once (it unpacks Debian's prometheus package) or set {env}",
        path.display()
    );
    path
}

/// The `promtool` binary.
pub fn promtool() -> PathBuf {
    binary("BOTSCOPE_PROMTOOL_BIN", "promtool")
}

/// A free loopback port (racy in theory, fine for tests that bind it right away).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running Prometheus server, killed on drop.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping each `(job, target)` every second, with `rule_files`
    /// loaded, and waits until it is ready.
    pub async fn start(targets: &[(&str, SocketAddr)], rule_files: &[PathBuf]) -> Self {
        let dir = TempDir::new("prometheus");
        let mut config =
            String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n");
        if !rule_files.is_empty() {
            config.push_str("rule_files:\n");
            for file in rule_files {
                config.push_str(&format!(
                    "  - {:?}\n",
                    file.canonicalize().expect("rule file exists")
                ));
            }
        }
        config.push_str("scrape_configs:\n");
        let mut jobs: Vec<&str> = targets.iter().map(|(job, _)| *job).collect();
        jobs.dedup();
        for job in jobs {
            let addrs: Vec<String> = targets
                .iter()
                .filter(|(j, _)| *j == job)
                .map(|(_, addr)| format!("\"{addr}\""))
                .collect();
            config.push_str(&format!(
                "  - job_name: {job:?}\n    static_configs:\n      - targets: [{}]\n",
                addrs.join(", ")
            ));
        }
        let config_path = dir.path.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write config");

        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let child = Command::new(binary("BOTSCOPE_PROMETHEUS_BIN", "prometheus"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start prometheus");
        let mut server = Self {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("prometheus exited at start-up ({status}); its log is above");
            }
            if let Ok(reply) = client::get(addr, "/-/ready").await
                && reply.status == 200
            {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The address of its HTTP API.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET path` on the API, parsed as JSON.
    pub async fn api(&self, path: &str) -> Value {
        let reply = client::get(self.addr, path)
            .await
            .expect("prometheus answers");
        serde_json::from_slice(&reply.body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", reply.text()))
    }

    /// An instant query; panics if Prometheus rejects the expression.
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let json = self
            .api(&format!("/api/v1/query?query={}", encode(expr)))
            .await;
        assert_eq!(json["status"], "success", "{expr}: {json}");
        json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `expr` until it returns at least one sample, or panics after `timeout`.
    pub async fn wait_for(&self, expr: &str, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let result = self.query(expr).await;
            if !result.is_empty() {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "{expr} returned no data within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A directory removed on drop.
#[derive(Debug)]
pub struct TempDir {
    /// Its path.
    pub path: PathBuf,
}

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path =
            std::env::temp_dir().join(format!("botscope-{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Lints exposition text with `promtool check metrics`, through `.ci/promtool-check-metrics`
/// so that only the findings of `examples/prometheus/promtool-allowed-lints.txt` pass.
pub fn check_metrics(scrape: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.ci/promtool-check-metrics");
    let mut check = Command::new("bash")
        .arg(script)
        .arg(promtool())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    let mut stdin = check.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, scrape.as_bytes()).expect("write the scrape");
    drop(stdin);
    let output = check.wait_with_output().expect("promtool ends");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
