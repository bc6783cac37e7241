//! The open connections of one server and the policy that makes room among them.
//!
//! Up to `max` open connections are let in as they come. Past `max`, a new connection closes
//! one that has waited at least `grace` for a request head — first those that never sent a
//! request (accepted and silent, or holding a half-sent head), oldest first, then the one idle
//! longest between requests. If none has, the new one is let in over the cap, up to `max +
//! burst`; past that, the waiting connection first in the same order goes whatever its age. A
//! connection with a request in flight, or whose last answer hyper has not yet handed to the
//! kernel, is never closed; when every one is such, the new connection is let in
//! (`admit_when_busy`) or closed at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

/// How the table makes room: see the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    pub(crate) max: usize,
    pub(crate) burst: usize,
    pub(crate) grace: Duration,
    pub(crate) admit_when_busy: bool,
    /// Names the server in log lines.
    pub(crate) name: &'static str,
}

/// The open connections of one server.
#[derive(Clone)]
pub(crate) struct Connections {
    table: Arc<Mutex<Table>>,
    policy: Policy,
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
    /// A table for `policy`, whose cap is taken as at least one.
    pub(crate) fn new(mut policy: Policy) -> Self {
        policy.max = policy.max.max(1);
        Self {
            table: Arc::default(),
            policy,
            epoch: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table holds no invariant a panic elsewhere could break halfway.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the next connection will have to make room (or be refused).
    pub(crate) fn is_full(&self) -> bool {
        self.lock().open.len() >= self.policy.max
    }

    /// Makes room for a new connection as the policy says, then runs it with `spawn` (given
    /// its [`Activity`] and a [`Registration`] to hold until it ends). `false`, without
    /// calling `spawn`, if the policy refuses it.
    pub(crate) fn admit(
        &self,
        spawn: impl FnOnce(Arc<Activity>, Registration) -> AbortHandle,
    ) -> bool {
        let Policy {
            max,
            burst,
            grace,
            admit_when_busy,
            name,
        } = self.policy;
        // Held across the spawn, so the task cannot end (and unregister) before it is
        // registered.
        let mut table = self.lock();
        let open = table.open.len();
        if open >= max {
            let now = millis_since(self.epoch);
            let grace = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
            // Never used before used, then oldest first; young ones only past the burst.
            let any_age = open >= max.saturating_add(burst);
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
                    server = name,
                    max,
                    "connection cap reached, closed a connection waiting for a request"
                );
            } else if any_age && !admit_when_busy {
                tracing::debug!(
                    server = name,
                    max,
                    "connection cap reached with every connection answering, closed the new one"
                );
                return false;
            } else {
                tracing::debug!(
                    server = name,
                    max,
                    open,
                    "connection cap reached with no connection waiting long, let the new one in"
                );
            }
        }
        let id = table.next;
        table.next += 1;
        let activity = Arc::new(Activity {
            epoch: self.epoch,
            busy: AtomicUsize::new(0),
            used: AtomicBool::new(false),
            unflushed: AtomicBool::new(false),
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
    pub(crate) fn len(&self) -> usize {
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

/// What one connection is doing: how many requests it has in flight, whether the bytes of its
/// last answer are still in hyper's buffer, and since when it has waited for a request head.
pub(crate) struct Activity {
    epoch: Instant,
    busy: AtomicUsize,
    /// Whether a request head has arrived on it yet.
    used: AtomicBool,
    /// An answer's body has ended but hyper may still hold its last bytes: set when a request
    /// ends, cleared when the connection's writes are flushed (see `ConnectionIo`).
    unflushed: AtomicBool,
    waiting_since: AtomicU64,
}

impl Activity {
    /// The eviction order of a connection waiting for a request head (never used ones first,
    /// then oldest first), or `None` while a request is in flight or its answer unflushed.
    fn waiting(&self) -> Option<(bool, u64)> {
        let idle =
            self.busy.load(Ordering::Acquire) == 0 && !self.unflushed.load(Ordering::Acquire);
        idle.then(|| {
            (
                self.used.load(Ordering::Acquire),
                self.waiting_since.load(Ordering::Acquire),
            )
        })
    }

    /// A request in flight until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> Busy {
        self.used.store(true, Ordering::Release);
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(self))
    }

    /// Everything written so far has reached the socket: an ended answer is delivered.
    pub(crate) fn flushed(&self) {
        if self.unflushed.load(Ordering::Acquire) {
            // The time first: a connection seen idle must show when it became so.
            self.waiting_since
                .store(millis_since(self.epoch), Ordering::Release);
            self.unflushed.store(false, Ordering::Release);
        }
    }
}

/// One request in flight on a connection: from its head to the end of its response body.
pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        // Unflushed first: a connection seen without a request must still count as busy
        // until its answer is written.
        activity.unflushed.store(true, Ordering::Release);
        activity.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max: usize, burst: usize, admit_when_busy: bool) -> Policy {
        Policy {
            max,
            burst,
            grace: Duration::from_secs(1),
            admit_when_busy,
            name: "test",
        }
    }

    /// A task that runs until aborted, registered like a connection; `None` if refused.
    fn park(connections: &Connections) -> Option<Arc<Activity>> {
        let mut kept = None;
        connections.admit(|activity, registration| {
            kept = Some(Arc::clone(&activity));
            tokio::spawn(async move {
                let _registration = registration;
                std::future::pending::<()>().await;
            })
            .abort_handle()
        });
        kept
    }

    fn parked(connections: &Connections) -> Arc<Activity> {
        park(connections).expect("admitted")
    }

    fn gone(connection: &Arc<Activity>) -> bool {
        Arc::strong_count(connection) == 1
    }

    /// A request that has ended and whose answer was written.
    fn answered(connection: &Arc<Activity>) {
        drop(connection.begin());
        connection.flushed();
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_cap_a_waiting_one_goes_and_busy_ones_stay() {
        let connections = Connections::new(policy(2, 2, true));
        let first = parked(&connections);
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = parked(&connections);
        let in_flight = second.begin();
        tokio::time::advance(Duration::from_secs(1)).await;

        // Full: the waiting first one makes room, the busy second one stays.
        let third = parked(&connections);
        tokio::task::yield_now().await;
        assert_eq!(connections.len(), 2);
        assert!(gone(&first), "the first connection is gone");

        // Both busy now: a new connection is let in over the cap, never refused.
        let also_in_flight = third.begin();
        let fourth = parked(&connections);
        assert_eq!(connections.len(), 3);
        assert!(!gone(&second) && !gone(&third) && !gone(&fourth));
        drop((in_flight, also_in_flight));
    }

    #[tokio::test(start_paused = true)]
    async fn young_connections_are_let_in_over_the_cap_up_to_the_burst() {
        let connections = Connections::new(policy(2, 2, true));
        // A burst: four new connections whose heads have not been read yet.
        let burst: Vec<_> = (0..4).map(|_| parked(&connections)).collect();
        tokio::task::yield_now().await;
        assert_eq!(connections.len(), 4);
        assert!(
            burst.iter().all(|c| !gone(c)),
            "none closed within the grace"
        );
        // Past the burst, the oldest waiting one goes whatever its age.
        let _fifth = parked(&connections);
        tokio::task::yield_now().await;
        assert_eq!(connections.len(), 4);
        assert!(gone(&burst[0]));
    }

    #[tokio::test(start_paused = true)]
    async fn never_used_connections_go_before_idle_used_ones() {
        let connections = Connections::new(policy(2, 2, true));
        // The bot's pooled connection: used once, idle since.
        let pooled = parked(&connections);
        answered(&pooled);
        tokio::time::advance(Duration::from_secs(5)).await;
        // A held one, newer but never used.
        let held = parked(&connections);
        tokio::time::advance(Duration::from_secs(1)).await;

        let _new = parked(&connections);
        tokio::task::yield_now().await;
        assert!(gone(&held), "the never-used connection goes");
        assert!(!gone(&pooled), "the bot's idle connection stays");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_not_yet_flushed_keeps_its_connection() {
        let connections = Connections::new(policy(1, 0, false));
        let scraper = parked(&connections);
        // The body's last frame is taken, its bytes still in hyper's buffer.
        drop(scraper.begin());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(park(&connections).is_none(), "nothing to close: refused");
        assert!(!gone(&scraper));

        scraper.flushed();
        let next = park(&connections);
        tokio::task::yield_now().await;
        assert!(next.is_some() && gone(&scraper), "written, it may go");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_burst_a_full_table_closes_the_oldest_idle_one_or_refuses() {
        let connections = Connections::new(policy(4, 0, false));
        let first: Vec<_> = (0..4).map(|_| parked(&connections)).collect();
        let answering = first[0].begin();
        // No grace without a burst: the oldest not answering goes at once.
        let _fifth = parked(&connections);
        tokio::task::yield_now().await;
        assert!(!gone(&first[0]), "being answered, it stays");
        assert!(gone(&first[1]), "the next oldest made room");

        let busy: Vec<_> = [&first[2], &first[3], &_fifth]
            .iter()
            .map(|c| c.begin())
            .collect();
        assert!(park(&connections).is_none(), "nothing idle to close");
        assert_eq!(connections.len(), 4);
        drop((busy, answering));
    }
}
