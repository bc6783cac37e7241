//! twilight's spans, safe to export and linked to the proxy's: [`TemplatePaths`], an
//! OpenTelemetry span processor that turns every `path` attribute into its route template
//! before the spans reach the exporter, and [`TwilightRequests`], a `tracing` layer after
//! which the in-process proxy's spans for a request are children of twilight's `request`
//! span that sent it.
//!
//! twilight-http opens `info_span!("request", method, path)` for every request, and its
//! ratelimiter a `response` span with the same fields. `path` is the raw request path:
//! snowflakes, and the tokens of webhooks and interactions (`webhooks/{id}/{token}`). A
//! `tracing` layer cannot change what another layer sees, so the rewrite happens where every
//! span passes once on its way out: in front of the exporter's processor.
//!
//! ```
//! use botscope_http::trace::TemplatePaths;
//! use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor};
//!
//! let exporter = InMemorySpanExporter::default(); // or the bot's OTLP exporter
//! let provider = SdkTracerProvider::builder()
//!     .with_span_processor(TemplatePaths::new(SimpleSpanProcessor::new(exporter.clone())))
//!     .build();
//! # use opentelemetry::trace::{Tracer as _, TracerProvider as _};
//! # use opentelemetry::KeyValue;
//! # provider.tracer("doc").in_span("request", |cx| {
//! #     use opentelemetry::trace::TraceContextExt as _;
//! #     cx.span().set_attribute(KeyValue::new("method", "POST"));
//! #     cx.span().set_attribute(KeyValue::new("path", "webhooks/1234567890123456789/s3cret-token"));
//! # });
//! # let spans = exporter.get_finished_spans().unwrap();
//! # let path = spans[0].attributes.iter().find(|kv| kv.key.as_str() == "path").unwrap();
//! # assert_eq!(path.value.as_str(), "/webhooks/{webhook_id}/{webhook_token}");
//! ```
//!
//! The rewrite is the one the `endpoint` label gets ([`route::template`]): the same closed
//! vocabulary, so a span says `/webhooks/{webhook_id}/{webhook_token}` where a label would.
//! It applies to every attribute named `path`, on spans and on their events, whoever wrote it;
//! a `method` attribute beside it (twilight's) picks the method, else `GET`.

use std::time::Duration;

use http::Method;
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context as LayerContext, Layer};

use crate::{pairing, route};

pub use crate::pairing::MAX_PENDING;

/// A `tracing` layer that notes twilight-http's `request` spans as they open, so the proxy's
/// spans for a request (`{method} {route}` and its `ratelimit wait`) become children of the
/// twilight span that sent it, in OpenTelemetry: the trace reads handler → twilight's
/// `request` → the proxy's request → Discord.
///
/// twilight gives no hook and no header to link the two, so they are paired by method and
/// path: the proxy takes the oldest unpaired twilight span with the same ones. Two identical
/// requests in flight at once may swap parents; both are the same request, so either is
/// right. A request twilight sends again under the same span (it retries a 429 at once) is
/// that span's child too. A span waits to be paired until it closes (a client not pointed at the proxy, or a
/// request that never reaches it, leaves nothing behind), and at most [`MAX_PENDING`] wait;
/// past that, requests go unpaired.
///
/// Stack it with tracing-opentelemetry's layer (in either order), in the process that runs
/// the proxy:
///
/// ```
/// use botscope_http::trace::TwilightRequests;
/// use tracing_subscriber::layer::SubscriberExt as _;
/// # use opentelemetry::trace::TracerProvider as _;
/// # let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
///
/// let subscriber = tracing_subscriber::registry()
///     .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bot")))
///     .with(TwilightRequests::new());
/// # drop(subscriber);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TwilightRequests;

impl TwilightRequests {
    /// The layer.
    pub const fn new() -> Self {
        Self
    }

    /// How many open twilight requests the pairing knows now (paired or waiting to be).
    pub fn pending() -> usize {
        pairing::len()
    }
}

impl<S: Subscriber> Layer<S> for TwilightRequests {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, _: LayerContext<'_, S>) {
        let metadata = attributes.metadata();
        if metadata.name() != "request" || !metadata.target().starts_with("twilight_http") {
            return;
        }
        let mut fields = RequestFields::default();
        attributes.record(&mut fields);
        if let (Some(method), Some(path)) = (fields.method, fields.path) {
            pairing::opened(id.clone(), &method, &path);
        }
    }

    fn on_close(&self, id: Id, _: LayerContext<'_, S>) {
        pairing::closed(&id);
    }
}

/// twilight's `method` and `path` fields.
#[derive(Default)]
struct RequestFields {
    method: Option<String>,
    path: Option<String>,
}

impl Visit for RequestFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            METHOD => self.method = Some(value.to_owned()),
            PATH => self.path = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// The attribute twilight's spans carry the raw request path in.
pub const PATH: &str = "path";
/// The attribute twilight's spans carry the request method in.
pub const METHOD: &str = "method";

/// A span processor that hands `inner` every span with its `path` attributes rewritten to
/// route templates. See the [module docs](self).
#[derive(Debug)]
pub struct TemplatePaths<P> {
    inner: P,
}

impl<P> TemplatePaths<P> {
    /// Rewrites the paths of every span before `inner` (a batch or simple processor in front
    /// of the exporter) sees it.
    pub fn new(inner: P) -> Self {
        Self { inner }
    }

    /// The wrapped processor.
    pub fn into_inner(self) -> P {
        self.inner
    }
}

impl<P: SpanProcessor> SpanProcessor for TemplatePaths<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        template_paths(&mut span);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Rewrites the `path` attributes of `span` and of its events to route templates.
pub fn template_paths(span: &mut SpanData) {
    template_attributes(&mut span.attributes);
    for event in &mut span.events.events {
        template_attributes(&mut event.attributes);
    }
}

fn template_attributes(attributes: &mut [KeyValue]) {
    let Some(index) = attributes.iter().position(|kv| kv.key.as_str() == PATH) else {
        return;
    };
    let method = attributes
        .iter()
        .find(|kv| kv.key.as_str() == METHOD)
        .and_then(|kv| Method::from_bytes(kv.value.as_str().as_bytes()).ok())
        .unwrap_or(Method::GET);
    // twilight's paths are relative to the API's base (`channels/42/messages`); the parser
    // reads paths as they reach Discord, under `/api`.
    let path = attributes[index].value.as_str();
    let template = if path.starts_with("/api/") {
        route::template(&method, &path)
    } else {
        route::template(&method, &format!("/api/{}", path.trim_start_matches('/')))
    };
    attributes[index].value = Value::from(template);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilights_paths_become_templates_and_other_attributes_stay() {
        let mut attributes = [
            KeyValue::new(METHOD, "POST"),
            KeyValue::new(
                PATH,
                "interactions/1283456789012345678/aW50ZXJhY3Rpb246MTI4/callback",
            ),
            KeyValue::new("busy_ns", 5_i64),
        ];
        template_attributes(&mut attributes);
        assert_eq!(
            attributes[1].value.as_str(),
            "/interactions/{interaction_id}/{interaction_token}/callback"
        );
        assert_eq!(attributes[2].value, Value::I64(5));
        // no method beside it: read as GET
        let mut alone = [KeyValue::new(PATH, "channels/42/messages/43")];
        template_attributes(&mut alone);
        assert_eq!(
            alone[0].value.as_str(),
            "/channels/{channel_id}/messages/{message_id}"
        );
    }
}
