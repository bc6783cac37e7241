//! The error [`Telemetry::builder`](crate::Telemetry::builder) returns.

use std::error::Error;
use std::fmt;

/// Installing telemetry failed. See [`kind`](Self::kind) for why.
#[derive(Debug)]
pub struct BuildError {
    kind: BuildErrorType,
    source: Option<Box<dyn Error + Send + Sync>>,
}

impl BuildError {
    pub(crate) fn new(kind: BuildErrorType) -> Self {
        Self { kind, source: None }
    }

    pub(crate) fn with_source(
        kind: BuildErrorType,
        source: impl Into<Box<dyn Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// What went wrong.
    pub const fn kind(&self) -> &BuildErrorType {
        &self.kind
    }

    /// The kind and the underlying error, if any.
    pub fn into_parts(self) -> (BuildErrorType, Option<Box<dyn Error + Send + Sync>>) {
        (self.kind, self.source)
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BuildErrorType::InvalidNamespace { namespace } => write!(
                f,
                "invalid metric namespace {namespace:?}: use letters, digits and underscores, not starting with a digit"
            ),
            BuildErrorType::InvalidListenAddress { address } => write!(
                f,
                "invalid listen address {address:?}: expected an IP address and port such as 127.0.0.1:9464"
            ),
            BuildErrorType::Bind { address } => write!(
                f,
                "cannot listen on {address}: is another process using the port?"
            ),
            BuildErrorType::EmptyBearerToken => {
                f.write_str("the bearer token is empty: pass a non-empty token or none at all")
            }
            // Never the token itself, not even the offending character.
            BuildErrorType::InvalidBearerToken => f.write_str(
                "the bearer token has whitespace, a control character or a non-ascii character, which no scraper could send: check for a trailing newline",
            ),
            BuildErrorType::NoRuntime => f.write_str(
                "no tokio runtime: call install() from inside a tokio runtime (for example in #[tokio::main])",
            ),
            BuildErrorType::Exporter => f.write_str("the prometheus exporter could not be built"),
            BuildErrorType::InvalidRuntimeLagPeriod => f.write_str(
                "the runtime lag period is zero: pass a period such as 100ms, or None for no probe",
            ),
            BuildErrorType::UnsupportedTracesExporter { value } => write!(
                f,
                "unsupported OTEL_TRACES_EXPORTER={value:?}: use otlp, or none for no traces"
            ),
            BuildErrorType::UnsupportedTraceProtocol { protocol } => write!(
                f,
                "unsupported OTLP protocol {protocol:?}: botscope exports http/protobuf"
            ),
            BuildErrorType::InvalidSampleRatio { ratio } => write!(
                f,
                "invalid trace sample ratio {ratio}: use a number from 0.0 (no trace) to 1.0 (every trace)"
            ),
            BuildErrorType::TraceExporter => {
                f.write_str("the OTLP trace exporter could not be built")
            }
            BuildErrorType::InvalidTraceQueueSize => f.write_str(
                "the trace queue size is zero: every span would be dropped; pass at least 1",
            ),
        }
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_ref().map(|e| &**e as &(dyn Error + 'static))
    }
}

/// Why installing telemetry failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildErrorType {
    /// The namespace does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    InvalidNamespace {
        /// The namespace given.
        namespace: String,
    },
    /// The listen address is not an `IP:port`.
    InvalidListenAddress {
        /// The address given.
        address: String,
    },
    /// The listen address could not be bound, usually because it is in use.
    Bind {
        /// The address.
        address: std::net::SocketAddr,
    },
    /// The bearer token is empty.
    EmptyBearerToken,
    /// The bearer token has a character an `Authorization` header cannot carry as sent
    /// (whitespace, a control character, non-ASCII), so no scrape could ever match it.
    InvalidBearerToken,
    /// `install` was called outside a tokio runtime.
    NoRuntime,
    /// The OpenTelemetry Prometheus exporter or the process collector failed to register.
    Exporter,
    /// [`TelemetryBuilder::runtime_lag`](crate::TelemetryBuilder::runtime_lag) was given a
    /// period of zero.
    InvalidRuntimeLagPeriod,
    /// `OTEL_TRACES_EXPORTER` names an exporter other than `otlp` or `none` (read by
    /// `Traces::from_env`, feature `traces`).
    UnsupportedTracesExporter {
        /// The variable's value.
        value: String,
    },
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (or its traces variant) is not `http/protobuf`.
    UnsupportedTraceProtocol {
        /// The variable's value.
        protocol: String,
    },
    /// A trace sample ratio outside `0.0..=1.0` (or not a number).
    InvalidSampleRatio {
        /// The ratio given, as text.
        ratio: String,
    },
    /// The OTLP span exporter could not be built (an unparsable endpoint, say); the source
    /// says why.
    TraceExporter,
    /// A trace queue size of zero.
    InvalidTraceQueueSize,
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(BuildError: Error, Send, Sync);

    #[test]
    fn messages_are_lowercase_without_trailing_period() {
        let kinds = [
            BuildErrorType::InvalidNamespace {
                namespace: "9x".into(),
            },
            BuildErrorType::InvalidListenAddress {
                address: "nope".into(),
            },
            BuildErrorType::Bind {
                address: ([127, 0, 0, 1], 1).into(),
            },
            BuildErrorType::EmptyBearerToken,
            BuildErrorType::InvalidBearerToken,
            BuildErrorType::NoRuntime,
            BuildErrorType::Exporter,
            BuildErrorType::InvalidRuntimeLagPeriod,
            BuildErrorType::UnsupportedTracesExporter {
                value: "zipkin".into(),
            },
            BuildErrorType::UnsupportedTraceProtocol {
                protocol: "grpc".into(),
            },
            BuildErrorType::InvalidSampleRatio {
                ratio: "1.5".into(),
            },
            BuildErrorType::TraceExporter,
            BuildErrorType::InvalidTraceQueueSize,
        ];
        for kind in kinds {
            let message = BuildError::new(kind).to_string();
            assert!(message.starts_with(|c: char| c.is_lowercase()), "{message}");
            assert!(!message.ends_with('.'), "{message}");
        }
    }
}
