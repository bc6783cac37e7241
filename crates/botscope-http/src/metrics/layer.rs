//! [`DiscordMetricsLayer`] and its builder: the instruments, built once and shared by every
//! service the layer makes.

use std::sync::Arc;

use botscope_core::naming::Naming;
use opentelemetry::StringValue;
use opentelemetry::metrics::Meter;
use tower::Layer;

use crate::instruments::{BodyErrors, Instruments};
use crate::labels::DISCORD_SERVER;
use crate::metrics::service::DiscordMetrics;
use crate::route::Routes;

/// Builds a [`DiscordMetricsLayer`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until built"]
pub struct DiscordMetricsLayerBuilder {
    meter: Option<Meter>,
    routes: Option<Routes>,
    naming: Option<Naming>,
    server: Option<(StringValue, u16)>,
}

impl DiscordMetricsLayerBuilder {
    /// Records into `meter` instead of the global provider's `botscope-http` meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// At most `cap` distinct `endpoint` values (default
    /// [`DEFAULT_ENDPOINT_CAP`](crate::route::DEFAULT_ENDPOINT_CAP)), then
    /// `other`: shorthand for [`routes`](Self::routes)`(Routes::new(cap))`.
    pub fn endpoint_cap(self, cap: usize) -> Self {
        self.routes(Routes::new(cap))
    }

    /// Parses requests with `routes` (a clone of the parser of the other layers of the same
    /// stack) when no layer before this one left a [`Route`](crate::route::Route) in the
    /// request's extensions. Default: a parser of its own.
    pub fn routes(mut self, routes: Routes) -> Self {
        // Another layer may look for this parser's routes in the request's extensions.
        routes.share();
        self.routes = Some(routes);
        self
    }

    /// The names of the request count and duration (see the [module docs](crate::metrics#naming));
    /// default: the process-wide [`botscope_core::naming::global`], which
    /// `botscope::Telemetry` sets.
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = Some(naming);
        self
    }

    /// The `server.address` and `server.port` of [`Naming::Semconv`]: where the requests
    /// go. Default `discord.com` and `443`; [`DiscordProxy`](crate::DiscordProxy) gives its
    /// upstream's.
    pub fn server(mut self, address: impl Into<StringValue>, port: u16) -> Self {
        self.server = Some((address.into(), port));
        self
    }

    /// Builds the instruments once; every service the layer makes shares them.
    pub fn build(self) -> DiscordMetricsLayer {
        let meter =
            botscope_core::meter::meter_or_global(self.meter, crate::SCOPE_NAME, crate::VERSION);
        let naming = botscope_core::naming::naming_or_global(self.naming);
        let server = self
            .server
            .unwrap_or_else(|| (DISCORD_SERVER.0.into(), DISCORD_SERVER.1));
        let routes = self.routes.unwrap_or_default();
        // Every endpoint of the layer's own parser gets bound series: its cap, and `other`.
        let endpoints = routes.endpoint_cap().saturating_add(1);
        DiscordMetricsLayer {
            instruments: Arc::new(Instruments::new(&meter, naming, server, endpoints)),
            routes,
        }
    }
}

/// Measures Discord REST requests: see the [module docs](crate::metrics).
///
/// Clones share their instruments: use one layer (and clones of it) per meter provider, see
/// [one layer per meter provider](crate::metrics#one-layer-per-meter-provider).
#[derive(Clone, Debug)]
pub struct DiscordMetricsLayer {
    instruments: Arc<Instruments>,
    routes: Routes,
}

impl DiscordMetricsLayer {
    /// A layer recording into the global provider's `botscope-http` meter.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, to pass a meter or an endpoint cap.
    pub fn builder() -> DiscordMetricsLayerBuilder {
        DiscordMetricsLayerBuilder::default()
    }

    /// The parser of the requests this layer sees without a route, to share with the other
    /// layers of a stack.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Where the proxy's forwarder reports bodies failed after their head.
    pub(crate) fn body_errors(&self) -> BodyErrors {
        self.instruments.body_errors()
    }
}

impl Default for DiscordMetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for DiscordMetricsLayer {
    type Service = DiscordMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DiscordMetrics::from_parts(inner, Arc::clone(&self.instruments), self.routes.clone())
    }
}

impl<S> DiscordMetrics<S> {
    /// Wraps `inner`, recording into the global provider's `botscope-http` meter.
    pub fn new(inner: S) -> Self {
        DiscordMetricsLayer::new().layer(inner)
    }

    /// The layer, to share one set of instruments between services.
    pub fn layer() -> DiscordMetricsLayer {
        DiscordMetricsLayer::new()
    }
}
