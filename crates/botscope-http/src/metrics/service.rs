//! [`DiscordMetrics`]: the service of the metrics layer, starting one request's record.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use botscope_core::GaugeGuard;
use botscope_core::outcome::Timer;
use tower::Service;

use crate::instruments::Instruments;
use crate::metrics::future::ResponseFuture;
use crate::metrics::record::{InteractionCall, Record};
use crate::route::{RouteKind, Routes};

/// The service of [`DiscordMetricsLayer`](crate::DiscordMetricsLayer): see the [module docs](crate::metrics).
#[derive(Clone)]
pub struct DiscordMetrics<S> {
    inner: S,
    instruments: Arc<Instruments>,
    routes: Routes,
}

impl<S> DiscordMetrics<S> {
    pub(crate) fn from_parts(inner: S, instruments: Arc<Instruments>, routes: Routes) -> Self {
        Self {
            inner,
            instruments,
            routes,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for DiscordMetrics<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordMetrics")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<http::Request<B>> for DiscordMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let route = self.routes.route_in_stack(&mut request);
        // An interaction's response latency ends now, as the proxy forwards it.
        let interaction = match (route.kind(), route.interaction_id()) {
            (RouteKind::InteractionCallback, Some(id)) => {
                let late = self.instruments.callback_latency(id);
                // for the command decorator's span, which ends after its answer; only when
                // something records `debug` spans (a static check)
                if tracing::level_enabled!(tracing::Level::DEBUG) {
                    botscope_core::span::answers::note(id, late);
                }
                Some(InteractionCall::Callback { late })
            }
            (RouteKind::InteractionFollowup, _) => Some(InteractionCall::Followup),
            _ => None,
        };
        let record = Record {
            instruments: Arc::clone(&self.instruments),
            series: self.instruments.series(route.endpoint()),
            endpoint: route.endpoint().clone(),
            method: self.instruments.method(route.method(), request.method()),
            interaction,
            parent: crate::pairing::parent_of(&mut request),
        };
        let gateway_bot =
            route.kind() == RouteKind::GatewayBot && request.method() == http::Method::GET;
        let timer = Timer::start(record).with_gauge(GaugeGuard::new(&self.instruments.in_flight));
        ResponseFuture::new(self.inner.call(request), timer, gateway_bot)
    }
}
