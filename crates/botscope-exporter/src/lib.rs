#![doc = include_str!("../README.md")]

use std::error::Error;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use botscope_core::naming::Naming;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{Instrument, SdkMeterProvider, Stream};
use prometheus::{Registry, TextEncoder};

/// Whether `namespace` may prefix metric names: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_namespace(namespace: &str) -> bool {
    let mut chars = namespace.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Builds an [`Exporter`]. Made by [`Exporter::builder`].
#[derive(Debug, Clone)]
#[must_use = "nothing is built until build() is called"]
pub struct ExporterBuilder {
    namespace: String,
    service_name: Option<String>,
    naming: Naming,
}

impl ExporterBuilder {
    /// The `service.name` resource attribute, shown in `target_info`: by default the
    /// `OTEL_SERVICE_NAME` environment variable if set, else the namespace.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Which names the REST and database families carry (default [`Naming::Botscope`]).
    /// Under [`Naming::Semconv`] their dotted names (and any other dotted name) are exported
    /// without the namespace; every other name keeps it, byte for byte as by default.
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = naming;
        self
    }

    /// The registry, the exporter reading into it and the meter provider.
    ///
    /// # Errors
    ///
    /// [`ExporterErrorType::InvalidNamespace`] if the namespace does not match
    /// `[a-zA-Z_][a-zA-Z0-9_]*`, [`ExporterErrorType::Build`] if opentelemetry-prometheus
    /// cannot register on the registry.
    pub fn build(self) -> Result<Exporter, ExporterError> {
        if !is_valid_namespace(&self.namespace) {
            return Err(ExporterError {
                kind: ExporterErrorType::InvalidNamespace {
                    namespace: self.namespace,
                },
                source: None,
            });
        }
        let registry = Registry::new();
        let mut exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false);
        // The namespace: the exporter's own prefix for the catalogue's names, untouched; under
        // semantic conventions a view prefixes all but their names instead (`namespace_view`).
        let view = match self.naming {
            Naming::Semconv => Some(namespace_view(&self.namespace)),
            _ => {
                exporter = exporter.with_namespace(&self.namespace);
                None
            }
        };
        let exporter = exporter.build().map_err(|e| ExporterError {
            kind: ExporterErrorType::Build,
            source: Some(Box::new(e)),
        })?;
        let mut resource = Resource::builder();
        // `OTEL_SERVICE_NAME`, which the SDK reads, wins over the namespace, not over a name
        // given in code.
        let from_env = std::env::var_os("OTEL_SERVICE_NAME").is_some_and(|name| !name.is_empty());
        match self.service_name {
            Some(name) => resource = resource.with_service_name(name),
            None if !from_env => resource = resource.with_service_name(self.namespace.clone()),
            None => {}
        }
        let resource = resource.build();
        let mut provider = SdkMeterProvider::builder()
            .with_reader(exporter)
            .with_resource(resource.clone());
        if let Some(view) = view {
            provider = provider.with_view(view);
        }
        Ok(Exporter {
            registry,
            resource,
            provider: provider.build(),
            broken: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// The namespace under [`Naming::Semconv`]: a view that names every instrument
/// `{namespace}_{name}`, as the exporter's own prefix would, except OpenTelemetry-style dotted
/// names (`http.client.request.duration`, `db.client.…`, and a user's own), which the
/// conventions namespace by their first segment. botscope's own names have no dot.
///
/// A view, not a wrapper of the exporter's collector: the SDK renames the stream before the
/// exporter adds unit and `_total` suffixes, so the text is the one the exporter's prefix
/// gives (the test `the_view_prefixes_as_the_exporter_does` compares them).
fn namespace_view(namespace: &str) -> impl Fn(&Instrument) -> Option<Stream> + Send + Sync + use<> {
    let prefix = format!("{namespace}_");
    move |instrument: &Instrument| {
        if instrument.name().contains('.') {
            return None;
        }
        // A view's name is not checked against the instrument name syntax, so a namespace
        // starting with `_` is fine; building a stream with only a name cannot fail.
        Stream::builder()
            .with_name(format!("{prefix}{}", instrument.name()))
            .build()
            .ok()
    }
}

/// A Prometheus registry and the OpenTelemetry meter provider exporting into it. Clones share
/// both. See the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct Exporter {
    registry: Registry,
    /// `service.name` and the SDK's own attributes: what a trace provider beside it shares.
    resource: Resource,
    provider: SdkMeterProvider,
    /// A collection panicked: the SDK's locks are poisoned for good.
    broken: Arc<AtomicBool>,
}

impl Exporter {
    /// A builder for metric names prefixed `namespace_` (checked by
    /// [`build`](ExporterBuilder::build)).
    pub fn builder(namespace: &str) -> ExporterBuilder {
        ExporterBuilder {
            namespace: namespace.to_owned(),
            service_name: None,
            naming: Naming::Botscope,
        }
    }

    /// The registry the exporter registers on, for collectors of your own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The resource the meter provider reports with (`service.name` as `target_info` shows
    /// it): give a tracer provider the same, so traces and metrics name one service.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// The meter provider.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.provider
    }

    /// The text exposition (format 0.0.4) of everything registered, or [`CollectionFailed`]
    /// if a metric callback panicked, now or in an earlier collection. The panic never reaches
    /// the caller; the first one is logged at `error`.
    ///
    /// Runs every metric callback on the calling thread.
    pub fn render(&self) -> Result<String, CollectionFailed> {
        if self.broken.load(Ordering::Acquire) {
            return Err(CollectionFailed);
        }
        let gathered = std::panic::catch_unwind(AssertUnwindSafe(|| self.registry.gather()));
        match gathered {
            // Encoding into a String only fails on a malformed family, which gather() never
            // returns.
            Ok(families) => Ok(TextEncoder::new()
                .encode_to_string(&families)
                .unwrap_or_default()),
            Err(_) => {
                if !self.broken.swap(true, Ordering::AcqRel) {
                    tracing::error!(
                        "a metric callback panicked during collection; the exposition fails until the process restarts"
                    );
                }
                Err(CollectionFailed)
            }
        }
    }
}

