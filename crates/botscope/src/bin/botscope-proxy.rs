//! `botscope-proxy`: the Discord REST proxy as a standalone process, for bots split over
//! several processes that should share one ratelimiter and one set of REST metrics.
//!
//! ```text
//! botscope-proxy [--listen ADDR] [--upstream URL] [--metrics-listen ADDR]
//!                [--namespace NAME] [--bearer-token TOKEN] [--timeout SECS]
//!                [--body-timeout SECS] [--header-read-timeout SECS] [--max-connections N]
//! ```
//!
//! | option | variable | default |
//! |---|---|---|
//! | `--listen` | `BOTSCOPE_PROXY_LISTEN` | `127.0.0.1:8081` |
//! | `--upstream` | `BOTSCOPE_PROXY_UPSTREAM` | `https://discord.com` |
//! | `--metrics-listen` | `BOTSCOPE_PROXY_METRICS_LISTEN` | `127.0.0.1:9464` |
//! | `--namespace` | `BOTSCOPE_NAMESPACE` | `botscope` |
//! | `--bearer-token` | `BOTSCOPE_BEARER_TOKEN` | none: `/metrics` open |
//! | `--timeout` | `BOTSCOPE_PROXY_TIMEOUT` | 10 (seconds to Discord's response head) |
//! | `--body-timeout` | `BOTSCOPE_PROXY_BODY_TIMEOUT` | 30 (seconds without a body byte) |
//! | `--header-read-timeout` | `BOTSCOPE_PROXY_HEADER_READ_TIMEOUT` | 100 (seconds, also keep-alive idle) |
//! | `--max-connections` | `BOTSCOPE_PROXY_MAX_CONNECTIONS` | 256 |
//!
//! A flag wins over its variable. The metrics address has a `PROXY` variable of its own, so a
//! proxy started beside a bot never picks up the bot's `BOTSCOPE_LISTEN`; namespace and token
//! are meant to be shared. Values are checked by the same functions the builders use
//! ([`botscope::parse_listen_addr`], [`botscope::http::proxy::validate_upstream`],
//! [`botscope::validate_namespace`], [`botscope::validate_bearer_token`]): a bad one, an empty
//! bearer token included, exits with code 2 and clap's one-line error naming the option and
//! the value. A failure at start-up (a busy port) exits with code 1.
//!
//! Point each twilight-http client at it with `ClientBuilder::proxy("127.0.0.1:8081", true)`
//! and `ratelimiter(None)`.
//!
//! # Logs
//!
//! Lines go to stderr, filtered by `RUST_LOG` (default `info`) in the syntax of
//! tracing-subscriber's `Targets`: `info`, `botscope_http=debug,warn`, … (a level per target
//! prefix, no span or field filters). At `info`: one line at start (the addresses), one per
//! request the proxy could not forward (route template, method and status; never the path,
//! query, headers or body), one at stop. Crates that log through the `log` facade instead of
//! `tracing` (rustls) stay silent.
//!
//! # Traces
//!
//! Off unless `OTEL_TRACES_EXPORTER=otlp`; then each request's span (and its wait for the
//! bucket) goes over OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`, configured by the standard
//! `OTEL_*` variables (`botscope::traces::Traces`). A request with a W3C `traceparent` header
//! is a child of the span it names, so a bot process that propagates its context sees the
//! proxy's part inside its own trace; one without starts a trace of its own.

use std::error::Error as StdError;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use botscope::BuildError;
use botscope::http::DiscordProxy;
use botscope::http::body::DEFAULT_BODY_TIMEOUT;
use botscope::http::forward::{DEFAULT_TIMEOUT, DEFAULT_UPSTREAM};
use botscope::http::proxy::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, validate_upstream,
};
use botscope::http::ratelimit::DEFAULT_GLOBAL_LIMIT;
use clap::error::ErrorKind;
use clap::{CommandFactory as _, Parser};
use tracing::Level;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Where the proxy listens unless told otherwise.
const DEFAULT_PROXY_LISTEN: &str = "127.0.0.1:8081";

