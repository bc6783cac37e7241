//! The proxy's port: botscope-server's accept loop with the proxy's connection policy.
//!
//! Up to [`max_connections`](crate::DiscordProxyBuilder::max_connections) open connections are
//! let in as they come. Past the cap, a new connection closes one that has waited
//! [`GRACE`] or more for a request head — first those that never sent a request (accepted and
//! silent, or holding a half-sent head), oldest first, then the one idle longest between
//! requests. If none has, the new one is let in over the cap, up to twice the cap; past that,
//! the waiting connection first in the same order goes whatever its age. A connection with a
//! request in flight (or an answer not yet written to its socket) is never closed, and when
//! every open connection has one, the new connection is let in.
//!
//! Why this policy: with the proxy, the bot's requests wait for their ratelimit bucket inside
//! the proxy, each holding its connection busy, so a burst the bucket holds (hundreds of
//! requests behind a 429) is legitimately hundreds of busy connections, and a burst of new
//! connections has not sent its heads yet when the next one is accepted; closing or refusing
//! them would fail requests the bot expects to be queued. Connections held open without a
//! request — the attack — are the ones closed once they have waited [`GRACE`], so they can
//! neither keep the bot out nor fill the file table: open connections stay within twice the
//! cap plus the requests in flight. The bot's idle keep-alive connections go only after every
//! never-used one (hyper's client, under twilight-http, retries a request whose pooled
//! connection closed before it was sent). A client that stops reading an answer is closed after
//! [`WRITE_TIMEOUT`].

use std::convert::Infallible;
use std::time::Duration;

use botscope_server::{CancellationToken, Server};
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use tokio::net::TcpListener;
use tower::Service;

use crate::failure::BoxError;

/// How long [`DiscordProxy::shutdown`](crate::DiscordProxy::shutdown) lets requests in flight finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a connection past the cap may wait for its request head before it can be closed
/// to make room: a client sends its head as it connects, but the proxy may accept a burst of
/// connections before it reads their heads.
pub(crate) const GRACE: Duration = Duration::from_secs(1);

/// How long a write to the bot may make no progress before its connection is closed.
pub(crate) const WRITE_TIMEOUT: Duration = botscope_server::DEFAULT_WRITE_TIMEOUT;

/// How the accept loop treats connections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The connection cap (at least one).
    pub(crate) max_connections: usize,
    /// hyper's HTTP/1 header read timeout; one too large for the clock means none.
    pub(crate) header_read_timeout: Duration,
}

impl Limits {
    /// The proxy's policy (see the [module docs](self)) as botscope-server's parameters.
    fn server(self) -> Server {
        let max = self.max_connections.max(1);
        Server::new()
            .name("botscope proxy")
            .max_connections(max)
            .burst(max)
            .grace(GRACE)
            .admit_when_busy(true)
            .header_read_timeout(self.header_read_timeout)
            .write_timeout(WRITE_TIMEOUT)
            .http2(true)
            .shutdown_grace(SHUTDOWN_GRACE)
    }
}

/// Accepts connections on `listener` and serves each with a clone of `service`, within
/// `limits`, until `shutdown` is cancelled; then stops accepting and lets the connections
/// finish for up to [`SHUTDOWN_GRACE`].
pub(crate) async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    shutdown: CancellationToken,
) where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    limits.server().serve(listener, service, shutdown).await;
}