/// A metric callback panicked, now or in an earlier collection: the SDK's locks stay
/// poisoned, so a later collection would quietly lose series. Returned by
/// [`Exporter::render`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollectionFailed;

impl fmt::Display for CollectionFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("metrics collection failed: a metric callback panicked")
    }
}

impl Error for CollectionFailed {}

/// Building an [`Exporter`] failed. See [`kind`](Self::kind) for why.
#[derive(Debug)]
pub struct ExporterError {
    kind: ExporterErrorType,
    source: Option<Box<dyn Error + Send + Sync>>,
}

impl ExporterError {
    /// What went wrong.
    pub const fn kind(&self) -> &ExporterErrorType {
        &self.kind
    }

    /// The kind and the underlying error, if any.
    pub fn into_parts(self) -> (ExporterErrorType, Option<Box<dyn Error + Send + Sync>>) {
        (self.kind, self.source)
    }
}

impl fmt::Display for ExporterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExporterErrorType::InvalidNamespace { namespace } => write!(
                f,
                "invalid metric namespace {namespace:?}: use letters, digits and underscores, not starting with a digit"
            ),
            ExporterErrorType::Build => f.write_str("the prometheus exporter could not be built"),
        }
    }
}

impl Error for ExporterError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_ref().map(|e| &**e as &(dyn Error + 'static))
    }
}

/// Why building an [`Exporter`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExporterErrorType {
    /// The namespace does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    InvalidNamespace {
        /// The namespace given.
        namespace: String,
    },
    /// opentelemetry-prometheus could not register on the registry.
    Build,
}

#[cfg(test)]
mod tests {
    use opentelemetry::KeyValue;
    use opentelemetry::metrics::MeterProvider as _;

    use super::*;

    static_assertions::assert_impl_all!(Exporter: Clone, Send, Sync);
    static_assertions::assert_impl_all!(ExporterError: Error, Send, Sync);

