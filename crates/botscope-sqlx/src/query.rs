//! The pieces every executor shares: the query re-packed with its text read, a timed stream,
//! and a small generator for streams that own their pool connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use futures_util::stream::Stream;
use sqlx::error::BoxDynError;
use sqlx::{Database, Execute, SqlStr};

use crate::metrics::{Metrics, QueryGuard};

/// A query taken apart so its SQL text can be read before it runs.
///
/// `Execute::sql` consumes the query, so the wrapper takes everything out of it first (the
/// cached statement, the arguments, the persistence flag) and hands the driver this value,
/// which gives back exactly what the original would have.
pub(crate) struct Prepared<DB: Database> {
    sql: SqlStr,
    statement: Option<DB::Statement>,
    arguments: Option<Result<Option<DB::Arguments>, BoxDynError>>,
    persistent: bool,
}

impl<DB: Database> Prepared<DB> {
    pub(crate) fn new<'q, E: Execute<'q, DB>>(mut query: E) -> Self {
        let statement = query.statement().cloned();
        let persistent = query.persistent();
        let arguments = Some(query.take_arguments());
        Self {
            sql: query.sql(),
            statement,
            arguments,
            persistent,
        }
    }

    pub(crate) fn text(&self) -> &str {
        self.sql.as_str()
    }
}

impl<DB: Database> Execute<'_, DB> for Prepared<DB> {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.statement.as_ref()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// Re-packs `query` and starts its timer.
pub(crate) fn start<'q, DB, E>(metrics: &Metrics, query: E) -> (QueryGuard, Prepared<DB>)
where
    DB: Database,
    E: Execute<'q, DB>,
{
    let prepared = Prepared::new(query);
    (metrics.start(prepared.text()), prepared)
}

/// A stream timed until it ends, fails or is dropped.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(dead_code)
)]
pub(crate) struct TimedStream<S> {
    inner: S,
    guard: QueryGuard,
}

impl<S> TimedStream<S> {
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
        allow(dead_code)
    )]
    pub(crate) fn new(inner: S, guard: QueryGuard) -> Self {
        Self { inner, guard }
    }
}

impl<S, T> Stream for TimedStream<S>
where
    S: Stream<Item = Result<T, sqlx::Error>> + Unpin,
{
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = std::task::ready!(Pin::new(&mut this.inner).poll_next(cx));
        match &item {
            None => this.guard.finish(None),
            Some(Err(error)) => this.guard.finish(Some(error)),
            Some(Ok(_)) => {}
        }
        Poll::Ready(item)
    }
}

type Slot<T> = Arc<Mutex<Option<T>>>;

/// A stream driven by a future that hands items out through a [`Yielder`]; this lets the
/// future own the pool connection its inner stream borrows.
pub(crate) struct Generator<'a, T> {
    slot: Slot<T>,
    future: Option<BoxFuture<'a, Result<(), sqlx::Error>>>,
}

impl<'a, T: Send + 'a> Generator<'a, T> {
    pub(crate) fn new<F, Fut>(body: F) -> Self
    where
        F: FnOnce(Yielder<T>) -> Fut,
        Fut: Future<Output = Result<(), sqlx::Error>> + Send + 'a,
    {
        let slot: Slot<T> = Arc::new(Mutex::new(None));
        let future = body(Yielder {
            slot: Arc::clone(&slot),
        })
        .boxed();
        Self {
            slot,
            future: Some(future),
        }
    }
}

impl<T> Stream for Generator<'_, T> {
    type Item = Result<T, sqlx::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Ready(None);
        };
        match future.poll_unpin(cx) {
            Poll::Ready(result) => {
                self.future = None;
                Poll::Ready(result.err().map(Err))
            }
            Poll::Pending => {
                let taken = self
                    .slot
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                taken.map_or(Poll::Pending, |item| Poll::Ready(Some(Ok(item))))
            }
        }
    }
}

/// The sending half of a [`Generator`].
pub(crate) struct Yielder<T> {
    slot: Slot<T>,
}

impl<T> Yielder<T> {
    /// Hands `item` to the stream and suspends once, so the stream returns it.
    pub(crate) async fn send(&self, item: T) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(item);
        let mut yielded = false;
        std::future::poll_fn(|_| {
            if yielded {
                Poll::Ready(())
            } else {
                // No wake-up needed: the generator returns the item and is polled again.
                yielded = true;
                Poll::Pending
            }
        })
        .await;
    }
}
