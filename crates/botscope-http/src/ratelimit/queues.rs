//! The per-token queues of the routes exempt from the global limit: see
//! [Memory](crate::ratelimit#memory).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use botscope_core::clock::{self, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use twilight_http_ratelimiting::Endpoint;

/// How often the per-token queues of webhooks and interactions are swept by default: see
/// [Memory](crate::ratelimit#memory).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The per-token queues of the routes exempt from the global limit (webhooks, interaction
/// callbacks and follow-ups): see [Memory](crate::ratelimit#memory).
///
/// One FIFO queue per token's resource, one request of it in flight at a time (as in
/// twilight's queues), held until the reset once a response leaves its bucket exhausted. A
/// queue lives while a request holds or awaits its turn and, after that, only while it is
/// held: the last request out removes an unheld queue at once, and the sweep removes held
/// ones once their reset has passed.
pub(crate) struct TokenQueues {
    inner: Mutex<TokenMap>,
    /// Keys the queues: a hash of the route's resource, its token already hashed.
    hasher: RandomState,
    sweep_interval: Duration,
}

struct TokenMap {
    queues: HashMap<u64, TokenQueue>,
    /// When the next sweep is due.
    next_sweep: Instant,
    /// A sweep is also due once the map grows to this many queues: twice what the last sweep
    /// left, so sweeps cost O(1) per request and the map stays within twice its live size.
    sweep_len: usize,
}

struct TokenQueue {
    /// One permit: the turn of the request in flight. tokio's semaphore is fair (FIFO).
    turn: Arc<Semaphore>,
    /// Requests in flight or awaiting their turn (their [`Ticket`]s).
    users: usize,
    /// Until when the bucket is exhausted.
    held_until: Option<Instant>,
}

/// The fewest queues the map grows to before its size alone triggers a sweep.
pub(crate) const MIN_SWEEP_LEN: usize = 1_024;

impl TokenQueues {
    pub(crate) fn new(sweep_interval: Duration) -> Self {
        Self {
            inner: Mutex::new(TokenMap {
                queues: HashMap::new(),
                next_sweep: clock::now() + sweep_interval,
                sweep_len: MIN_SWEEP_LEN,
            }),
            hasher: RandomState::new(),
            sweep_interval,
        }
    }

    /// The map; a panic while it was held cannot leave it inconsistent (every change is one
    /// statement), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, TokenMap> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The queue key of a limiter path: its resource, the first three segments
    /// (`webhooks/{id}/{token}`, `interactions/{id}/{token}`), whose token is already a hash.
    pub(crate) fn key(&self, endpoint: &Endpoint) -> u64 {
        let resource = endpoint
            .path
            .match_indices('/')
            .nth(2)
            .map_or(endpoint.path.as_str(), |(end, _)| &endpoint.path[..end]);
        self.hasher.hash_one(resource)
    }

    /// Joins the queue of `key`, created if need be: the ticket, and the turn to wait for.
    pub(crate) fn join(self: &Arc<Self>, key: u64) -> (Ticket, Arc<Semaphore>) {
        let turn = {
            let mut map = self.lock();
            let queue = map.queues.entry(key).or_insert_with(|| TokenQueue {
                turn: Arc::new(Semaphore::new(1)),
                users: 0,
                held_until: None,
            });
            queue.users += 1;
            Arc::clone(&queue.turn)
        };
        let ticket = Ticket {
            queues: Arc::clone(self),
            key,
            held_until: None,
        };
        (ticket, turn)
    }

    /// Until when the queue of `key` is held, if it is.
    pub(crate) fn held_until(&self, key: u64) -> Option<Instant> {
        let until = self.lock().queues.get(&key)?.held_until?;
        (until > clock::now()).then_some(until)
    }

    /// A ticket of `key` is gone, its response having held the queue until `held_until`.
    fn leave(&self, key: u64, held_until: Option<Instant>) {
        let now = clock::now();
        let mut map = self.lock();
        if let Some(queue) = map.queues.get_mut(&key) {
            queue.users = queue.users.saturating_sub(1);
            if held_until.is_some() {
                queue.held_until = held_until.max(queue.held_until);
            }
            if queue.users == 0 && queue.held_until.is_none_or(|until| until <= now) {
                map.queues.remove(&key);
            }
        }
        if now >= map.next_sweep || map.queues.len() >= map.sweep_len {
            Self::sweep(&mut map, now);
            map.next_sweep = now + self.sweep_interval;
        }
    }

    /// Drops every queue nobody uses whose hold has passed, and the map's spare capacity.
    fn sweep(map: &mut TokenMap, now: Instant) {
        map.queues.retain(|_, queue| {
            queue.users > 0 || queue.held_until.is_some_and(|until| until > now)
        });
        let len = map.queues.len();
        map.sweep_len = (2 * len).max(MIN_SWEEP_LEN);
        if map.queues.capacity() > 4 * len.max(MIN_SWEEP_LEN) {
            map.queues.shrink_to(2 * len);
        }
    }

    /// How many queues are kept (in use, or held).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().queues.len()
    }
}

/// A request's place in a [`TokenQueue`]: leaving it (dropped) releases the queue.
pub(crate) struct Ticket {
    queues: Arc<TokenQueues>,
    key: u64,
    held_until: Option<Instant>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.queues.leave(self.key, self.held_until);
    }
}

/// The turn of a request in its token's queue.
pub(crate) struct Turn {
    // Invariant: fields drop in order, so the ticket records the response's hold before the
    // permit lets the next request of the queue go.
    pub(crate) ticket: Ticket,
    pub(crate) _permit: OwnedSemaphorePermit,
}

impl Turn {
    /// Ends the turn, holding the queue until `held_until` if the response exhausted it.
    pub(crate) fn complete(mut self, held_until: Option<Instant>) {
        self.ticket.held_until = held_until;
    }
}
