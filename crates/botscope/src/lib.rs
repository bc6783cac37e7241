#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod facade_error;
#[cfg(target_os = "linux")]
mod process;
pub mod runtime;
mod server;
pub mod system;
mod telemetry;
#[cfg(feature = "traces")]
pub mod traces;

pub use error::{BuildError, BuildErrorType};
pub use facade_error::{Error, ErrorType};
pub use telemetry::{
    DEFAULT_LISTEN, DEFAULT_NAMESPACE, IntoListenAddr, Telemetry, TelemetryBuilder,
    parse_listen_addr, validate_bearer_token, validate_namespace,
};

/// The shared vocabulary: label caps, gauge guards, buckets, status values.
pub use botscope_core as core;
/// Which names the REST and database families carry: see [`TelemetryBuilder::naming`].
pub use botscope_core::naming::Naming;
/// The Prometheus exporter wiring behind [`Telemetry`]: registry, meter provider, exposition
/// text.
pub use botscope_exporter as exporter;

/// Discord REST metrics: tower layers, route templates and the loopback proxy.
#[cfg(feature = "http")]
pub use botscope_http as http;

/// The twilight-gateway event tap, identify queue, voice and Lavalink metrics; with feature
/// `cache`, the sizes of a twilight-cache-inmemory cache.
#[cfg(feature = "gateway")]
pub use botscope_gateway as gateway;

/// The sqlx pool wrapper: for sqlx 0.9 at its root, for sqlx 0.8 in `sqlx::sqlx08`.
#[cfg(any(feature = "sqlx", feature = "sqlx08"))]
pub use botscope_sqlx as sqlx;

/// The scheduled job decorator.
#[cfg(feature = "jobs")]
pub use botscope_jobs as jobs;

/// Re-exported so users name the same OpenTelemetry version botscope uses.
pub use opentelemetry;
