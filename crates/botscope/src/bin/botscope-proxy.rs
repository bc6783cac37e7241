//! `botscope-proxy`: the Discord REST proxy as a standalone process, for bots split over
//! several processes that should share one ratelimiter and one set of REST metrics.
//!
//! ```text
//! botscope-proxy --listen 127.0.0.1:8081 [--upstream https://discord.com]
//!                [--metrics-listen 127.0.0.1:9464] [--namespace botscope] [--bearer-token T]
//! ```
//!
//! Point each twilight-http client at it with `ClientBuilder::proxy("127.0.0.1:8081", true)`
//! and `ratelimiter(None)`. Bad arguments exit with code 2, failures at start-up with 1.

use std::net::SocketAddr;
use std::process::ExitCode;

use botscope::http::DiscordProxy;

const USAGE: &str = "\
usage: botscope-proxy --listen ADDR [--upstream URL] [--metrics-listen ADDR] [--namespace NAME] [--bearer-token T]

  --listen ADDR          address the proxy listens on, e.g. 127.0.0.1:8081 (required)
  --upstream URL         where requests go (default https://discord.com)
  --metrics-listen ADDR  address of /metrics (default 127.0.0.1:9464)
  --namespace NAME       prefix of metric names (default botscope)
  --bearer-token T       require `Authorization: Bearer T` on /metrics
                         (or set BOTSCOPE_BEARER_TOKEN, which keeps it out of `ps`)
  -h, --help             print this help";

#[derive(Debug, PartialEq)]
struct Args {
    listen: SocketAddr,
    upstream: String,
    metrics_listen: SocketAddr,
    namespace: String,
    bearer_token: Option<String>,
}

#[derive(Debug, PartialEq)]
enum Parsed {
    Run(Args),
    Help,
}

fn parse_addr(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: `{value}` is not an address like 127.0.0.1:8081"))
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut metrics_listen = None;
    let mut namespace = None;
    let mut bearer_token = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "--listen" => &mut listen,
            "--upstream" => &mut upstream,
            "--metrics-listen" => &mut metrics_listen,
            "--namespace" => &mut namespace,
            "--bearer-token" => &mut bearer_token,
            other => return Err(format!("unknown argument `{other}`")),
        };
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .filter(|value| !value.starts_with("--"))
                .ok_or_else(|| format!("{flag} needs a value"))?,
        };
        if slot.replace(value).is_some() {
            return Err(format!("{flag} given twice"));
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    let upstream = upstream.unwrap_or_else(|| "https://discord.com".to_owned());
    if !(upstream.starts_with("http://") || upstream.starts_with("https://")) {
        return Err(format!(
            "--upstream: `{upstream}` is not an http or https url"
        ));
    }
    let namespace = namespace.unwrap_or_else(|| "botscope".to_owned());
    let valid_namespace = namespace
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_namespace {
        return Err(format!(
            "--namespace: `{namespace}` must match [a-zA-Z_][a-zA-Z0-9_]*"
        ));
    }
    Ok(Parsed::Run(Args {
        listen: parse_addr("--listen", &listen)?,
        upstream,
        metrics_listen: parse_addr(
            "--metrics-listen",
            metrics_listen.as_deref().unwrap_or("127.0.0.1:9464"),
        )?,
        namespace,
        bearer_token: bearer_token
            .or_else(|| std::env::var("BOTSCOPE_BEARER_TOKEN").ok())
            .filter(|token| !token.is_empty()),
    }))
}

/// Resolves on ctrl-c or, on Unix, SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("botscope-proxy: cannot wait for ctrl-c ({error}); stopping");
    }
}

async fn run(args: Args) -> Result<(), String> {
    // The binary is the application: it picks the crypto provider of its TLS to Discord.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut telemetry = botscope::Telemetry::builder()
        .namespace(&args.namespace)
        .listen(args.metrics_listen);
    if let Some(token) = args.bearer_token {
        telemetry = telemetry.bearer_token(token);
    }
    let telemetry = telemetry
        .install()
        .map_err(|error| format!("cannot serve /metrics: {error}"))?;
    let proxy = DiscordProxy::builder()
        .listen(args.listen)
        .upstream(args.upstream.clone())
        .spawn()
        .await
        .map_err(|error| format!("cannot start the proxy: {error}"))?;
    eprintln!(
        "botscope-proxy: forwarding http://{} to {}; metrics on http://{}/metrics",
        proxy.local_addr(),
        args.upstream,
        telemetry
            .local_addr()
            .map_or_else(|| args.metrics_listen.to_string(), |addr| addr.to_string()),
    );
    stopped().await;
    proxy.shutdown().await;
    telemetry.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("botscope-proxy: error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
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
    use super::*;

    fn args(list: &[&str]) -> Result<Parsed, String> {
        parse(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_flags_with_defaults() {
        let Ok(Parsed::Run(parsed)) =
            args(&["--listen", "127.0.0.1:8081", "--namespace=disruptor"])
        else {
            panic!("valid arguments");
        };
        assert_eq!(parsed.listen, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(parsed.upstream, "https://discord.com");
        assert_eq!(parsed.metrics_listen, "127.0.0.1:9464".parse().unwrap());
        assert_eq!(parsed.namespace, "disruptor");
        assert_eq!(args(&["--help"]), Ok(Parsed::Help));
    }

    #[test]
    fn bad_arguments_are_clear_errors() {
        assert_eq!(args(&[]).unwrap_err(), "--listen is required");
        assert!(
            args(&["--listen", "nope"])
                .unwrap_err()
                .contains("not an address")
        );
        assert!(args(&["--listen"]).unwrap_err().contains("needs a value"));
        assert!(args(&["--bogus"]).unwrap_err().contains("unknown argument"));
        assert!(
            args(&["--listen", "127.0.0.1:1", "--upstream", "discord.com"])
                .unwrap_err()
                .contains("--upstream")
        );
        assert!(
            args(&["--listen", "127.0.0.1:1", "--namespace", "9bad"])
                .unwrap_err()
                .contains("--namespace")
        );
    }
}
