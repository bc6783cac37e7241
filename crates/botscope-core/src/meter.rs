//! Meter acquisition: an explicit [`Meter`] or [`MeterProvider`], else the global provider.
//!
//! Every botscope crate names its meter after itself (scope name = crate name, version =
//! crate version), so a user's own OpenTelemetry pipeline can tell where a metric came from.
//!
//! ```
//! use opentelemetry::metrics::MeterProvider;
//!
//! // what an instrumentation crate does when the user gave it nothing
//! let meter = botscope_core::meter::global_meter("my-crate", "1.0.0");
//! let counter = meter.u64_counter("things").build();
//! counter.add(1, &[]);
//! ```

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::{Meter, MeterProvider};

/// The instrumentation scope of a crate: its name and version.
pub fn scope(name: &'static str, version: &'static str) -> InstrumentationScope {
    InstrumentationScope::builder(name)
        .with_version(version)
        .build()
}

/// A meter for the crate `name`/`version` from the global provider.
///
/// The global provider is a no-op until one is installed (`botscope::Telemetry::install`
/// installs one), so call this after installing, or pass an explicit meter.
pub fn global_meter(name: &'static str, version: &'static str) -> Meter {
    opentelemetry::global::meter_with_scope(scope(name, version))
}

/// A meter for the crate `name`/`version` from an explicit provider.
pub fn provider_meter<P>(provider: &P, name: &'static str, version: &'static str) -> Meter
where
    P: MeterProvider + ?Sized,
{
    provider.meter_with_scope(scope(name, version))
}

/// A meter chosen by a builder: the one the user gave, else the global provider's.
pub fn meter_or_global(meter: Option<Meter>, name: &'static str, version: &'static str) -> Meter {
    meter.unwrap_or_else(|| global_meter(name, version))
}