/// The Discord REST proxy of botscope, alone: one ratelimiter and one /metrics for every
/// process of a bot.
///
/// Point each twilight-http client at it with `ClientBuilder::proxy("127.0.0.1:8081", true)`
/// and `ratelimiter(None)`. Logs go to stderr, filtered by RUST_LOG (default `info`).
#[derive(Parser)]
#[command(name = "botscope-proxy", version)]
struct Args {
    /// Address the proxy listens on
    #[arg(
        long,
        value_name = "ADDR",
        env = "BOTSCOPE_PROXY_LISTEN",
        default_value = DEFAULT_PROXY_LISTEN,
        value_parser = botscope::parse_listen_addr,
    )]
    listen: SocketAddr,

    /// Where requests go: an http or https URL, a path prefix is kept
    #[arg(
        long,
        value_name = "URL",
        env = "BOTSCOPE_PROXY_UPSTREAM",
        default_value = DEFAULT_UPSTREAM,
    )]
    upstream: String,

    /// Address of /metrics and /healthz
    #[arg(
        long,
        value_name = "ADDR",
        env = "BOTSCOPE_PROXY_METRICS_LISTEN",
        default_value_t = botscope::DEFAULT_LISTEN,
        value_parser = botscope::parse_listen_addr,
    )]
    metrics_listen: SocketAddr,

    /// Prefix of metric names: letters, digits and underscores, not starting with a digit
    #[arg(
        long,
        value_name = "NAME",
        env = "BOTSCOPE_NAMESPACE",
        default_value = botscope::DEFAULT_NAMESPACE,
        value_parser = namespace,
    )]
    namespace: String,

    /// Require `Authorization: Bearer TOKEN` on /metrics, not empty (the variable keeps it out
    /// of `ps`) [default: none: /metrics is open]
    #[arg(
        long,
        value_name = "TOKEN",
        env = "BOTSCOPE_BEARER_TOKEN",
        hide_env_values = true
    )]
    bearer_token: Option<String>,

    /// Seconds to wait for Discord's response head before answering 504
    #[arg(
        long,
        value_name = "SECS",
        env = "BOTSCOPE_PROXY_TIMEOUT",
        default_value_t = DEFAULT_TIMEOUT.as_secs_f64(),
        value_parser = seconds,
    )]
    timeout: f64,

    /// Seconds Discord may go without sending a byte of a response body before the body is cut
    #[arg(
        long,
        value_name = "SECS",
        env = "BOTSCOPE_PROXY_BODY_TIMEOUT",
        default_value_t = DEFAULT_BODY_TIMEOUT.as_secs_f64(),
        value_parser = seconds,
    )]
    body_timeout: f64,

    /// Seconds a connection may take to send a request head, also the keep-alive idle timeout
    /// (keep it above the 90 s the bot's client keeps an idle connection)
    #[arg(
        long,
        value_name = "SECS",
        env = "BOTSCOPE_PROXY_HEADER_READ_TIMEOUT",
        default_value_t = DEFAULT_HEADER_READ_TIMEOUT.as_secs_f64(),
        value_parser = seconds,
    )]
    header_read_timeout: f64,

    /// Connections past which a new one closes one that has waited a second or more for a
    /// request (never-used ones first, then the one idle longest); up to twice as many are let
    /// in while none has, and one with a request in flight is never closed
    #[arg(
        long,
        value_name = "N",
        env = "BOTSCOPE_PROXY_MAX_CONNECTIONS",
        default_value_t = DEFAULT_MAX_CONNECTIONS,
        value_parser = max_connections,
    )]
    max_connections: usize,

    /// The bot's global limit in requests per second (Discord's default is 50; large bots can
    /// be granted more); interaction and webhook routes are exempt
    #[arg(
        long,
        value_name = "PER_SECOND",
        env = "BOTSCOPE_PROXY_GLOBAL_LIMIT",
        default_value_t = DEFAULT_GLOBAL_LIMIT,
        value_parser = global_limit,
    )]
    global_limit: u16,
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("listen", &self.listen)
            .field("upstream", &self.upstream)
            .field("metrics_listen", &self.metrics_listen)
            .field("namespace", &self.namespace)
            // never print the token itself
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .field("body_timeout", &self.body_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("max_connections", &self.max_connections)
            .field("global_limit", &self.global_limit)
            .finish()
    }
}

fn namespace(value: &str) -> Result<String, BuildError> {
    botscope::validate_namespace(value).map(|()| value.to_owned())
}

impl Args {
    /// Parses and checks the command line. The bearer token and the upstream (which may carry
    /// credentials) are checked here rather than by a value parser, whose error would repeat
    /// the value.
    fn try_parse_checked<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args = Self::try_parse_from(args)?;
        let refuse = |flag: &str, error: &dyn StdError| {
            Self::command().error(
                ErrorKind::ValueValidation,
                format!("invalid value for '{flag}': {error}"),
            )
        };
        if let Some(token) = &args.bearer_token {
            botscope::validate_bearer_token(token)
                .map_err(|error| refuse("--bearer-token <TOKEN>", &error))?;
        }
        validate_upstream(&args.upstream).map_err(|error| refuse("--upstream <URL>", &error))?;
        Ok(args)
    }
}

/// A timeout in seconds: a positive, finite number (fractions allowed).
fn seconds(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && Duration::try_from_secs_f64(secs).is_ok() => Ok(secs),
        _ => Err("expected a positive number of seconds, such as 30 or 0.5".to_owned()),
    }
}

/// At least one connection.
fn max_connections(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(max) if max > 0 => Ok(max),
        _ => Err("expected a whole number of connections, at least 1".to_owned()),
    }
}

/// At least one request per second.
fn global_limit(value: &str) -> Result<u16, String> {
    match value.trim().parse::<u16>() {
        Ok(limit) if limit > 0 => Ok(limit),
        _ => Err("expected a whole number of requests per second, from 1 to 65535".to_owned()),
    }
}

