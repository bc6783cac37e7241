//! The disruptor demo bot.
//!
//! For now it installs telemetry under the namespace `disruptor`, prints where the metrics
//! are served and runs until Ctrl-C. Set `BOTSCOPE_LISTEN` to serve elsewhere than
//! 127.0.0.1:9464.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let listen =
        std::env::var("BOTSCOPE_LISTEN").unwrap_or_else(|_| botscope::DEFAULT_LISTEN.to_string());
    let telemetry = match botscope::Telemetry::builder()
        .namespace("disruptor")
        .service_name("disruptor")
        .listen(listen)
        .install()
    {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("disruptor: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(addr) = telemetry.local_addr() {
        println!("metrics on http://{addr}/metrics");
    }
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("disruptor: cannot listen for Ctrl-C: {error}");
    }
    telemetry.shutdown().await;
    ExitCode::SUCCESS
}