    #[test]
    fn namespaces() {
        for ok in ["disruptor", "_x", "a1_b2", "A"] {
            assert!(is_valid_namespace(ok), "{ok}");
        }
        for bad in ["", "9lives", "dis-ruptor", "a b", "émoji", "x:y"] {
            assert!(!is_valid_namespace(bad), "{bad}");
            let error = Exporter::builder(bad).build().unwrap_err();
            assert_eq!(
                error.kind(),
                &ExporterErrorType::InvalidNamespace {
                    namespace: bad.to_owned()
                }
            );
            let message = error.to_string();
            assert!(message.starts_with("invalid metric namespace"), "{message}");
        }
    }

    /// One of every kind of instrument, with botscope-style names.
    fn record_every_kind(exporter: &Exporter) {
        let meter = exporter.meter_provider().meter("botscope-test");
        let labels = [KeyValue::new("status", "success")];
        meter.u64_counter("jobs").build().add(3, &labels);
        meter
            .f64_histogram("job_duration")
            .with_unit("s")
            .with_boundaries(botscope_core::buckets::default_buckets())
            .build()
            .record(0.3, &labels);
        meter.i64_up_down_counter("active").build().add(2, &[]);
        meter.u64_gauge("queue_depth").build().record(7, &[]);
        meter
            .f64_gauge("last_success_timestamp")
            .with_unit("s")
            .build()
            .record(1.5, &[]);
        meter
            .i64_observable_gauge("connections")
            .with_callback(|observer| observer.observe(4, &[KeyValue::new("state", "idle")]))
            .build();
        meter.u64_counter("errors").build().bind(&labels).add(1);
    }

    fn built(naming: Naming) -> Exporter {
        Exporter::builder("disruptor")
            .service_name("disruptor")
            .naming(naming)
            .build()
            .expect("build")
    }

    /// The families semantic conventions leave alone read byte for byte as they do by
    /// default: the view's prefix is the exporter's.
    #[test]
    fn the_view_prefixes_as_the_exporter_does() {
        let default = built(Naming::Botscope);
        let semconv = built(Naming::Semconv);
        record_every_kind(&default);
        record_every_kind(&semconv);
        let text = default.render().expect("render");
        assert!(
            text.contains("disruptor_jobs_total{status=\"success\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("disruptor_job_duration_seconds_bucket"),
            "{text}"
        );
        assert!(!text.contains("otel_scope_name"), "{text}");
        assert!(
            text.contains("target_info{service_name=\"disruptor\""),
            "{text}"
        );
        assert_eq!(semconv.render().expect("render"), text);
    }

    /// Dotted names (the conventions' and a user's own) carry no namespace under semantic
    /// conventions, and do by default.
    #[test]
    fn dotted_names_are_not_prefixed_under_semantic_conventions() {
        for (naming, expected) in [
            (
                Naming::Semconv,
                "\nhttp_client_request_duration_seconds_count 1",
            ),
            (
                Naming::Botscope,
                "\ndisruptor_http_client_request_duration_seconds_count 1",
            ),
        ] {
            let exporter = built(naming);
            exporter
                .meter_provider()
                .meter("botscope-test")
                .f64_histogram("http.client.request.duration")
                .with_unit("s")
                .build()
                .record(0.1, &[]);
            let text = exporter.render().expect("render");
            assert!(text.contains(expected), "{naming}: {text}");
        }
    }

    #[test]
    fn a_panicking_callback_fails_this_and_every_later_render() {
        let exporter = built(Naming::Botscope);
        let meter = exporter.meter_provider().meter("botscope-test");
        meter.u64_counter("commands").build().add(1, &[]);
        assert!(exporter.render().is_ok());
        meter
            .u64_observable_gauge("broken")
            .with_callback(|_| panic!("callback bug"))
            .build();
        assert_eq!(exporter.render(), Err(CollectionFailed));
        assert_eq!(exporter.clone().render(), Err(CollectionFailed));
    }
}
