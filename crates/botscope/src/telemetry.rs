//! [`Telemetry`]: the Prometheus exporter, the `/metrics` server and the system metrics.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use botscope_core::naming::Naming;
use botscope_exporter::{Exporter, ExporterError, ExporterErrorType};
use botscope_server::CancellationToken;
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::Registry;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::error::{BuildError, BuildErrorType};
use crate::server::{self, State};

/// The namespace used unless [`TelemetryBuilder::namespace`] sets another.
pub const DEFAULT_NAMESPACE: &str = "botscope";
/// Where `/metrics` is served unless [`TelemetryBuilder::listen`] says otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

/// An address for [`TelemetryBuilder::listen`]: a [`SocketAddr`], or a string parsed at
/// [`install`](TelemetryBuilder::install) (an unparsable one is a [`BuildError`] then).
pub trait IntoListenAddr: sealed::Sealed {
    #[doc(hidden)]
    fn into_listen_addr(self) -> Result<SocketAddr, String>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::net::SocketAddr {}
    impl Sealed for &str {}
    impl Sealed for String {}
}

impl IntoListenAddr for SocketAddr {
    fn into_listen_addr(self) -> Result<SocketAddr, String> {
        Ok(self)
    }
}

impl IntoListenAddr for &str {
    fn into_listen_addr(self) -> Result<SocketAddr, String> {
        self.parse().map_err(|_| self.to_owned())
    }
}

impl IntoListenAddr for String {
    fn into_listen_addr(self) -> Result<SocketAddr, String> {
        self.as_str().into_listen_addr()
    }
}

/// Builds and installs [`Telemetry`]. Made by [`Telemetry::builder`].
#[must_use = "nothing is installed until install() is called"]
pub struct TelemetryBuilder {
    namespace: String,
    listen: Result<SocketAddr, String>,
    bearer_token: Option<String>,
    service_name: Option<String>,
    serve: bool,
    system_metrics: bool,
    runtime_lag: Option<Duration>,
    set_global: bool,
    naming: Naming,
    write_timeout: Duration,
    #[cfg(feature = "traces")]
    traces: Option<crate::traces::Traces>,
}

impl fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("TelemetryBuilder");
        f.field("namespace", &self.namespace)
            .field("listen", &self.listen)
            // never print the token itself
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("service_name", &self.service_name)
            .field("serve", &self.serve)
            .field("system_metrics", &self.system_metrics)
            .field("runtime_lag", &self.runtime_lag)
            .field("set_global", &self.set_global)
            .field("naming", &self.naming)
            .field("write_timeout", &self.write_timeout);
        #[cfg(feature = "traces")]
        f.field("traces", &self.traces);
        f.finish()
    }
}

impl Default for TelemetryBuilder {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            listen: Ok(DEFAULT_LISTEN),
            bearer_token: None,
            service_name: None,
            serve: true,
            system_metrics: true,
            runtime_lag: Some(crate::runtime::DEFAULT_LAG_PERIOD),
            set_global: true,
            naming: Naming::Botscope,
            write_timeout: server::DEFAULT_WRITE_TIMEOUT,
            #[cfg(feature = "traces")]
            traces: None,
        }
    }
}

