//! [`ResponseFuture`]: the state machine of one ratelimited request — held, waiting for its
//! permit or its turn, held by its queue, then sent — and the completion of its permit.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use botscope_core::clock::{self, Instant};
use botscope_core::gauge::GaugeGuard;
use botscope_core::outcome::{Ending, Finish, Timer};
use botscope_core::snowflake;
use opentelemetry::StringValue;
use pin_project_lite::pin_project;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use tower::Service;
use twilight_http_ratelimiting::PermitFuture;

use botscope_core::span::Span;

use crate::failure::ForwardFailure;
use crate::interaction::RESPONSE_DEADLINE;
use crate::pairing::{self, Parent};
use crate::ratelimit::generations::Generation;
use crate::ratelimit::queues::{Ticket, Turn};
use crate::ratelimit::state::{Grant, Queue, Shared, complete};
use crate::route::RouteKind;

/// The [`Finish`] of a request's wait for its right to go: recorded in
/// `N_discord_api_ratelimit_wait_seconds` when the request is sent, not when it is dropped
/// while it waits; counted in `N_discord_api_requests_queued` until either.
struct Wait {
    shared: Arc<Shared>,
    label: StringValue,
    /// The twilight span that sent the request, when paired.
    parent: Option<Parent>,
}

impl Finish<()> for Wait {
    /// The wait for the bucket, a child of the request's span when the layers are stacked.
    fn span(&self) -> Span {
        let span = botscope_core::unit_span!(
            target: "botscope_http",
            "ratelimit.wait",
            otel.name = "ratelimit wait",
            "url.template" = self.label.as_str(),
        );
        pairing::adopt(&span, self.parent.as_ref());
        span
    }

    fn finish(self, elapsed: Duration, ending: Ending<'_, ()>) {
        if ending.is_completed() {
            self.shared.instruments.record_wait(&self.label, elapsed);
        }
    }
}

/// A request on its way to its right to go.
pub(crate) struct Waiting<S, B> {
    shared: Arc<Shared>,
    service: S,
    request: Option<http::Request<B>>,
    queue: Queue,
    kind: RouteKind,
    /// The `endpoint` label: the route's template.
    endpoint: StringValue,
    /// When an interaction callback's 3 s run out.
    deadline: Option<Instant>,
    /// Times the wait, from the call to the moment the request is sent.
    wait: Option<Timer<(), Wait>>,
    /// The place in the token's queue, while awaiting the turn.
    ticket: Option<Ticket>,
    /// The limiter generation asked for the permit, while awaiting it.
    generation: Option<Arc<Generation>>,
    grant: Option<Grant>,
}

impl<S, B> Waiting<S, B> {
    /// A request to send with `service` once `queue` lets it go; its wait is recorded under
    /// `endpoint`. `interaction` is the id of an interaction callback's interaction.
    pub(crate) fn new(
        shared: Arc<Shared>,
        service: S,
        mut request: http::Request<B>,
        queue: Queue,
        kind: RouteKind,
        endpoint: StringValue,
        interaction: Option<u64>,
    ) -> Self {
        let wait = Timer::start(Wait {
            shared: Arc::clone(&shared),
            label: endpoint.clone(),
            parent: pairing::parent_of(&mut request),
        })
        .with_gauge(GaugeGuard::new(&shared.instruments.queued));
        let deadline = interaction.map(|id| {
            // A host clock behind Discord's reads the interaction as new.
            let age = snowflake::age_now(id).unwrap_or_default();
            clock::now() + RESPONSE_DEADLINE.saturating_sub(age)
        });
        Self {
            shared,
            service,
            request: Some(request),
            queue,
            kind,
            endpoint,
            deadline,
            wait: Some(wait),
            ticket: None,
            generation: None,
            grant: None,
        }
    }

    /// Until when a global or Cloudflare 429 holds the request, if it does.
    ///
    /// Never an interaction callback past its deadline while it can still make it: held, it
    /// would be late for certain, so it goes now and its answer is counted as it comes. Once
    /// the deadline has passed it is late whatever happens, and waits like any request.
    fn blocked_until(&self) -> Option<Instant> {
        let until = self.shared.holds.blocked_until(self.kind)?;
        if let Some(deadline) = self.deadline
            && until > deadline
            && clock::now() < deadline
        {
            tracing::debug!(
                route = self.endpoint.as_str(),
                "an interaction callback goes out despite a hold that outlasts its deadline"
            );
            return None;
        }
        Some(until)
    }

    /// The stage that asks the request's limiter for its right to go.
    fn acquire<F>(&mut self) -> Stage<F> {
        match &self.queue {
            Queue::Twilight(endpoint) => {
                let generation = self.shared.ratelimiters.for_endpoint(endpoint);
                let permit = generation.ratelimiter().acquire(endpoint.clone());
                self.generation = Some(generation);
                Stage::Acquire { permit }
            }
            Queue::Token(key) => {
                let (ticket, turn) = self.shared.tokens.join(*key);
                self.ticket = Some(ticket);
                Stage::Turn {
                    // One permit, never closed: the acquire cannot fail.
                    turn: Box::pin(turn.acquire_owned()),
                }
            }
        }
    }
}

