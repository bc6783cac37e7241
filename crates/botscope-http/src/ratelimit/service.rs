//! [`DiscordRateLimit`]: the service of the ratelimit layer, which sets a request on its way to a
//! permit.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

use crate::ratelimit::future::{ResponseFuture, Waiting};
use crate::ratelimit::state::{Queue, Shared};

/// The service of [`DiscordRateLimitLayer`](crate::DiscordRateLimitLayer): see the [module docs](crate::ratelimit).
#[derive(Clone)]
pub struct DiscordRateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> DiscordRateLimit<S> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
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

impl<S: fmt::Debug> fmt::Debug for DiscordRateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordRateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<http::Request<B>> for DiscordRateLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The ready service goes into the future; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let route = self.shared.routes.route(&mut request);
        let Some(endpoint) = route.limiter_endpoint() else {
            return ResponseFuture::unlimited(inner.call(request));
        };
        let kind = route.kind();
        // The routes Discord exempts from the global limit are those keyed by a token.
        let queue = if kind.is_exempt_from_global() {
            Queue::Token(self.shared.tokens.key(endpoint))
        } else {
            Queue::Twilight(endpoint.clone())
        };
        ResponseFuture::waiting(Waiting::new(
            Arc::clone(&self.shared),
            inner,
            request,
            queue,
            kind,
            route.endpoint().clone(),
            route.interaction_id(),
        ))
    }
}
