//! [`CommandMetrics`]: the bot's own command handlers, timed and counted by outcome.
//!
//! Wrap the future that handles an interaction, as tracing's `Instrument` wraps one in a
//! span: the command's name is read from the interaction, the handler's output is returned
//! unchanged.
//!
//! ```
//! use botscope_gateway::CommandMetrics;
//! use twilight_model::application::interaction::Interaction;
//!
//! # async fn handle(_: &Interaction) -> Result<(), std::io::Error> { Ok(()) }
//! # async fn on_interaction(commands: &CommandMetrics, interaction: Interaction) -> Result<(), std::io::Error> {
//! // one line around the handler you already have
//! commands.instrument(&interaction, handle(&interaction)).await?;
//! # Ok(()) }
//! ```
//!
//! A handler that takes the interaction by value gets it after the name was read:
//! [`run`](CommandMetrics::run) hands it to a closure that builds the handler's future, and
//! [`start`](CommandMetrics::start) returns a [`CommandGuard`] for code that awaits the
//! handler itself. Neither clones the interaction.
//!
//! ```
//! use botscope_gateway::CommandMetrics;
//! use twilight_model::application::interaction::Interaction;
//!
//! # async fn handle(_: Interaction) -> Result<(), std::io::Error> { Ok(()) }
//! # async fn on_interaction(commands: &CommandMetrics, interaction: Interaction, again: Interaction) -> Result<(), std::io::Error> {
//! commands.run(interaction, |interaction| handle(interaction)).await?;
//!
//! let guard = commands.start(&again);
//! let result = handle(again).await;
//! guard.finish(&result); // dropped without `finish`: `cancelled`
//! result?;
//! # Ok(()) }
//! ```
//!
//! # Metrics
//!
//! | name | type | labels |
//! |---|---|---|
//! | `command_duration_seconds` | histogram | `command`, `status` |
//! | `commands_total` | counter | `command`, `status` |
//!
//! `status` is botscope's outcome: `success` (`Ok` or `()`), `error` (`Err`), `panic` (the
//! handler panicked; the panic then carries on unchanged) or `cancelled` (the handler's
//! future was dropped before it ended). Both metrics record every ending, under its status.
//!
//! # Cardinality
//!
//! `command` is the application command's name through a
//! [`LabelCap`] of [`DEFAULT_COMMAND_CAP`] values (then `other`;
//! [`CommandMetricsBuilder::command_cap`]), or a fixed word for other interactions (see
//! [`interaction`](crate::interaction)): never a `custom_id`, an option or a token.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use botscope_core::LabelCap;
use botscope_core::Outcome;
use botscope_core::outcome::{Classify, Ending, Finish, Timed, Timer};
use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::{KeyValue, StringValue, Value};
use tracing::Span;
use twilight_model::application::interaction::Interaction;
use twilight_model::id::Id;
use twilight_model::id::marker::InteractionMarker;

use crate::interaction::{DEFAULT_COMMAND_CAP, command_label};
use crate::metrics::{
    COMMAND, COMMAND_DURATION, COMMAND_DURATION_BUCKETS, COMMANDS, SECONDS, STATUS,
};

/// Times and counts command handlers. See the [module docs](self).
///
/// Cloning is cheap and shares the instruments and the name cap.
#[derive(Clone)]
pub struct CommandMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    duration: Histogram<f64>,
    commands: Counter<u64>,
    names: LabelCap,
}

/// Builds [`CommandMetrics`].
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until built"]
pub struct CommandMetricsBuilder {
    meter: Option<Meter>,
    command_cap: Option<usize>,
}

impl CommandMetricsBuilder {
    /// Records into `meter` instead of the global provider's `botscope-gateway` meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// At most `cap` distinct command names (default [`DEFAULT_COMMAND_CAP`]), then `other`.
    pub fn command_cap(mut self, cap: usize) -> Self {
        self.command_cap = Some(cap);
        self
    }

    /// Builds the instruments.
    pub fn build(self) -> CommandMetrics {
        let meter = botscope_core::meter::meter_or_global(
            self.meter,
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        );
        CommandMetrics {
            inner: Arc::new(Inner {
                duration: meter
                    .f64_histogram(COMMAND_DURATION)
                    .with_unit(SECONDS)
                    .with_description("Time a command handler took, by command and outcome")
                    .with_boundaries(COMMAND_DURATION_BUCKETS.to_vec())
                    .build(),
                commands: meter
                    .u64_counter(COMMANDS)
                    .with_description("Command handler runs by command and outcome")
                    .build(),
                names: LabelCap::new(self.command_cap.unwrap_or(DEFAULT_COMMAND_CAP)),
            }),
        }
    }
}

impl CommandMetrics {
    /// Command metrics on the global meter provider.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, to choose the meter and the name cap.
    pub fn builder() -> CommandMetricsBuilder {
        CommandMetricsBuilder::default()
    }

    /// Times `handler`, the future handling `interaction`: recorded under the interaction's
    /// command name and the handler's outcome once it ends.
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `handler`: dropping the returned future drops it and counts the run
    /// `cancelled`.
    pub fn instrument<F>(&self, interaction: &Interaction, handler: F) -> TimedCommand<F>
    where
        F: Future,
        F::Output: Classify,
    {
        Timed::new(handler, self.command_run(interaction))
    }

