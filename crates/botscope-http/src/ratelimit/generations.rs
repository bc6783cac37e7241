//! twilight's limiter in generations, so that what it remembers of the routes it has seen can
//! be dropped: see [Memory](crate::ratelimit#memory).
//!
//! twilight's limiter is a task that keeps a queue for every distinct path it was asked about
//! (for good unless its bucket is learned, then for six hours) and never ends. So each
//! generation's limiter runs on a current-thread runtime of its own, driven by a thread of its
//! own; once a generation has seen [`LIMITER_ROUTES`] distinct routes, new requests go to a
//! new one, and the old one ends when the last request that asked it is done: its thread then
//! drops its runtime, and the limiter's task and memory with it.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;
use twilight_http_ratelimiting::{Endpoint, RateLimiter};

/// How many distinct routes (method and path) one generation of twilight's limiter is asked
/// about before new requests go to a new one: about 4 MB of its memory at most (some 240
/// bytes a route), however many routes the bot touches. A bot with fewer distinct routes
/// never changes generations.
pub const LIMITER_ROUTES: usize = 16_384;

/// One of twilight's limiters, and the thread that drives its runtime.
pub(crate) struct Generation {
    ratelimiter: RateLimiter,
    /// Dropped with the generation: its thread then drops the runtime, with the limiter's task
    /// and all it remembers. `None` for a limiter on someone else's runtime.
    _stop: Option<oneshot::Sender<()>>,
}

impl Generation {
    /// A limiter of `global_limit` requests per second on a runtime and thread of its own; on
    /// the current runtime if no thread can be started (then its memory is never given back).
    fn start(global_limit: u16) -> Option<Self> {
        match Self::start_own(global_limit) {
            Ok(generation) => Some(generation),
            Err(error) => {
                tracing::warn!(
                    %error,
                    "cannot start a thread for twilight's ratelimiter; it runs on the bot's runtime"
                );
                let _current = tokio::runtime::Handle::try_current().ok()?;
                Some(Self {
                    ratelimiter: RateLimiter::new(global_limit),
                    _stop: None,
                })
            }
        }
    }

    fn start_own(global_limit: u16) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        // twilight's limiter spawns its task on the runtime it is created in.
        let ratelimiter = {
            let _inside = runtime.enter();
            RateLimiter::new(global_limit)
        };
        let (stop, stopped) = oneshot::channel::<()>();
        // twilight's log lines go where the caller's would.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        std::thread::Builder::new()
            .name("botscope-ratelimiter".to_owned())
            .spawn(move || {
                // Runs the limiter until the generation is dropped (an error: the sender is
                // gone), then drops the runtime here, outside any async context.
                tracing::dispatcher::with_default(&dispatch, || {
                    let _ = runtime.block_on(stopped);
                });
            })?;
        Ok(Self {
            ratelimiter,
            _stop: Some(stop),
        })
    }

    /// A limiter given by the user: kept for good.
    fn given(ratelimiter: RateLimiter) -> Self {
        Self {
            ratelimiter,
            _stop: None,
        }
    }

    pub(crate) fn ratelimiter(&self) -> &RateLimiter {
        &self.ratelimiter
    }
}

/// The current generation of twilight's limiter, and the routes it has seen.
pub(crate) struct Generations {
    inner: Mutex<Current>,
    global_limit: u16,
    /// Keys the routes seen.
    hasher: foldhash::fast::RandomState,
    /// Whether a new generation may replace the current one: not for a limiter the user gave.
    rotates: bool,
    /// How many distinct routes a generation is asked about ([`LIMITER_ROUTES`]).
    routes: usize,
}

struct Current {
    /// `None` until the first request when built outside a runtime and no thread could start.
    generation: Option<Arc<Generation>>,
    /// The hashes of the routes the current generation was asked about.
    seen: HashSet<u64, foldhash::fast::RandomState>,
}

impl Generations {
    /// Generations of limiters of `global_limit` requests per second.
    pub(crate) fn new(global_limit: u16) -> Self {
        Self::with(Generation::start(global_limit), global_limit, true)
    }

