//! The proxy's accept loop: one function, [`serve`], given the listener, the service of every
//! connection, the connection limits and the shutdown signal. The connection policy is
//! [`Connections`]'s.

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::Service;

use crate::failure::BoxError;
use crate::proxy::connections::{Connections, Tracked};

/// How long [`DiscordProxy::shutdown`](crate::DiscordProxy::shutdown) lets requests in flight finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How the accept loop treats connections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The connection cap (see [`Connections`]).
    pub(crate) max_connections: usize,
    /// hyper's HTTP/1 header read timeout; one too large for the clock means none.
    pub(crate) header_read_timeout: Duration,
}

/// Accepts connections on `listener` and serves each with a clone of `service`, within
/// `limits`, until `signal` turns true; then stops accepting and lets the connections finish
/// for up to [`SHUTDOWN_GRACE`].
pub(crate) async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    mut signal: watch::Receiver<bool>,
) where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper adds the timeout to the clock: one too large for it means none.
    let header_read_timeout = botscope_core::clock::now()
        .checked_add(limits.header_read_timeout)
        .map(|_| limits.header_read_timeout);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let connections = Connections::new(limits.max_connections);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "botscope proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop_requested(&mut signal) => break,
        };
        let _ = stream.set_nodelay(true);
        connections.admit(|activity, registration| {
            let connection = builder
                .serve_connection(TokioIo::new(stream), Tracked::new(service.clone(), activity))
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                let _registration = registration;
                if let Err(error) = connection.await {
                    tracing::debug!(error = %error, "botscope proxy: connection ended with an error");
                }
            })
            .abort_handle()
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

/// Resolves once [`DiscordProxy::shutdown`](crate::DiscordProxy::shutdown) asks; never if the handle was dropped without it,
/// so a dropped handle leaves the proxy serving until the runtime stops.
async fn stop_requested(signal: &mut watch::Receiver<bool>) {
    loop {
        if *signal.borrow_and_update() {
            return;
        }
        if signal.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
