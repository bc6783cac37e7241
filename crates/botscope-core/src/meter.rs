//! Meter acquisition: an explicit [`Meter`] or [`MeterProvider`], else botscope's provider,
//! bound whenever it is installed.
//!
//! Every botscope crate names its meter after itself (scope name = crate name, version =
//! crate version), so a user's own OpenTelemetry pipeline can tell where a metric came from.
//!
//! A builder given no meter takes [`global_meter`]: the provider passed to
//! [`install_provider`] (`botscope::Telemetry::install` passes its own). Instruments built
//! before that report once it happens, so a bot may build its pool, proxy, tap and jobs
//! before or after installing telemetry; what they measured before is recorded at install.
//!
//! ```
//! use std::sync::Arc;
//!
//! use opentelemetry_sdk::metrics::SdkMeterProvider;
//!
//! // what an instrumentation crate does when the user gave it nothing
//! let meter = botscope_core::meter::global_meter("my-crate", "1.0.0");
//! let counter = meter.u64_counter("things").build();
//! counter.add(1, &[]); // no provider yet: held
//!
//! // the application installs its provider later: the held 1 is recorded, then this one
//! let provider = SdkMeterProvider::builder().build();
//! botscope_core::meter::install_provider(Arc::new(provider.clone()));
//! counter.add(1, &[]);
//! ```

mod late;

use std::sync::Arc;

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::{Meter, MeterProvider};

/// The instrumentation scope of a crate: its name and version.
pub fn scope(name: &'static str, version: &'static str) -> InstrumentationScope {
    InstrumentationScope::builder(name)
        .with_version(version)
        .build()
}

/// A meter for the crate `name`/`version` from the provider given to [`install_provider`],
/// whenever that happens: before it, a meter whose instruments bind to it once it does.
pub fn global_meter(name: &'static str, version: &'static str) -> Meter {
    let scope = scope(name, version);
    match late::target() {
        Some(provider) => provider.meter_with_scope(scope),
        None => late::meter(scope),
    }
}

/// Makes `provider` the one every botscope builder without an explicit meter records
/// through, including those built before this call. `botscope::Telemetry::install` calls
/// it (unless `set_global(false)`); a bot with an OpenTelemetry pipeline of its own calls
/// it once with that pipeline's provider, as it calls
/// `opentelemetry::global::set_meter_provider`.
///
/// Returns `false`, and changes nothing, if a provider was installed before: instruments
/// bind once, to the first.
pub fn install_provider(provider: Arc<dyn MeterProvider + Send + Sync>) -> bool {
    late::install(provider)
}

/// Whether [`install_provider`] has run.
pub fn provider_installed() -> bool {
    late::target().is_some()
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