impl TelemetryBuilder {
    /// The prefix of every metric name, `botscope` by default: with `disruptor`, the job
    /// counter is `disruptor_scheduler_jobs_total`. Must match `[a-zA-Z_][a-zA-Z0-9_]*`
    /// (checked by [`install`](Self::install)). `process_*` and `target_info` are never
    /// prefixed.
    pub fn namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self
    }

    /// The address `/metrics` is served on, `127.0.0.1:9464` by default. Binding to a
    /// non-loopback address exposes the metrics to the network: set a
    /// [`bearer_token`](Self::bearer_token) then.
    pub fn listen(mut self, addr: impl IntoListenAddr) -> Self {
        self.listen = addr.into_listen_addr();
        self
    }

    /// Requires `Authorization: Bearer <token>` on `/metrics`.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// The `service.name` resource attribute, shown in `target_info`: by default the
    /// `OTEL_SERVICE_NAME` environment variable if set, else the namespace.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Whether to serve `/metrics` over HTTP (default `true`). Without it, use
    /// [`Telemetry::render`] to expose the text yourself.
    pub fn serve(mut self, serve: bool) -> Self {
        self.serve = serve;
        self
    }

    /// Whether to register the `system_*` and `runtime_*` gauges and the `process_*`
    /// collector (default `true`).
    pub fn system_metrics(mut self, enabled: bool) -> Self {
        self.system_metrics = enabled;
        self
    }

    /// How often the runtime-lag probe wakes up to measure `N_runtime_lag_seconds` (default
    /// 100 ms), or `None` for no probe. It runs with the system metrics, on the runtime
    /// `install` is called in, and stops when the [`Telemetry`] is dropped or shut down.
    /// A period of zero is refused by [`install`](Self::install).
    pub fn runtime_lag(mut self, period: Option<Duration>) -> Self {
        self.runtime_lag = period;
        self
    }

    /// Whether to make the provider the global OpenTelemetry meter provider and the one
    /// botscope's crates record through when given no meter (default `true`): those built
    /// before install report from install on (see `botscope_core::meter::install_provider`;
    /// the first provider installed in a process keeps them).
    pub fn set_global(mut self, global: bool) -> Self {
        self.set_global = global;
        self
    }

    /// Which names the REST and database families carry (default [`Naming::Botscope`], the
    /// catalogue's). [`Naming::Semconv`] switches them to the OpenTelemetry semantic
    /// conventions v1.44 (`http.client.request.duration`, `db.client.operation.duration`,
    /// `db.client.connection.*`), exported without the namespace; every other family keeps
    /// its name and namespace.
    ///
    /// With [`set_global`](Self::set_global) (the default), install makes it the
    /// process-wide naming of `botscope_core::naming`, which the crates' builders use when
    /// not given one: build them after installing. Without it, pass the naming to each
    /// builder too.
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = naming;
        self
    }

    /// How long a write to a scraper may make no progress before its connection is closed
    /// (default 60 s): a client that stops reading its scrape cannot hold the connection, nor
    /// the exposition's memory, for longer. A scrape that keeps reading, however slowly, is
    /// never cut. `Duration::MAX` means no timeout.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Exports traces too (feature `traces`): spans go over OTLP/HTTP as `traces` says,
    /// with the metrics' `service.name`, through the layer
    /// [`Telemetry::tracing_layer`] gives. Off by default; [`Traces::from_env`] turns it on
    /// only when `OTEL_TRACES_EXPORTER=otlp`. See [`crate::traces`].
    ///
    /// [`Traces::from_env`]: crate::traces::Traces::from_env
    #[cfg(feature = "traces")]
    pub fn traces(mut self, traces: crate::traces::Traces) -> Self {
        self.traces = Some(traces);
        self
    }

    /// Builds the exporter and provider, registers the system metrics, binds and starts the
    /// `/metrics` server, and installs the provider globally.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if the namespace is invalid, the address unparsable or busy, the
    /// bearer token empty, or no Tokio runtime is running while serving or system metrics are
    /// on.
    pub fn install(self) -> Result<Telemetry, BuildError> {
        validate_namespace(&self.namespace)?;
        let listen = self.listen.map_err(invalid_listen_address)?;
        if let Some(token) = &self.bearer_token {
            validate_bearer_token(token)?;
        }
        if self.runtime_lag.is_some_and(|period| period.is_zero()) {
            return Err(BuildError::new(BuildErrorType::InvalidRuntimeLagPeriod));
        }
        // Serving and the runtime gauges need a Tokio runtime; the exporter alone does not
        // (botscope-testkit's `TestMetrics` builds one outside any runtime).
        let runtime = (self.serve || self.system_metrics)
            .then(Handle::try_current)
            .transpose()
            .map_err(|e| BuildError::with_source(BuildErrorType::NoRuntime, e))?;

        let listener = match &runtime {
            Some(runtime) if self.serve => {
                let _guard = runtime.enter();
                let listener = server::bind(listen).map_err(|e| {
                    BuildError::with_source(BuildErrorType::Bind { address: listen }, e)
                })?;
                Some((listener, runtime.clone()))
            }
            _ => None,
        };

        let mut exporter = Exporter::builder(&self.namespace).naming(self.naming);
        if let Some(name) = self.service_name {
            exporter = exporter.service_name(name);
        }
        let exporter = exporter.build().map_err(exporter_error)?;
        let (registry, provider) = (exporter.registry(), exporter.meter_provider());
        #[cfg(feature = "traces")]
        let tracer_provider = match self.traces {
            Some(traces) => {
                let meter = provider.meter_with_scope(scope());
                traces.build(exporter.resource().clone(), &meter)?
            }
            None => None,
        };

        let mut lag_probe = None;
        if let Some(runtime) = runtime.filter(|_| self.system_metrics) {
            let meter = provider.meter_with_scope(scope());
            lag_probe = self
                .runtime_lag
                .map(|period| crate::runtime::spawn_lag_probe(&meter, &runtime, period));
            crate::runtime::register_busy_ratio(&meter, runtime.clone());
            crate::system::register(&meter, runtime);
            #[cfg(target_os = "linux")]
            registry
                .register(Box::new(
                    crate::process::ProcessMetrics::for_self()
                        .map_err(|e| BuildError::with_source(BuildErrorType::Exporter, e))?,
                ))
                .map_err(|e| BuildError::with_source(BuildErrorType::Exporter, e))?;
        }
        if self.set_global {
            opentelemetry::global::set_meter_provider(provider.clone());
            // Binds the instruments of every builder given no meter, before or after now.
            botscope_core::meter::install_provider(std::sync::Arc::new(provider.clone()));
            botscope_core::naming::set_global(self.naming);
            #[cfg(feature = "traces")]
            if let Some(tracer_provider) = &tracer_provider {
                opentelemetry::global::set_tracer_provider(tracer_provider.clone());
            }
        }

        let server = listener.map(|(listener, runtime)| {
            let local_addr = listener.local_addr().unwrap_or(listen);
            let shutdown = CancellationToken::new();
            let state = State {
                exporter: exporter.clone(),
                bearer: self.bearer_token.map(String::into_boxed_str),
            };
            let task = runtime.spawn(server::serve(
                listener,
                state,
                self.write_timeout,
                shutdown.clone(),
            ));
            Server {
                local_addr,
                shutdown,
                task,
            }
        });

        Ok(Telemetry {
            namespace: self.namespace,
            naming: self.naming,
            exporter,
            server,
            _lag_probe: lag_probe,
            #[cfg(feature = "traces")]
            tracer_provider,
        })
    }
}

