//! [`Forward`]: the innermost service of the proxy, sending each request on to Discord.
//!
//! It never fails: when the upstream cannot be reached (502), sends no response head in time
//! (504), or the client's own request body fails on the way (400), it answers itself, in
//! Discord's JSON error shape, and marks the response with its [`ForwardErrorType`] in the
//! response extensions. The layers above read the marker, whatever layers of your own sit
//! between them: the metrics layer counts `status_code="error"`, `"timeout"` or
//! `"client_error"`, the ratelimit layer cancels the permit. Each upstream failure logs one
//! `warn` line naming the route template, the method and the status, never the path (a
//! client's fault, `debug`). The upstream's body streams on as an
//! [`UpstreamBody`](crate::UpstreamBody), cut when it stalls (see [`body`](crate::body)).
//!
//! It also reads a few bodies for the layers above, bounded and passed on unchanged: those of
//! 4xx and 5xx answers (an [`ErrorBody`] in the extensions: Discord's JSON error code, or a page
//! of its [edge](crate::edge)), and that of `GET /gateway/bot` (a [`SessionStartLimit`]).
//!
//! ```
//! use botscope_http::ForwardErrorType;
//!
//! fn not_forwarded<B>(response: &http::Response<B>) -> Option<ForwardErrorType> {
//!     response.extensions().get::<ForwardErrorType>().copied()
//! }
//! # assert_eq!(not_forwarded(&http::Response::new(())), None);
//! ```

pub mod body;
pub(crate) mod future;
pub(crate) mod service;
pub(crate) mod upstream;

pub use crate::failure::ForwardErrorType;
pub use crate::forward::future::ForwardFuture;
pub use crate::forward::service::{DEFAULT_TIMEOUT, DEFAULT_UPSTREAM, Forward};