type TurnFuture =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, tokio::sync::AcquireError>> + Send>>;

pin_project! {
    #[project = StageProj]
    enum Stage<F> {
        Blocked { sleep: Pin<Box<Sleep>> },
        Acquire { permit: PermitFuture },
        Turn { turn: TurnFuture },
        Held { sleep: Pin<Box<Sleep>> },
        Call { #[pin] future: F },
    }
}

pin_project! {
    /// The future of [`DiscordRateLimit`](crate::DiscordRateLimit): waits for a permit, calls the inner service, completes the
    /// permit from the response head.
    ///
    /// # Cancel safety
    ///
    /// Dropping it cancels the permit, which the limiter hands to the next request.
    pub struct ResponseFuture<S, B>
    where
        S: Service<http::Request<B>>,
    {
        #[pin]
        stage: Stage<S::Future>,
        waiting: Option<Waiting<S, B>>,
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<http::Request<B>>,
{
    /// A request no limiter knows (no route, or a method twilight's does not have): sent at
    /// once.
    pub(crate) fn unlimited(future: S::Future) -> Self {
        Self {
            stage: Stage::Call { future },
            waiting: None,
        }
    }

    /// A request that waits for its right to go first: held if a 429 holds it, else asking
    /// its limiter now.
    pub(crate) fn waiting(mut waiting: Waiting<S, B>) -> Self {
        let stage = match waiting.blocked_until() {
            Some(until) => Stage::Blocked {
                sleep: Box::pin(tokio::time::sleep_until(until)),
            },
            None => waiting.acquire(),
        };
        Self {
            stage,
            waiting: Some(waiting),
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<http::Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            // Invariant: `waiting` is taken only when the `Call` stage completes, and every
            // stage but `Call` has it.
            let next = match this.stage.project() {
                StageProj::Blocked { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    let waiting = this.waiting.as_mut().expect("waiting until called");
                    match waiting.blocked_until() {
                        // Blocked again meanwhile: wait on.
                        Some(until) => Stage::Blocked {
                            sleep: Box::pin(tokio::time::sleep_until(until)),
                        },
                        None => waiting.acquire(),
                    }
                }
                StageProj::Acquire { permit } => {
                    let permit = ready!(Pin::new(permit).poll(cx));
                    let waiting = this.waiting.as_mut().expect("waiting until called");
                    // Set with the `Acquire` stage, taken only here.
                    if let Some(generation) = waiting.generation.take() {
                        waiting.grant = Some(Grant::Twilight(permit, generation));
                    }
                    waiting.held_or_call()
                }
                StageProj::Turn { turn } => {
                    let result = ready!(turn.as_mut().poll(cx));
                    let waiting = this.waiting.as_mut().expect("waiting until called");
                    // The semaphore is never closed and the ticket is taken only here: an
                    // error cannot happen, and would send the request without a turn.
                    if let (Ok(permit), Some(ticket)) = (result, waiting.ticket.take()) {
                        waiting.grant = Some(Grant::Token(Turn {
                            ticket,
                            _permit: permit,
                        }));
                    }
                    waiting.held_or_call()
                }
                StageProj::Held { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    let waiting = this.waiting.as_mut().expect("waiting until called");
                    waiting.held_or_call()
                }
                StageProj::Call { future } => {
                    let result = ready!(future.poll(cx));
                    if let Some(waiting) = this.waiting.take()
                        && let Some(grant) = waiting.grant
                    {
                        match &result {
                            // The proxy's own answer to a failed forward, or a failed
                            // request: it tells the limiter nothing, so cancel the permit.
                            Ok(response)
                                if response.extensions().get::<ForwardFailure>().is_some() =>
                            {
                                drop(grant);
                            }
                            Ok(response) => complete(
                                &waiting.shared,
                                waiting.kind,
                                &waiting.endpoint,
                                grant,
                                response.status(),
                                response.headers(),
                            ),
                            Err(_) => drop(grant),
                        }
                    }
                    return Poll::Ready(result);
                }
            };
            self.as_mut().project().stage.set(next);
        }
    }
}

impl<S, B> Waiting<S, B>
where
    S: Service<http::Request<B>>,
{
    /// With its right to go, the request waits out what holds it, if anything, before it
    /// goes: its token queue's hold, and a global or Cloudflare 429 answered while it waited
    /// for its permit (it passed the holds before one was in place).
    fn held_or_call(&mut self) -> Stage<S::Future> {
        let queue = match self.queue {
            Queue::Token(key) => self.shared.tokens.held_until(key),
            Queue::Twilight(_) => None,
        };
        if let Some(until) = queue.max(self.blocked_until()) {
            return Stage::Held {
                sleep: Box::pin(tokio::time::sleep_until(until)),
            };
        }
        self.call()
    }

    /// Records the wait and sends the request.
    fn call(&mut self) -> Stage<S::Future> {
        if let Some(wait) = self.wait.take() {
            wait.complete(&());
        }
        // Invariant: the request leaves only here, once, as the stage becomes `Call`.
        let request = self.request.take().expect("request sent once");
        Stage::Call {
            future: self.service.call(request),
        }
    }
}