    /// Times the handler `handler(interaction)` builds, for a handler that owns the
    /// interaction: its command name is read first, then the interaction is moved into
    /// `handler`. Recorded as [`instrument`](Self::instrument) records.
    ///
    /// # Cancel safety
    ///
    /// As [`instrument`](Self::instrument).
    pub fn run<H, F>(&self, interaction: Interaction, handler: H) -> TimedCommand<F>
    where
        H: FnOnce(Interaction) -> F,
        F: Future,
        F::Output: Classify,
    {
        let run = self.command_run(&interaction);
        Timed::new(handler(interaction), run)
    }

    /// Starts timing a run of `interaction`'s command, for code that awaits the handler
    /// itself: [`CommandGuard::finish`] records the handler's output; a guard dropped
    /// without it records `cancelled` (`panic` if dropped while a panic unwinds).
    pub fn start(&self, interaction: &Interaction) -> CommandGuard {
        CommandGuard {
            timer: Some(Timer::start(self.command_run(interaction))),
        }
    }

    fn command_run(&self, interaction: &Interaction) -> CommandRun {
        CommandRun {
            inner: Arc::clone(&self.inner),
            command: command_label(interaction, &self.inner.names),
            interaction: Some(interaction.id),
        }
    }

    /// Times `handler` as the command `name`, for a bot that routes by name itself (the name
    /// goes through the same cap).
    ///
    /// # Cancel safety
    ///
    /// As [`instrument`](Self::instrument).
    pub fn instrument_named<F>(&self, name: &str, handler: F) -> TimedCommand<F>
    where
        F: Future,
        F::Output: Classify,
    {
        Timed::new(
            handler,
            CommandRun {
                inner: Arc::clone(&self.inner),
                command: self.inner.names.admit(name),
                interaction: None,
            },
        )
    }
}

impl Default for CommandMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CommandMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandMetrics")
            .field("command_cap", &self.inner.names.cap())
            .finish_non_exhaustive()
    }
}

/// A command run started by [`CommandMetrics::start`]; records once, when finished or
/// dropped.
#[must_use = "a guard dropped at once records a cancelled run"]
pub struct CommandGuard {
    /// The run, timed by botscope-core's `Timer`; `None` once recorded.
    timer: Option<Timer<Outcome, CommandRun>>,
}

impl CommandGuard {
    /// Records the run as the handler's `output` says: `success` for `Ok` or `()`, `error`
    /// for `Err`.
    pub fn finish<T: Classify>(mut self, output: &T) {
        if let Some(timer) = self.timer.take() {
            timer.complete(&output.classify());
        }
    }

    /// The run's span (`command {name}`), to instrument the handler the caller awaits:
    /// `handle(interaction).instrument(guard.span().clone())`. Disabled once finished.
    pub fn span(&self) -> &Span {
        static NONE: Span = Span::none();
        self.timer.as_ref().map_or(&NONE, Timer::span)
    }
}

impl Drop for CommandGuard {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            // Held in the handler's frame: a panic unwinding through it is the handler's.
            // Otherwise the timer's own drop records `cancelled`.
            if std::thread::panicking() {
                timer.end(Ending::Panicked);
            }
        }
    }
}

impl fmt::Debug for CommandGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandGuard")
            .field("finished", &self.timer.is_none())
            .finish_non_exhaustive()
    }
}

/// A command handler timed by [`CommandMetrics::instrument`].
pub type TimedCommand<F> = Timed<F, CommandRun>;

/// Records one command handler run; the [`Finish`] of [`TimedCommand`].
pub struct CommandRun {
    inner: Arc<Inner>,
    command: StringValue,
    /// For the span; none for [`CommandMetrics::instrument_named`].
    interaction: Option<Id<InteractionMarker>>,
}

impl<T: Classify> Finish<T> for CommandRun {
    /// `command {name}`, with the capped name and the interaction's id.
    fn span(&self) -> Span {
        let span = botscope_core::unit_span!(
            target: "botscope_gateway",
            "command",
            otel.name = %format_args!("command {}", self.command.as_str()),
            "discord.command.name" = self.command.as_str(),
            "discord.interaction.id" = tracing::field::Empty,
            "discord.interaction.late" = tracing::field::Empty,
        );
        if let Some(id) = self.interaction {
            span.record("discord.interaction.id", tracing::field::display(id));
        }
        span
    }

    /// Whether the answer was late, when the in-process proxy forwarded it
    /// (`botscope_core::span::answers`).
    fn record_span(&self, span: &Span, _: &Ending<'_, T>) {
        if let Some(late) = self
            .interaction
            .and_then(|id| botscope_core::span::answers::take(id.get()))
        {
            span.record("discord.interaction.late", late);
        }
    }

    fn error_type(&self, ending: &Ending<'_, T>) -> Option<Cow<'static, str>> {
        ending.outcome().error_type().map(Cow::Borrowed)
    }

    fn finish(self, elapsed: Duration, ending: Ending<'_, T>) {
        let attributes = [
            KeyValue::new(COMMAND, Value::String(self.command)),
            KeyValue::new(STATUS, ending.outcome().as_str()),
        ];
        self.inner
            .duration
            .record(elapsed.as_secs_f64(), &attributes);
        self.inner.commands.add(1, &attributes);
    }
}

impl fmt::Debug for CommandRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandRun")
            .field("command", &self.command.as_str())
            .finish_non_exhaustive()
    }
}
