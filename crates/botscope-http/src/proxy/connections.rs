//! The proxy's connections, bounded where it matters. Up to `max` open connections are let in
//! as they come. Past `max`, a new connection closes one that has waited at least
//! [`GRACE`] for a request head — first those that never sent a request (accepted and silent,
//! or holding a half-sent head), oldest first, then the one idle longest between requests. If
//! none has, the new one is let in over the cap, up to twice `max`; past that, the waiting
//! connection first in the same order goes whatever its age. A connection with a request in
//! flight is never closed, and when every open connection has one, the new connection is let
//! in.
//!
//! Why this policy: with the proxy, the bot's requests wait for their ratelimit bucket inside
//! the proxy, each holding its connection busy, so a burst the bucket holds (hundreds of
//! requests behind a 429) is legitimately hundreds of busy connections, and a burst of new
//! connections has not sent its heads yet when the next one is accepted; closing or refusing
//! them would fail requests the bot expects to be queued. Connections held open without a
//! request — the attack — are the ones closed once they have waited [`GRACE`], so they can
//! neither keep the bot out nor fill the file table: open connections stay within twice `max`
//! plus the requests in flight. The bot's idle keep-alive connections go only after every
//! never-used one (hyper's client, under twilight-http, retries a request whose pooled
//! connection closed before it was sent).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use botscope_core::clock::{self, Instant};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::task::AbortHandle;

/// How long a connection past the cap may wait for its request head before it can be closed
/// to make room: a client sends its head as it connects, but the proxy may accept a burst of
/// connections before it reads their heads.
pub(crate) const GRACE: Duration = Duration::from_secs(1);

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
            epoch: clock::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table holds no invariant a panic elsewhere could break halfway.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for a new connection if the cap is reached and some connection waits for
    /// a request head, then runs it with `spawn` (given its [`Activity`] and a
    /// [`Registration`] to hold until it ends).
    pub(crate) fn admit(&self, spawn: impl FnOnce(Arc<Activity>, Registration) -> AbortHandle) {
        // Held across the spawn, so the task cannot end (and unregister) before it is
        // registered.
        let mut table = self.lock();
        let open = table.open.len();
        if open >= self.max {
            let now = millis_since(self.epoch);
            let grace = u64::try_from(GRACE.as_millis()).unwrap_or(u64::MAX);
            // Never used before used, then oldest first; young ones only past twice the cap.
            let any_age = open >= self.max.saturating_mul(2);
            let waiting = table
                .open
                .iter()
                .filter_map(|(id, open)| {
                    let (used, since) = open.activity.waiting()?;
                    (any_age || now.saturating_sub(since) >= grace).then_some((used, since, *id))
                })
                .min();
            if let Some((_, _, id)) = waiting {
                if let Some(closed) = table.open.remove(&id) {
                    closed.abort.abort();
                }
                tracing::debug!(
                    max = self.max,
                    "botscope proxy: connection cap reached, closed a connection waiting for a request"
                );
            } else {
                tracing::debug!(
                    max = self.max,
                    open,
                    "botscope proxy: connection cap reached with no connection waiting long, let the new one in"
                );
            }
        }
        let id = table.next;
        table.next += 1;
        let activity = Arc::new(Activity {
            epoch: self.epoch,
            busy: AtomicUsize::new(0),
            used: AtomicBool::new(false),
            waiting_since: AtomicU64::new(millis_since(self.epoch)),
        });
        let registration = Registration {
            id,
            connections: self.clone(),
        };
        let abort = spawn(Arc::clone(&activity), registration);
        table.open.insert(id, Open { abort, activity });
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
    u64::try_from(clock::now().saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

/// What one connection is doing: how many requests it has in flight, and since when it has
/// had none.
pub(crate) struct Activity {
    epoch: Instant,
    busy: AtomicUsize,
    /// Whether a request head has arrived on it yet.
    used: AtomicBool,
    waiting_since: AtomicU64,
}

impl Activity {
    /// Since when (ms after the epoch) the connection has waited for a request head, or
    /// `None` while a request is in flight.
    fn waiting_since(&self) -> Option<u64> {
        (self.busy.load(Ordering::Acquire) == 0).then(|| self.waiting_since.load(Ordering::Acquire))
    }

    /// The eviction order of a connection waiting for a request head (never used ones first,
    /// then oldest first), or `None` while a request is in flight.
    fn waiting(&self) -> Option<(bool, u64)> {
        let since = self.waiting_since()?;
        Some((self.used.load(Ordering::Acquire), since))
    }

    /// A request in flight until the guard drops.
    fn begin(self: &Arc<Self>) -> Busy {
        self.used.store(true, Ordering::Release);
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
    fn park(connections: &Connections) -> Arc<Activity> {
        let mut kept = None;
        connections.admit(|activity, registration| {
            kept = Some(Arc::clone(&activity));
            tokio::spawn(async move {
                let _registration = registration;
                std::future::pending::<()>().await;
            })
            .abort_handle()
        });
        kept.expect("spawned")
    }

    fn gone(connection: &Arc<Activity>) -> bool {
        Arc::strong_count(connection) == 1
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_cap_a_waiting_one_goes_and_busy_ones_stay() {
        let connections = Connections::new(2);
        let first = park(&connections);
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let second = park(&connections);
        let in_flight = second.begin();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;

        // Full: the waiting first one makes room, the busy second one stays.
        let third = park(&connections);
        tokio::task::yield_now().await;
        assert_eq!(connections.len(), 2);
        assert!(gone(&first), "the first connection is gone");

        // Both busy now: a new connection is let in over the cap, never refused.
        let also_in_flight = third.begin();
        let fourth = park(&connections);
        assert_eq!(connections.len(), 3);
        assert!(!gone(&second) && !gone(&third) && !gone(&fourth));
        drop((in_flight, also_in_flight));
    }

    #[tokio::test(start_paused = true)]
    async fn young_connections_are_let_in_over_the_cap_up_to_twice_it() {
        let connections = Connections::new(2);
        // A burst: four new connections whose heads have not been read yet.
        let burst: Vec<_> = (0..4).map(|_| park(&connections)).collect();
        tokio::task::yield_now().await;
        assert_eq!(connections.len(), 4);
        assert!(
            burst.iter().all(|c| !gone(c)),
            "none closed within the grace"
        );
        // Past twice the cap, the oldest waiting one goes whatever its age.
        let _fifth = park(&connections);
        tokio::task::yield_now().await;
        assert_eq!(connections.len(), 4);
        assert!(gone(&burst[0]));
    }

    #[tokio::test(start_paused = true)]
    async fn never_used_connections_go_before_idle_used_ones() {
        let connections = Connections::new(2);
        // The bot's pooled connection: used once, idle since.
        let pooled = park(&connections);
        drop(pooled.begin());
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        // A held one, newer but never used.
        let held = park(&connections);
        tokio::time::advance(std::time::Duration::from_secs(1)).await;

        let _new = park(&connections);
        tokio::task::yield_now().await;
        assert!(gone(&held), "the never-used connection goes");
        assert!(!gone(&pooled), "the bot's idle connection stays");
    }
}
