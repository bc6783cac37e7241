//! [`DiscordRateLimitLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::Meter;
use tower::Layer;
use twilight_http_ratelimiting::RateLimiter;

use crate::instruments::RatelimitInstruments;
use crate::ratelimit::generations::Generations;
use crate::ratelimit::holds::{Hold, Holds};
use crate::ratelimit::queues::{DEFAULT_SWEEP_INTERVAL, TokenQueues};
use crate::ratelimit::service::DiscordRateLimit;
use crate::ratelimit::state::Shared;
use crate::route::Routes;

/// twilight-http's default global limit: 50 requests per second.
pub const DEFAULT_GLOBAL_LIMIT: u16 = 50;

/// Builds a [`DiscordRateLimitLayer`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until built"]
pub struct DiscordRateLimitLayerBuilder {
    meter: Option<Meter>,
    ratelimiter: Option<RateLimiter>,
    global_limit: Option<u16>,
    routes: Option<Routes>,
    sweep_interval: Option<Duration>,
}

impl DiscordRateLimitLayerBuilder {
    /// Records into `meter` instead of the global provider's `botscope-http` meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Uses `ratelimiter` (for example one shared with other clients).
    ///
    /// Webhook and interaction routes do not wait in it but in the layer's own per-token
    /// queues ([Memory](crate::ratelimit#memory)): clone the layer to share those too.
    ///
    /// The limiter is a task of the runtime it was created in: once that runtime shuts down,
    /// twilight's limiter panics on every request, so it must outlive the layer's use. A
    /// limiter given here is kept for good: it is never replaced by a new generation, so its
    /// memory grows with every distinct route it sees ([Memory](crate::ratelimit#memory)).
    pub fn ratelimiter(mut self, ratelimiter: RateLimiter) -> Self {
        self.ratelimiter = Some(ratelimiter);
        self
    }

    /// The global limit per second of the limiter built when none is given (default
    /// [`DEFAULT_GLOBAL_LIMIT`]; 0 counts as 1).
    pub fn global_limit(mut self, limit: u16) -> Self {
        self.global_limit = Some(limit);
        self
    }

    /// At most `cap` distinct `endpoint` values, then `other`: shorthand for
    /// [`routes`](Self::routes)`(Routes::new(cap))`.
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

    /// How often the per-token queues of webhook and interaction routes are swept of those
    /// whose hold has passed (default [`DEFAULT_SWEEP_INTERVAL`]); see
    /// [Memory](crate::ratelimit#memory). A sweep also runs whenever their number doubles.
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = Some(interval);
        self
    }

    /// Builds the layer.
    ///
    /// Without a limiter given, twilight's limiter runs on a thread and runtime of its own
    /// (`botscope-ratelimiter`), which it leaves once it has seen
    /// [`LIMITER_ROUTES`](crate::ratelimit::LIMITER_ROUTES) distinct routes
    /// ([Memory](crate::ratelimit#memory)).
    pub fn build(self) -> DiscordRateLimitLayer {
        let meter =
            botscope_core::meter::meter_or_global(self.meter, crate::SCOPE_NAME, crate::VERSION);
        let global_limit = self.global_limit.unwrap_or(DEFAULT_GLOBAL_LIMIT).max(1);
        let ratelimiters = match self.ratelimiter {
            Some(ratelimiter) => Generations::given(ratelimiter, global_limit),
            None => Generations::new(global_limit),
        };
        let holds = Arc::new(Holds::new());
        let observed = Arc::downgrade(&holds);
        let instruments = RatelimitInstruments::new(&meter, move || {
            let holds = observed.upgrade()?;
            Some((holds.remaining(Hold::Global), holds.remaining(Hold::All)))
        });
        DiscordRateLimitLayer {
            shared: Arc::new(Shared {
                ratelimiters,
                instruments,
                routes: self.routes.unwrap_or_default(),
                tokens: Arc::new(TokenQueues::new(
                    self.sweep_interval.unwrap_or(DEFAULT_SWEEP_INTERVAL),
                )),
                holds,
            }),
        }
    }
}

/// Waits for a ratelimit permit per request: see the [module docs](crate::ratelimit).
#[derive(Clone)]
pub struct DiscordRateLimitLayer {
    pub(crate) shared: Arc<Shared>,
}

impl DiscordRateLimitLayer {
    /// A layer with its own [`RateLimiter`] (50 requests per second globally), recording into
    /// the global provider's `botscope-http` meter.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, to pass a meter or a limiter.
    pub fn builder() -> DiscordRateLimitLayerBuilder {
        DiscordRateLimitLayerBuilder::default()
    }
}

impl Default for DiscordRateLimitLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for DiscordRateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordRateLimitLayer")
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for DiscordRateLimitLayer {
    type Service = DiscordRateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DiscordRateLimit::from_parts(inner, Arc::clone(&self.shared))
    }
}

impl<S> DiscordRateLimit<S> {
    /// The layer.
    pub fn layer() -> DiscordRateLimitLayer {
        DiscordRateLimitLayer::new()
    }
}