    /// `ratelimiter` for good.
    pub(crate) fn given(ratelimiter: RateLimiter, global_limit: u16) -> Self {
        Self::with(Some(Generation::given(ratelimiter)), global_limit, false)
    }

    /// Generations that change every `routes` distinct routes.
    #[cfg(test)]
    pub(crate) fn every(routes: usize, global_limit: u16) -> Self {
        Self {
            routes,
            ..Self::new(global_limit)
        }
    }

    fn with(generation: Option<Generation>, global_limit: u16, rotates: bool) -> Self {
        Self {
            inner: Mutex::new(Current {
                generation: generation.map(Arc::new),
                seen: HashSet::default(),
            }),
            global_limit,
            hasher: foldhash::fast::RandomState::default(),
            rotates,
            routes: LIMITER_ROUTES,
        }
    }

    /// The state; a panic while it was held cannot leave it inconsistent (the set only
    /// decides when to change generations), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, Current> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The generation that `endpoint` asks for its permit: the current one, or a new one when
    /// the current one has seen `routes` other routes. Holding it keeps it running.
    ///
    /// # Panics
    ///
    /// Only when no thread can be started and no Tokio runtime is current.
    pub(crate) fn for_endpoint(&self, endpoint: &Endpoint) -> Arc<Generation> {
        let route = self.hasher.hash_one(endpoint);
        let mut current = self.lock();
        if self.rotates
            && current.seen.insert(route)
            && current.seen.len() > self.routes
            && current.generation.is_some()
            && let Some(next) = Generation::start(self.global_limit)
        {
            tracing::debug!(
                routes = self.routes,
                "twilight's ratelimiter has seen its share of routes: a new one takes over"
            );
            current.generation = Some(Arc::new(next));
            current.seen.clear();
            current.seen.insert(route);
        }
        Arc::clone(current.generation.get_or_insert_with(|| {
            Arc::new(
                Generation::start(self.global_limit)
                    .expect("twilight's ratelimiter needs a thread or a Tokio runtime"),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use twilight_http_ratelimiting::Method;

    use super::*;

    fn channel(id: u64) -> Endpoint {
        Endpoint {
            method: Method::Post,
            path: format!("channels/{id}/messages"),
        }
    }

    /// Whether the limiter's task is gone: asking it for a permit then panics.
    async fn ended(ratelimiter: &RateLimiter) -> bool {
        // twilight panics once its actor is gone: in `acquire` itself, or in the permit's
        // future if the actor goes meanwhile; the task sees either.
        let ratelimiter = ratelimiter.clone();
        tokio::spawn(async move { ratelimiter.acquire(channel(0)).await })
            .await
            .is_err_and(|error| error.is_panic())
    }

    #[tokio::test]
    async fn a_generation_that_saw_its_share_of_routes_ends_with_its_last_request() {
        let generations = Generations::every(3, 50);
        let first = generations.for_endpoint(&channel(1));
        for id in [1, 2, 3, 2, 1] {
            assert!(
                Arc::ptr_eq(&generations.for_endpoint(&channel(id)), &first),
                "three routes, seen again and again: one generation"
            );
        }
        let second = generations.for_endpoint(&channel(4));
        assert!(!Arc::ptr_eq(&second, &first), "a fourth route: a new one");
        assert!(Arc::ptr_eq(&generations.for_endpoint(&channel(1)), &second));

        // The first still serves the request that holds it.
        let permit = first.ratelimiter().acquire(channel(1)).await;
        permit.complete(None);
        let old = first.ratelimiter().clone();
        drop(first);
        // Its thread drops its runtime, and twilight's task with it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !ended(&old).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the old limiter ended"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !ended(second.ratelimiter()).await,
            "the current one runs on"
        );
    }

    #[tokio::test]
    async fn a_given_limiter_is_kept_for_good() {
        let given = RateLimiter::new(50);
        let generations = Generations::given(given, 50);
        let first = generations.for_endpoint(&channel(0));
        for id in 1..=(LIMITER_ROUTES as u64 + 1) {
            let _ = generations.for_endpoint(&channel(id));
        }
        assert!(Arc::ptr_eq(&generations.for_endpoint(&channel(1)), &first));
    }
}
