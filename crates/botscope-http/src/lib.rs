#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The floors, bottom up; a module imports only from the floors below it.
// 1. Vocabulary: route templates, label keys and values, the ratelimit scope, failure and edge
//    markers, interaction codes, session limits.
pub mod edge;
mod failure;
pub mod interaction;
mod labels;
mod pairing;
pub mod route;
mod scope;
pub mod session;
// 2. Instruments: every instrument of the crate, built once.
mod instruments;
// 3. The tower layers and the innermost service.
pub mod forward;
pub mod metrics;
pub mod ratelimit;
// 4. The proxy, which stacks them behind a server.
pub mod proxy;
// Beside the floors: twilight's spans made safe to export (route templates only).
#[cfg(feature = "traces")]
pub mod trace;

pub use edge::{EdgeErrorKind, ErrorBody};
pub use failure::{BodyErrorKind, ForwardFailure};
pub use forward::Forward;
pub use forward::body::{self, UpstreamBody};
pub use instruments::{
    BODY_ERRORS, CLOCK_SKEW, EDGE_ERRORS, GLOBAL_HOLD, HTTP_CLIENT_REQUEST_DURATION,
    HTTP_CLIENT_REQUEST_DURATION_BUCKETS, INTERACTION_FOLLOWUPS, INTERACTION_RESPONSE,
    INTERACTION_RESPONSES, INVALID_REQUESTS, INVALID_WINDOW, MAX_CONCURRENCY, RATELIMIT_WAIT,
    RATELIMITED, REQUEST_DURATION, REQUESTS, REQUESTS_IN_FLIGHT, REQUESTS_QUEUED, SECONDS,
    SESSION_STARTS_REMAINING, SESSION_STARTS_RESET, SESSION_STARTS_TOTAL_LIMIT,
};
pub use interaction::DiscordErrorCode;
pub use labels::{
    STATUS_CANCELLED, STATUS_CLIENT_ERROR, STATUS_ERROR, STATUS_PANIC, STATUS_TIMEOUT,
};
pub use metrics::{DiscordMetrics, DiscordMetricsLayer, DiscordMetricsLayerBuilder};
pub use proxy::{DiscordProxy, DiscordProxyBuilder, ProxyError, ProxyErrorType};
pub use ratelimit::{
    DiscordRateLimit, DiscordRateLimitLayer, DiscordRateLimitLayerBuilder, RateLimitScope,
};
pub use session::SessionStartLimit;

/// The instrumentation scope name of this crate's meter.
const SCOPE_NAME: &str = env!("CARGO_PKG_NAME");
/// The instrumentation scope version of this crate's meter.
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod static_checks {
    use super::*;

    static_assertions::assert_impl_all!(DiscordMetricsLayer: Clone, Send, Sync);
    static_assertions::assert_impl_all!(DiscordMetrics<tower::util::BoxCloneSyncService<http::Request<()>, http::Response<()>, std::convert::Infallible>>: Clone, Send, Sync);
    static_assertions::assert_impl_all!(DiscordRateLimitLayer: Clone, Send, Sync);
    static_assertions::assert_impl_all!(DiscordProxy: Send, Sync);
    static_assertions::assert_impl_all!(ProxyError: std::error::Error, Send, Sync);
    static_assertions::assert_impl_all!(route::Routes: Clone, Send, Sync);
    static_assertions::assert_impl_all!(route::Route: Clone, Send, Sync);
    static_assertions::assert_impl_all!(metrics::ResponseFuture<std::future::Ready<Result<http::Response<()>, std::convert::Infallible>>>: Send, Sync);
    static_assertions::assert_impl_all!(Forward: Clone, Send, Sync);
}
