//! The span of a timed unit of work.
//!
//! [`unit_span!`](crate::unit_span) opens one: a `debug` span with the two fields the
//! [`outcome`](crate::outcome) model writes when the unit ends (`otel.status_code` and
//! `error.type`, empty until then), and the unit's own fields. A unit's
//! [`Finish::span`](crate::Finish::span) returns it, so every [`Timed`](crate::Timed) and
//! [`Timer`](crate::Timer) of that kind opens it.
//!
//! ```
//! use botscope_core::outcome::{Ending, Finish, Timed};
//! use tracing::Span;
//!
//! struct Cleanup {
//!     guild_id: u64,
//! }
//!
//! impl Finish<()> for Cleanup {
//!     fn span(&self) -> Span {
//!         botscope_core::unit_span!(
//!             target: "my_bot::audio",
//!             "audio.cleanup",
//!             otel.name = "audio cleanup",
//!             guild_id = self.guild_id,
//!         )
//!     }
//!
//!     fn finish(self, _: std::time::Duration, _: Ending<'_, ()>) {}
//! }
//!
//! let cleanup = Timed::new(async {}, Cleanup { guild_id: 81384788765712384 }); // then `.await` it
//! # drop(cleanup);
//! ```
//!
//! Span names are static in `tracing`; a name that varies (`SELECT guilds`, the route of a
//! request) goes in `otel.name`, which tracing-opentelemetry exports as the span's name.
//! Field values are only computed when a subscriber wants the span: without one, opening a
//! span reads a cached interest and returns a disabled span.
//!
//! # Parent
//!
//! A unit's span opens when its `Timed` or `Timer` is created, so its parent is the span
//! current then: start a unit inside the span it belongs to (an `async fn` or an `async`
//! block starts its units when first polled, inside whatever span it is instrumented with).
//! A span closes when its last clone drops; a driver that keeps a clone of the current span
//! for work it does on its own thread (sqlx's SQLite worker does) closes it, and its
//! parents, some time after the unit ended. tracing-subscriber's registry closes the parents
//! through the default subscriber of the thread the child closed on, so with a subscriber
//! set for one thread only (`tracing::subscriber::set_default`) such parents never close:
//! install it globally (`.init()`), as a bot does.
//!
//! # Level
//!
//! Unit spans are `debug`: a bot's log subscriber at its usual `info` neither records them
//! nor pays for them (a `fmt` subscriber that records one costs about 0.7 µs per unit, and
//! puts the span's fields before every log line inside it; `benches/unit_span.rs`). A trace
//! exporter asks for them with a filter of its own (`botscope=debug` on its layer).

#[doc(hidden)]
pub use tracing as __tracing;
/// The span type, so a crate that only opens unit spans needs no `tracing` of its own.
pub use tracing::Span;

/// The field that carries a span's OpenTelemetry status (tracing-opentelemetry's name).
pub const STATUS_CODE: &str = "otel.status_code";

/// Opens the span of a timed unit: `tracing::debug_span!` with the fields the
/// [`outcome`](crate::outcome) model records when the unit ends. See the [module
/// docs](crate::span).
#[macro_export]
macro_rules! unit_span {
    (target: $target:expr, $name:expr $(, $($fields:tt)*)?) => {
        // With nothing that records `debug` (one atomic load), a span without metadata: a
        // disabled span with metadata still pays, on every enter, exit and record, for
        // tracing's `log` bridge, which sqlx turns on (about 150 instructions a query).
        if $crate::span::__tracing::level_enabled!($crate::span::__tracing::Level::DEBUG) {
            $crate::span::__tracing::debug_span!(
                target: $target,
                $name,
                "otel.status_code" = $crate::span::__tracing::field::Empty,
                "error.type" = $crate::span::__tracing::field::Empty,
                $($($fields)*)?
            )
        } else {
            $crate::span::__tracing::Span::none()
        }
    };
}

/// Which interactions were answered late, as the in-process proxy saw their callbacks: how
/// the command decorator's span says whether its answer was late, though the answer went
/// through twilight and the proxy, not through it.
///
/// The proxy [`note`](answers::note)s each callback it forwards; the command span
/// [`take`](answers::take)s its interaction's when the command ends. What waits is bounded
/// ([`answers::CAP`]): a proxy with no command decorator in its process (the standalone
/// `botscope-proxy`) keeps only the latest.
pub mod answers {
    use std::collections::VecDeque;
    use std::sync::{Mutex, PoisonError};

    /// How many answers wait to be taken at most; the oldest go first.
    pub const CAP: usize = 1024;

    static ANSWERS: Mutex<VecDeque<(u64, bool)>> = Mutex::new(VecDeque::new());

    /// A callback for interaction `id` was forwarded, `late` if past Discord's deadline.
    pub fn note(id: u64, late: bool) {
        let mut answers = ANSWERS.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.len() == CAP {
            answers.pop_front();
        }
        answers.push_back((id, late));
    }

    /// Whether interaction `id`'s callback was late, if one was noted (and not taken yet).
    pub fn take(id: u64) -> Option<bool> {
        let mut answers = ANSWERS.lock().unwrap_or_else(PoisonError::into_inner);
        let index = answers.iter().rposition(|(noted, _)| *noted == id)?;
        answers.remove(index).map(|(_, late)| late)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn bounded_and_taken_once() {
            super::note(1, true);
            assert_eq!(super::take(1), Some(true));
            assert_eq!(super::take(1), None);
            for id in 10..10 + super::CAP as u64 + 5 {
                super::note(id, false);
            }
            assert_eq!(super::take(10), None, "the oldest went first");
            assert_eq!(super::take(10 + super::CAP as u64), Some(false));
            assert!(super::ANSWERS.lock().unwrap().len() <= super::CAP);
        }
    }
}
