//! The proxy's connections, bounded: at most `max` open at once. Past the cap, a new
//! connection closes the open one that has waited longest for a request head (just accepted
//! and silent, holding a half-sent head, or idle between requests); when every open
//! connection has a request in flight, the new one is closed at once.
//!
//! Why this policy: the bot's own connections (twilight-http's keep-alive pool) send a
//! request head the moment they connect and then have a request in flight, so they are never
//! the ones closed, while connections held open without a request make room for the bot's. A
//! cap that only refused new connections would leave the bot out for as long as the held
//! ones last. The file table is bounded either way: a connection past the cap is closed at
//! once, or closes another.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// The open connections of one proxy.
#[derive(Clone)]
pub(crate) struct Connections {
    table: Arc<Mutex<Table>>,
    max: usize,
    epoch: Instant,
}

#[derive(Default)]
struct Table {
    next: u64,
    open: HashMap<u64, Open>,
}

struct Open {
    abort: AbortHandle,
    activity: Arc<Activity>,
}

impl Connections {
    /// At most `max` (at least one) open at once.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            table: Arc::default(),
            max: max.max(1),
            epoch: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table holds no invariant a panic elsewhere could break halfway.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for a new connection, then runs it with `spawn` (given its [`Activity`]
    /// and a [`Registration`] to hold until it ends). Returns `false`, running nothing,
    /// when every open connection has a request in flight: drop the new one.
    pub(crate) fn admit(
        &self,
        spawn: impl FnOnce(Arc<Activity>, Registration) -> AbortHandle,
    ) -> bool {
        // Held across the spawn, so the task cannot end (and unregister) before it is
        // registered.
        let mut table = self.lock();
        if table.open.len() >= self.max {
            let longest = table
                .open
                .iter()
                .filter_map(|(id, open)| Some((open.activity.waiting_since()?, *id)))
                .min();
            let Some((_, id)) = longest else {
                return false;
            };
            if let Some(closed) = table.open.remove(&id) {
                closed.abort.abort();
            }
            tracing::debug!(
                max = self.max,
                "botscope proxy: connection cap reached, closed the connection waiting longest for a request"
            );
        }
        let id = table.next;
        table.next += 1;
        let activity = Arc::new(Activity {
            epoch: self.epoch,
            busy: AtomicUsize::new(0),
            waiting_since: AtomicU64::new(millis_since(self.epoch)),
        });
        let registration = Registration {
            id,
            connections: self.clone(),
        };
        let abort = spawn(Arc::clone(&activity), registration);
        table.open.insert(id, Open { abort, activity });
        true
    }

    /// Open connections now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().open.len()
    }
}

/// Held by a connection's task: unregisters the connection when the task ends or is aborted.
pub(crate) struct Registration {
    id: u64,
    connections: Connections,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.lock().open.remove(&self.id);
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What one connection is doing: how many requests it has in flight, and since when it has
/// had none.
pub(crate) struct Activity {
    epoch: Instant,
    busy: AtomicUsize,
    waiting_since: AtomicU64,
}

impl Activity {
    /// Since when (ms after the epoch) the connection has waited for a request head, or
    /// `None` while a request is in flight.
    fn waiting_since(&self) -> Option<u64> {
        (self.busy.load(Ordering::Acquire) == 0).then(|| self.waiting_since.load(Ordering::Acquire))
    }

    /// A request in flight until the guard drops.
    fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(self))
    }
}

/// One request in flight on a connection: from its head to the end of its response body.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        // The time first: a connection seen idle must show when it became so.
        activity
            .waiting_since
            .store(millis_since(activity.epoch), Ordering::Release);
        activity.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The gate of one connection, marking it busy from each request head to the end of its
/// response body.
#[derive(Clone)]
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<tower::util::Oneshot<S, Request<Incoming>>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        TrackedFuture {
            busy: Some(self.activity.begin()),
            inner: tower::util::Oneshot::new(self.inner.clone(), request),
        }
    }
}

pin_project! {
    /// The future of [`Tracked`]: hands its guard to the response body.
    pub(crate) struct TrackedFuture<F> {
        #[pin]
        inner: F,
        busy: Option<Busy>,
    }
}

impl<F, B, E> std::future::Future for TrackedFuture<F>
where
    F: std::future::Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let busy = this.busy.take();
        Poll::Ready(result.map(|response| response.map(|inner| TrackedBody { inner, _busy: busy })))
    }
}

pin_project! {
    /// A response body that keeps its connection busy until it is dropped.
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        _busy: Option<Busy>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that runs until aborted, registered like a connection.
    fn park(connections: &Connections) -> Option<Arc<Activity>> {
        let mut kept = None;
        let admitted = connections.admit(|activity, registration| {
            kept = Some(Arc::clone(&activity));
            tokio::spawn(async move {
                let _registration = registration;
                std::future::pending::<()>().await;
            })
            .abort_handle()
        });
        admitted.then(|| kept.expect("spawned"))
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_cap_the_longest_waiting_goes_and_busy_ones_stay() {
        let connections = Connections::new(2);
        let first = park(&connections).expect("room");
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let second = park(&connections).expect("room");
        let _in_flight = second.begin();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;

        // Full: the idle first one makes room, the busy second one stays.
        let third = park(&connections).expect("room made");
        tokio::task::yield_now().await;
        assert_eq!(connections.len(), 2);
        assert!(
            Arc::strong_count(&first) == 1,
            "the first connection is gone"
        );

        // Both busy now: a new connection is refused.
        let _also_in_flight = third.begin();
        assert!(park(&connections).is_none());
        assert_eq!(connections.len(), 2);
    }
}
