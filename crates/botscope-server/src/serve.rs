//! [`Server`]: the connection policy and the one accept loop that applies it.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::connections::{Connections, Policy};
use crate::io::ConnectionIo;
use crate::tracked::Tracked;

/// Open connections past which a new one makes room, unless
/// [`max_connections`](Server::max_connections) says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// How long a connection past the cap may wait for its request head before it can be closed
/// to make room, unless [`grace`](Server::grace) says otherwise: a client sends its head as it
/// connects, but a server may accept a burst of connections before it reads their heads.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(1);
/// How long a client may take to send a request head by default (hyper's own default).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a write may make no progress before the connection is closed, by default.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long open connections get to finish after shutdown is asked, by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the loop waits after a failed `accept` (out of file descriptors and the like)
/// before the next one, instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How a server treats its connections, and the accept loop that does it: see the [crate
/// docs](crate).
#[derive(Clone, Debug)]
#[must_use = "nothing is served until serve() is called"]
pub struct Server {
    name: &'static str,
    max_connections: usize,
    burst: usize,
    grace: Duration,
    admit_when_busy: bool,
    header_read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    keep_alive: bool,
    http2: bool,
    shutdown_grace: Duration,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            name: "botscope",
            max_connections: DEFAULT_MAX_CONNECTIONS,
            burst: 0,
            grace: DEFAULT_GRACE,
            admit_when_busy: true,
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
            keep_alive: true,
            http2: false,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// `timeout`, or `None` if it is too large to add to the clock (hyper and tokio add timeouts
/// to it): such a value means no timeout.
fn on_the_clock(timeout: Duration) -> Option<Duration> {
    tokio::time::Instant::now()
        .checked_add(timeout)
        .map(|_| timeout)
}

impl Server {
    /// The defaults: [`DEFAULT_MAX_CONNECTIONS`], no burst, [`DEFAULT_GRACE`], let in when
    /// every connection is busy, [`DEFAULT_HEADER_READ_TIMEOUT`], [`DEFAULT_WRITE_TIMEOUT`],
    /// keep-alive on, HTTP/1 only, [`DEFAULT_SHUTDOWN_GRACE`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The `server` field of the server's log lines (default `botscope`).
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Open connections past which each new one makes room (at least 1; default
    /// [`DEFAULT_MAX_CONNECTIONS`]): it closes one that has waited the [`grace`](Self::grace)
    /// or more for a request head, never-used ones first (oldest first), then the one idle
    /// longest between requests.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Connections let in over the cap while none has waited the grace (default 0): a burst
    /// of new connections whose heads are not read yet. Past `max_connections + burst` the
    /// first waiting connection in the same order goes whatever its age.
    pub fn burst(mut self, burst: usize) -> Self {
        self.burst = burst;
        self
    }

    /// How long a connection must have waited for a request head before it may be closed to
    /// make room, within the burst (default [`DEFAULT_GRACE`]).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// What happens to a new connection past `max_connections + burst` when every open one
    /// is busy (a request in flight, or an answer not yet written to the socket), none of
    /// which is ever closed: let in (`true`, the default; a server whose requests
    /// legitimately wait, such as a proxy queueing for a ratelimit) or closed at once
    /// (`false`; open connections then never exceed `max_connections + burst`).
    pub fn admit_when_busy(mut self, admit: bool) -> Self {
        self.admit_when_busy = admit;
        self
    }

    /// How long a connection may take to send a complete request head, counted from the
    /// moment it starts waiting for one: when it is accepted, or when its previous response
    /// is sent (default [`DEFAULT_HEADER_READ_TIMEOUT`]). It is hyper's HTTP/1 header read
    /// timeout, so it is also the keep-alive idle timeout of HTTP/1 connections. A value too
    /// large to add to the clock (`Duration::MAX`) means no timeout.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = on_the_clock(timeout);
        self
    }

    /// How long a write to a client may make no progress before its connection is closed
    /// (default [`DEFAULT_WRITE_TIMEOUT`]): a client that stops reading its answer cannot hold
    /// the connection, and the answer's memory, for longer. A value too large to add to the
    /// clock (`Duration::MAX`) means no timeout.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = on_the_clock(timeout);
        self
    }

    /// Whether HTTP/1 connections are kept alive between requests (default `true`).
    pub fn keep_alive(mut self, keep_alive: bool) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Whether to speak HTTP/2 as well as HTTP/1, told apart by the connection preface
    /// (default `false`: HTTP/1 only). HTTP/2 connections are bounded by the connection cap
    /// and the write timeout only.
    pub fn http2(mut self, http2: bool) -> Self {
        self.http2 = http2;
        self
    }

    /// How long open connections get to finish once shutdown is asked (default
    /// [`DEFAULT_SHUTDOWN_GRACE`]).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Serves `service` on every connection `listener` accepts until `shutdown` is
    /// cancelled, then stops accepting and gives open connections the
    /// [`shutdown_grace`](Self::shutdown_grace) to finish.
    ///
    /// The loop never stops on its own: a failed `accept` (out of file descriptors) is logged
    /// at `warn` and retried 50 ms later. Each accepted socket gets `TCP_NODELAY`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the listener and leaves the connections already accepted
    /// to run until they end.
    pub async fn serve<S, B>(self, listener: TcpListener, service: S, shutdown: CancellationToken)
    where
        S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        if !self.http2 {
            builder = builder.http1_only();
        }
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .keep_alive(self.keep_alive);
        let graceful = GracefulShutdown::new();
        let connections = Connections::new(Policy {
            max: self.max_connections,
            burst: self.burst,
            grace: self.grace,
            admit_when_busy: self.admit_when_busy,
            name: self.name,
        });
        loop {
            let stream = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(server = self.name, %error, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            if connections.is_full() {
                // Let the connections accepted so far read their requests before one of them
                // is closed to make room: under a flood of new connections, a client's request
                // could otherwise wait unread in its socket until its connection is the oldest
                // waiting one.
                tokio::task::yield_now().await;
            }
            // Refused, the socket is dropped (closed) with the closure.
            connections.admit(|activity, registration| {
                let io =
                    ConnectionIo::new(stream, std::sync::Arc::clone(&activity), self.write_timeout);
                let connection = builder
                    .serve_connection(TokioIo::new(io), Tracked::new(service.clone(), activity))
                    .into_owned();
                let connection = graceful.watch(connection);
                let name = self.name;
                tokio::spawn(async move {
                    let _registration = registration;
                    if let Err(error) = connection.await {
                        tracing::debug!(server = name, %error, "connection ended with an error");
                    }
                })
                .abort_handle()
            });
        }
        drop(listener);
        let _ = tokio::time::timeout(self.shutdown_grace, graceful.shutdown()).await;
    }
}

/// A listener on `addr` with room for `backlog` connections waiting for `accept` (a crowd of
/// reconnecting clients then does not get a client's SYN dropped, which costs it a
/// retransmission a second later); inside a Tokio runtime.
///
/// # Errors
///
/// The socket's, if it cannot be created, bound (the address is in use) or listen.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std's `TcpListener::bind` does on Unix: a restart binds despite connections in
    // TIME_WAIT (never while another socket listens there).
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}