/// Installs the process's subscriber: the stderr log lines, filtered by `RUST_LOG` (default
/// `info`), beside `telemetry`'s trace export.
fn install_logs(telemetry: &botscope::Telemetry) {
    let default = || Targets::new().with_default(Level::INFO);
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec.parse().unwrap_or_else(|error| {
            // No subscriber yet to carry this line.
            eprintln!("botscope-proxy: RUST_LOG is not a filter ({error}); logging at info");
            default()
        }),
        _ => default(),
    };
    tracing_subscriber::registry()
        .with(telemetry.tracing_layer())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_filter(filter),
        )
        .init();
}

/// `error` and its sources, `: `-separated: the sources say which port or file.
fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(error) = source {
        let _ = write!(text, ": {error}");
        source = error.source();
    }
    text
}

/// Resolves on ctrl-c or, on Unix, SIGTERM.
async fn stopped() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
        }
    }
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::warn!(%error, "cannot wait for ctrl-c; stopping");
    }
    "SIGINT"
}

async fn run(args: Args) -> Result<(), String> {
    // The binary is the application: it picks the crypto provider of its TLS to Discord.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut telemetry = botscope::Telemetry::builder()
        .namespace(&args.namespace)
        .listen(args.metrics_listen)
        .traces(botscope::traces::Traces::from_env());
    if let Some(token) = args.bearer_token {
        telemetry = telemetry.bearer_token(token);
    }
    let telemetry = telemetry.install().map_err(|error| {
        let what = match error.kind() {
            botscope::BuildErrorType::UnsupportedTracesExporter { .. }
            | botscope::BuildErrorType::UnsupportedTraceProtocol { .. }
            | botscope::BuildErrorType::InvalidSampleRatio { .. }
            | botscope::BuildErrorType::TraceExporter
            | botscope::BuildErrorType::InvalidTraceQueueSize => "cannot export traces",
            _ => "cannot serve /metrics",
        };
        format!("{what}: {}", chain(&error))
    })?;
    install_logs(&telemetry);
    let proxy = DiscordProxy::builder()
        .listen(args.listen)
        .upstream(args.upstream.clone())
        // `seconds` accepted only what `Duration` can hold.
        .timeout(Duration::from_secs_f64(args.timeout))
        .body_timeout(Duration::from_secs_f64(args.body_timeout))
        .header_read_timeout(Duration::from_secs_f64(args.header_read_timeout))
        .max_connections(args.max_connections)
        .global_limit(args.global_limit)
        .spawn()
        .await
        .map_err(|error| format!("cannot start the proxy: {}", chain(&error)))?;
    let metrics = telemetry.local_addr().unwrap_or(args.metrics_listen);
    tracing::info!(
        "forwarding http://{} to {}; metrics on http://{metrics}/metrics",
        proxy.local_addr(),
        args.upstream,
    );
    let signal = stopped().await;
    tracing::info!(signal, "stopping: letting requests in flight finish");
    proxy.shutdown().await;
    telemetry.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    // Exits with code 2 and clap's error on a bad value, 0 after --help or --version.
    let args = Args::try_parse_checked(std::env::args_os()).unwrap_or_else(|error| error.exit());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            // Fatal errors go to stderr whatever RUST_LOG filters.
            eprintln!("botscope-proxy: error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("botscope-proxy: error: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_is_well_formed() {
        Args::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_checked(std::iter::once("botscope-proxy").chain(args.iter().copied()))
    }

    #[test]
    fn debug_never_shows_the_bearer_token() {
        let args = parse(&["--bearer-token", "hunter2"]).unwrap();
        assert_eq!(args.bearer_token.as_deref(), Some("hunter2"));
        assert!(!format!("{args:?}").contains("hunter2"));
    }

    #[test]
    fn bad_values_are_the_builders_errors() {
        for (flag, value, message) in [
            (
                "--listen",
                "nope",
                botscope::parse_listen_addr("nope").unwrap_err().to_string(),
            ),
            (
                "--metrics-listen",
                "localhost:1",
                botscope::parse_listen_addr("localhost:1")
                    .unwrap_err()
                    .to_string(),
            ),
            (
                "--upstream",
                "discord.com",
                validate_upstream("discord.com").unwrap_err().to_string(),
            ),
            (
                "--namespace",
                "9lives",
                botscope::validate_namespace("9lives")
                    .unwrap_err()
                    .to_string(),
            ),
            (
                "--bearer-token",
                "",
                botscope::validate_bearer_token("").unwrap_err().to_string(),
            ),
        ] {
            let error = parse(&[flag, value]).unwrap_err();
            assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
            assert_eq!(error.exit_code(), 2);
            let text = error.to_string();
            assert!(text.contains(flag), "{text}");
            assert!(text.contains(&message), "{text}");
        }
    }

    #[test]
    fn a_refused_secret_is_never_repeated() {
        for (flag, value) in [
            ("--bearer-token", "hunter2 secret"),
            ("--bearer-token", "hunter2\n"),
            ("--upstream", "https://user:hunter2@discord.com"),
            ("--upstream", "https://discord.com/?key=hunter2"),
        ] {
            let error = parse(&[flag, value]).unwrap_err();
            assert_eq!(error.exit_code(), 2);
            let text = error.to_string();
            assert!(text.contains(flag), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
