//! Pairs the proxy's requests with the twilight-http `request` spans that sent them (feature
//! `traces`).
//!
//! twilight gives no hook and no header to link a request to its span, so the pairing goes by
//! what both sides know: the method and the path. [`TwilightRequests`](crate::trace::TwilightRequests)
//! (a `tracing` layer) notes each twilight `request` span as it opens; the proxy's first layer
//! takes the oldest unpaired one with the same method and path, and its spans become
//! that span's children in OpenTelemetry. Two identical requests in flight at once may swap
//! parents: both are the same request, so either parent is right. A request twilight sends
//! again while its span is open (it retries a 429 at once) finds no unpaired span and takes
//! the oldest open one already paired with that method and path: its own.
//!
//! A request that carries a W3C `traceparent` header (a client of the standalone
//! `botscope-proxy` that propagates its context) is that context's child instead, with no
//! pairing; a request with neither starts a trace of its own.
//!
//! What waits to be paired is bounded: a span leaves when it closes, paired or not (a client
//! not pointed at the proxy, a request that never arrives), and at most `MAX_PENDING` wait
//! at once; past that, new ones go unpaired. Without the layer nothing is ever noted and
//! taking is one atomic load.

#[cfg(feature = "traces")]
mod pending;

#[cfg(feature = "traces")]
pub use pending::MAX_PENDING;
#[cfg(feature = "traces")]
pub(crate) use pending::{closed, len, opened};

/// The OpenTelemetry context of the twilight span a request was paired with.
#[cfg(feature = "traces")]
pub(crate) type Parent = opentelemetry::Context;
/// Without feature `traces` no request is paired.
#[cfg(not(feature = "traces"))]
pub(crate) type Parent = std::convert::Infallible;

/// The parent of `request`'s spans: the one an earlier layer found (left in its
/// extensions), else the context of its `traceparent` header, else the twilight span paired
/// now.
pub(crate) fn parent_of<B>(request: &mut http::Request<B>) -> Option<Parent> {
    #[cfg(feature = "traces")]
    {
        #[derive(Clone)]
        struct Paired(Parent);

        // botscope's spans are `debug`: with no subscriber that wants them, no parent matters
        // (a static check, free when nothing records spans)
        if !tracing::level_enabled!(tracing::Level::DEBUG) {
            return None;
        }
        if let Some(Paired(parent)) = request.extensions().get::<Paired>() {
            return Some(parent.clone());
        }
        if let Some(parent) = traceparent(request.headers()) {
            request.extensions_mut().insert(Paired(parent.clone()));
            return Some(parent);
        }
        let path = request.uri().path();
        let rest = path
            .strip_prefix("/api/")
            .map(|rest| match rest.split_once('/') {
                Some((version, rest)) if version.starts_with('v') => rest,
                _ => rest,
            })?;
        let parent = pending::take(request.method().as_str(), rest, |id| {
            tracing::dispatcher::get_default(|dispatch| {
                tracing_opentelemetry::get_otel_context(id, dispatch)
            })
        })??;
        request.extensions_mut().insert(Paired(parent.clone()));
        Some(parent)
    }
    #[cfg(not(feature = "traces"))]
    {
        let _ = request;
        None
    }
}

/// The remote context a W3C `traceparent` (and `tracestate`) header carries, if valid.
#[cfg(feature = "traces")]
fn traceparent(headers: &http::HeaderMap) -> Option<Parent> {
    use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
    use opentelemetry::trace::TraceContextExt as _;

    struct Headers<'a>(&'a http::HeaderMap);

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key)?.to_str().ok()
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }

    if !headers.contains_key("traceparent") {
        return None;
    }
    let context =
        opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&Headers(headers));
    context.span().span_context().is_valid().then_some(context)
}

/// Makes `span` a child of `parent` in OpenTelemetry (it must not have started yet).
pub(crate) fn adopt(span: &tracing::Span, parent: Option<&Parent>) {
    #[cfg(feature = "traces")]
    if let Some(parent) = parent {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        // An error means no OpenTelemetry layer records the span: nothing to link.
        let _ = span.set_parent(parent.clone());
    }
    #[cfg(not(feature = "traces"))]
    let _ = (span, parent);
}