fn scope() -> opentelemetry::InstrumentationScope {
    botscope_core::meter::scope(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
}

/// Checks a metric namespace as [`TelemetryBuilder::install`] does: it must match
/// `[a-zA-Z_][a-zA-Z0-9_]*`. For a command line or a configuration file that should fail
/// before anything starts.
///
/// # Errors
///
/// [`BuildErrorType::InvalidNamespace`] if it does not match.
pub fn validate_namespace(namespace: &str) -> Result<(), BuildError> {
    if botscope_exporter::is_valid_namespace(namespace) {
        Ok(())
    } else {
        Err(BuildError::new(BuildErrorType::InvalidNamespace {
            namespace: namespace.to_owned(),
        }))
    }
}

/// Checks a bearer token as [`TelemetryBuilder::install`] does: an empty one is an error,
/// never "no authentication" (an unset shell variable expands to it), and so is one with a
/// character a scraper's `Authorization` header cannot carry as given (whitespace, say a
/// trailing newline from a secret file, a control character, non-ASCII): no scrape could
/// match it.
///
/// # Errors
///
/// [`BuildErrorType::EmptyBearerToken`] if it is empty, [`BuildErrorType::InvalidBearerToken`]
/// if it has such a character.
pub fn validate_bearer_token(token: &str) -> Result<(), BuildError> {
    if token.is_empty() {
        Err(BuildError::new(BuildErrorType::EmptyBearerToken))
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        Err(BuildError::new(BuildErrorType::InvalidBearerToken))
    } else {
        Ok(())
    }
}

/// Parses a listen address as [`TelemetryBuilder::listen`] does with a string: an IP address
/// and a port, such as `127.0.0.1:9464` or `[::1]:9464`.
///
/// # Errors
///
/// [`BuildErrorType::InvalidListenAddress`] if it is not one.
pub fn parse_listen_addr(addr: &str) -> Result<SocketAddr, BuildError> {
    addr.into_listen_addr().map_err(invalid_listen_address)
}

/// The exporter's error as the builder's: the same kinds, the same messages.
fn exporter_error(error: ExporterError) -> BuildError {
    match error.into_parts() {
        (ExporterErrorType::InvalidNamespace { namespace }, _) => {
            BuildError::new(BuildErrorType::InvalidNamespace { namespace })
        }
        (_, Some(source)) => BuildError::with_source(BuildErrorType::Exporter, source),
        (_, None) => BuildError::new(BuildErrorType::Exporter),
    }
}

fn invalid_listen_address(address: String) -> BuildError {
    BuildError::new(BuildErrorType::InvalidListenAddress { address })
}

struct Server {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// Installed telemetry: an OpenTelemetry meter provider exporting to Prometheus, served on
/// `/metrics`. Made by [`Telemetry::builder`].
///
/// Dropping it leaves the server running until the runtime stops; call
/// [`shutdown`](Self::shutdown) to stop it.
pub struct Telemetry {
    namespace: String,
    naming: Naming,
    exporter: Exporter,
    server: Option<Server>,
    /// Stops the runtime-lag probe when the telemetry goes.
    _lag_probe: Option<crate::runtime::LagProbe>,
    #[cfg(feature = "traces")]
    tracer_provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("namespace", &self.namespace)
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Starts configuring telemetry.
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }

    /// The address `/metrics` is served on (with the real port when it was `0`), or `None`
    /// when serving is off.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(|s| s.local_addr)
    }

    /// The namespace metric names carry.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Which names the REST and database families carry.
    pub fn naming(&self) -> Naming {
        self.naming
    }

    /// The meter provider; hand it (or a meter from it) to instrumentation builders, or to
    /// your own instruments.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        self.exporter.meter_provider()
    }

    /// A meter of the provider named `name`.
    pub fn meter(&self, name: &'static str) -> Meter {
        self.exporter.meter_provider().meter(name)
    }

    /// The Prometheus registry behind `/metrics`, for collectors of your own.
    pub fn registry(&self) -> &Registry {
        self.exporter.registry()
    }

    /// The text a scrape of `/metrics` returns right now.
    ///
    /// Runs every metric callback on the calling thread; call it off the async executor
    /// when callbacks may be slow. Never panics: if a metric callback panics (now or in an
    /// earlier collection), the panic is logged and the text is empty — the same condition
    /// makes `/metrics` answer 500.
    pub fn render(&self) -> String {
        self.exporter.render().unwrap_or_default()
    }

    /// The `tracing` layer that exports spans when traces are on (feature `traces`, see
    /// [`TelemetryBuilder::traces`]), and does nothing when they are off. Add it to the bot's
    /// subscriber before its log layer:
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), botscope::BuildError> {
    /// use tracing_subscriber::layer::SubscriberExt as _;
    /// use tracing_subscriber::util::SubscriberInitExt as _;
    ///
    /// let telemetry = botscope::Telemetry::builder()
    ///     .traces(botscope::traces::Traces::from_env())
    ///     .install()?;
    /// tracing_subscriber::registry()
    ///     .with(telemetry.tracing_layer())
    ///     .with(tracing_subscriber::fmt::layer())
    ///     .init();
    /// # Ok(()) }
    /// ```
    ///
    /// It is tracing-opentelemetry's layer, without sqlx's statement events (their SQL
    /// carries literals), stacked with
    /// [`TwilightRequests`](crate::http::trace::TwilightRequests) so the in-process proxy's
    /// spans are children of twilight's `request` spans, and with what
    /// [`TraceIds`](crate::traces::TraceIds) reads to put trace ids in log lines.
    ///
    /// Install the subscriber for the whole process (`.init()`), not for one thread
    /// (`set_default`): a span whose last clone drops on another thread (sqlx's SQLite worker
    /// holds clones) closes its parent through that thread's default subscriber.
    #[cfg(feature = "traces")]
    pub fn tracing_layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        crate::traces::layer(self.tracer_provider.as_ref())
    }

    /// The tracer provider, when traces are on: for OpenTelemetry spans of your own.
    #[cfg(feature = "traces")]
    pub fn tracer_provider(&self) -> Option<&opentelemetry_sdk::trace::SdkTracerProvider> {
        self.tracer_provider.as_ref()
    }

    /// Sends every span that ended so far, waiting (off the runtime's workers) until the
    /// exporter answered or gave up. Nothing to do when traces are off.
    ///
    /// # Errors
    ///
    /// The SDK's error if the export failed or timed out.
    #[cfg(feature = "traces")]
    pub async fn flush_traces(&self) -> Result<(), opentelemetry_sdk::error::OTelSdkError> {
        let Some(provider) = self.tracer_provider.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || provider.force_flush())
            .await
            .unwrap_or_else(|e| {
                Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                    e.to_string(),
                ))
            })
    }

    /// Stops the server (open scrapes get a few seconds to finish), sends the spans not yet
    /// sent (when traces are on) and shuts the providers down.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if dropped before completion, the server is stopped but may still be
    /// draining connections.
    pub async fn shutdown(self) {
        if let Some(server) = self.server {
            server.shutdown.cancel();
            let _ = server.task.await;
        }
        #[cfg(feature = "traces")]
        if let Some(provider) = self.tracer_provider {
            // blocks until the batch is sent: off the runtime's workers
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
        let _ = self.exporter.meter_provider().shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_validation() {
        for ok in ["disruptor", "_x", "a1_b2", "A"] {
            assert!(validate_namespace(ok).is_ok(), "{ok}");
        }
        for bad in ["", "9lives", "dis-ruptor", "a b", "émoji", "x:y"] {
            let error = validate_namespace(bad).unwrap_err();
            assert_eq!(
                error.kind(),
                &BuildErrorType::InvalidNamespace {
                    namespace: bad.to_owned()
                }
            );
        }
    }

    #[test]
    fn bearer_token_and_listen_validation() {
        assert!(validate_bearer_token("hunter2").is_ok());
        assert!(validate_bearer_token("abc-._~+/=").is_ok());
        assert_eq!(
            validate_bearer_token("").unwrap_err().kind(),
            &BuildErrorType::EmptyBearerToken
        );
        for bad in [
            "hunter2\n",
            " hunter2",
            "hun ter2",
            "hunter\u{7f}",
            "hünter2",
        ] {
            let error = validate_bearer_token(bad).unwrap_err();
            assert_eq!(error.kind(), &BuildErrorType::InvalidBearerToken, "{bad:?}");
            assert!(!error.to_string().contains("hunter"), "{error}");
        }
        assert_eq!(parse_listen_addr("[::1]:9464").unwrap().port(), 9464);
        assert_eq!(
            parse_listen_addr("localhost:9464").unwrap_err().kind(),
            &BuildErrorType::InvalidListenAddress {
                address: "localhost:9464".to_owned()
            }
        );
    }

    #[tokio::test]
    async fn install_refuses_what_the_validators_refuse() {
        let kind = |builder: TelemetryBuilder| {
            builder
                .serve(false)
                .set_global(false)
                .install()
                .unwrap_err()
                .kind()
                .clone()
        };
        assert_eq!(
            kind(Telemetry::builder().namespace("9lives")),
            validate_namespace("9lives").unwrap_err().kind().clone()
        );
        assert_eq!(
            kind(Telemetry::builder().bearer_token("")),
            validate_bearer_token("").unwrap_err().kind().clone()
        );
        assert_eq!(
            kind(Telemetry::builder().listen("nope")),
            parse_listen_addr("nope").unwrap_err().kind().clone()
        );
    }

    #[test]
    fn debug_never_shows_the_bearer_token() {
        let builder = Telemetry::builder().bearer_token("hunter2");
        assert!(!format!("{builder:?}").contains("hunter2"));
    }
}
