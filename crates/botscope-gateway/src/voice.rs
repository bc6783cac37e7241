//! [`VoiceMetrics`]: voice connection attempts and audio processing times.
//!
//! ```
//! use botscope_gateway::VoiceMetrics;
//! use twilight_model::id::Id;
//!
//! # async fn connect() -> Result<(), ()> { Ok(()) }
//! # async fn cleanup() {}
//! # async fn run() {
//! let voice = VoiceMetrics::new();
//! let guild = Id::new(1);
//!
//! // a future: its result is the attempt's status
//! let joined: Result<(), ()> = voice.connect(guild, connect()).await;
//!
//! // or a guard, where the attempt is not one future
//! let attempt = voice.attempt(guild);
//! match connect().await {
//!     Ok(()) => attempt.succeeded(),
//!     Err(()) => attempt.failed(),
//! }
//!
//! voice.time("cleanup", guild, cleanup()).await;
//! # let _ = joined;
//! # }
//! ```
//!
//! # Outcomes
//!
//! Both go through botscope-core's [`Timer`]: an attempt counts `success` or `error` by its
//! result, `panic` when the future panicked (the panic then carries on), and `cancelled` when
//! the future or the [`VoiceAttempt`] was dropped before it ended. An audio operation's
//! duration is recorded only when it ran to its end: the histogram has no status label, and
//! the partial time of a cancelled or panicked operation would skew it.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use botscope_core::LabelCap;
use botscope_core::label_cap::DEFAULT_CAP;
use botscope_core::outcome::{Classify, Ending, Finish, Timed, Timer};
use botscope_core::span::Span;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use twilight_model::id::Id;
use twilight_model::id::marker::GuildMarker;

use crate::metrics::{
    AUDIO_PROCESSING_DURATION, GUILD_ID, OPERATION, SECONDS, STATUS, VOICE_CONNECTION_ATTEMPTS,
};

/// Voice connection attempts and audio processing times. See the [module docs](self).
///
/// `voice_connections_active` comes from the gateway itself: [`GatewayTap`](crate::GatewayTap)
/// keeps it from the bot's own voice states. Cloning is cheap and shares the instruments.
///
/// # Metrics
///
/// | name | type | labels |
/// |---|---|---|
/// | `voice_connection_attempts_total` | counter | `guild_id`, `status` (`success`, `error`, `panic`, `cancelled`) |
/// | `audio_processing_duration_seconds` | histogram | `operation`, `guild_id` |
///
/// # Cardinality
///
/// `guild_id` passes through a [`LabelCap`] per metric (default [`DEFAULT_CAP`] values, then
/// `other`); `operation` is a `&'static str` chosen in code.
#[derive(Clone)]
pub struct VoiceMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    attempts: Counter<u64>,
    processing: Histogram<f64>,
    attempt_guilds: LabelCap,
    processing_guilds: LabelCap,
}

/// Builds [`VoiceMetrics`].
#[derive(Debug, Default)]
#[must_use]
pub struct VoiceMetricsBuilder {
    meter: Option<Meter>,
    guild_cap: Option<usize>,
}

impl VoiceMetricsBuilder {
    /// Records into `meter` instead of the global provider's meter.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// At most `cap` distinct `guild_id` values per metric, then `other` (default
    /// [`DEFAULT_CAP`]).
    pub fn guild_label_cap(mut self, cap: usize) -> Self {
        self.guild_cap = Some(cap);
        self
    }

    /// Switches `guild_id` labels off: every guild is counted as `other`.
    pub fn without_guild_labels(self) -> Self {
        self.guild_label_cap(0)
    }

    /// Builds the instruments.
    pub fn build(self) -> VoiceMetrics {
        let meter = botscope_core::meter::meter_or_global(
            self.meter,
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        );
        let cap = self.guild_cap.unwrap_or(DEFAULT_CAP);
        VoiceMetrics {
            inner: Arc::new(Inner {
                attempts: meter
                    .u64_counter(VOICE_CONNECTION_ATTEMPTS)
                    .with_description("Voice connection attempts by outcome")
                    .build(),
                processing: meter
                    .f64_histogram(AUDIO_PROCESSING_DURATION)
                    .with_unit(SECONDS)
                    .with_description("Time spent in audio processing operations")
                    .with_boundaries(botscope_core::buckets::default_buckets())
                    .build(),
                attempt_guilds: LabelCap::new(cap),
                processing_guilds: LabelCap::new(cap),
            }),
        }
    }
}

impl VoiceMetrics {
    /// Voice metrics recording into the global meter provider, with the default `guild_id` cap.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to choose the meter and the `guild_id` label policy.
    pub fn builder() -> VoiceMetricsBuilder {
        VoiceMetricsBuilder::default()
    }

    /// Starts a voice connection attempt in `guild_id`.
    ///
    /// End it with [`VoiceAttempt::succeeded`] or [`VoiceAttempt::failed`]; a guard dropped
    /// otherwise (an early return, a cancelled future, a panic) counts as `cancelled`.
    pub fn attempt(&self, guild_id: Id<GuildMarker>) -> VoiceAttempt {
        VoiceAttempt {
            timer: Timer::start(self.attempt_record(guild_id)),
        }
    }

    /// Counts `future` as a voice connection attempt in `guild_id`: `success` or `error` by
    /// its output ([`Classify`]: `Ok` and `()` succeed), `panic` if it panics (the panic then
    /// carries on unchanged), `cancelled` if it is dropped before it ends.
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `future`: dropping the returned future drops `future`.
    pub fn connect<F>(&self, guild_id: Id<GuildMarker>, future: F) -> TimedAttempt<F>
    where
        F: Future,
        F::Output: Classify,
    {
        Timed::new(future, self.attempt_record(guild_id))
    }

    fn attempt_record(&self, guild_id: Id<GuildMarker>) -> AttemptRecord {
        AttemptRecord {
            guild: self
                .inner
                .attempt_guilds
                .key_value(GUILD_ID, &guild_id.to_string()),
            counter: self.inner.attempts.clone(),
        }
    }

    /// Times `future` as audio processing `operation` (e.g. `cleanup`) in `guild_id`.
    ///
    /// The clock starts now. The duration is recorded when the future completes; a future
    /// dropped before it completes, or whose poll panics, records nothing (see
    /// [`AudioTiming`]): the panic carries on unchanged.
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `future`: dropping the returned future drops `future`.
    pub fn time<F: Future>(
        &self,
        operation: &'static str,
        guild_id: Id<GuildMarker>,
        future: F,
    ) -> TimedAudio<F> {
        let guild = self
            .inner
            .processing_guilds
            .key_value(GUILD_ID, &guild_id.to_string());
        let timing = AudioTiming {
            histogram: self.inner.processing.clone(),
            attributes: [KeyValue::new(OPERATION, operation), guild],
        };
        Timed::new(future, timing)
    }
}

impl Default for VoiceMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for VoiceMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoiceMetrics")
            .field("guild_cap", &self.inner.attempt_guilds.cap())
            .finish_non_exhaustive()
    }
}

/// A voice connection attempt in progress, from [`VoiceMetrics::attempt`].
///
/// Counted once: `success` by [`succeeded`](Self::succeeded), `error` by
/// [`failed`](Self::failed), else `cancelled` when dropped.
#[must_use = "a dropped attempt counts as cancelled"]
pub struct VoiceAttempt {
    timer: Timer<Result<(), ()>, AttemptRecord>,
}

impl VoiceAttempt {
    /// Counts the attempt as `success`.
    pub fn succeeded(self) {
        self.timer.complete(&Ok(()));
    }

    /// Counts the attempt as `error`.
    pub fn failed(self) {
        self.timer.complete(&Err(()));
    }
}

impl fmt::Debug for VoiceAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoiceAttempt").finish_non_exhaustive()
    }
}

/// A future counted as a voice connection attempt by [`VoiceMetrics::connect`].
pub type TimedAttempt<F> = Timed<F, AttemptRecord>;

/// Counts one voice connection attempt in `voice_connection_attempts_total` under its
/// outcome; the [`Finish`] of [`VoiceAttempt`] and [`TimedAttempt`].
pub struct AttemptRecord {
    guild: KeyValue,
    counter: Counter<u64>,
}

impl<T: Classify> Finish<T> for AttemptRecord {
    /// `voice connect`, with the guild's capped label.
    fn span(&self) -> Span {
        botscope_core::unit_span!(
            target: "botscope_gateway",
            "voice.connect",
            otel.name = "voice connect",
            "discord.guild.id" = %self.guild.value,
        )
    }

    fn error_type(&self, ending: &Ending<'_, T>) -> Option<Cow<'static, str>> {
        ending.outcome().error_type().map(Cow::Borrowed)
    }

    fn finish(self, _elapsed: Duration, ending: Ending<'_, T>) {
        self.counter.add(
            1,
            &[self.guild, KeyValue::new(STATUS, ending.outcome().as_str())],
        );
    }
}

impl fmt::Debug for AttemptRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptRecord")
            .field("guild_id", &self.guild.value)
            .finish_non_exhaustive()
    }
}

/// A future timed by [`VoiceMetrics::time`]: botscope-core's [`Timed`] with [`AudioTiming`].
pub type TimedAudio<F> = Timed<F, AudioTiming>;

/// Records the duration of a completed audio operation into
/// `audio_processing_duration_seconds`; the [`Finish`] of [`TimedAudio`].
///
/// A run that panicked or was cancelled records nothing: the histogram has no status label,
/// and a partial duration would skew it.
pub struct AudioTiming {
    histogram: Histogram<f64>,
    attributes: [KeyValue; 2],
}

impl<T> Finish<T> for AudioTiming {
    /// `audio {operation}`, with the guild's capped label.
    fn span(&self) -> Span {
        let [operation, guild] = &self.attributes;
        botscope_core::unit_span!(
            target: "botscope_gateway",
            "audio",
            otel.name = %format_args!("audio {}", operation.value),
            "discord.audio.operation" = %operation.value,
            "discord.guild.id" = %guild.value,
        )
    }

    fn finish(self, elapsed: Duration, ending: Ending<'_, T>) {
        if ending.is_completed() {
            self.histogram
                .record(elapsed.as_secs_f64(), &self.attributes);
        }
    }
}

impl fmt::Debug for AudioTiming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioTiming")
            .field("attributes", &self.attributes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use botscope_testkit::TestMetrics;

    use super::*;

    static_assertions::assert_impl_all!(VoiceMetrics: Clone, Send, Sync);
    static_assertions::assert_impl_all!(VoiceAttempt: Send, Sync);
    static_assertions::assert_impl_all!(TimedAudio<std::future::Ready<()>>: Send, Sync);
    static_assertions::assert_impl_all!(TimedAttempt<std::future::Ready<()>>: Send, Sync);

    const ATTEMPTS: &str = "disruptor_voice_connection_attempts_total";
    const PROCESSING: &str = "disruptor_audio_processing_duration_seconds";

    #[test]
    fn attempts_count_success_failure_and_drops_as_cancelled() {
        let metrics = TestMetrics::new("disruptor");
        let voice = VoiceMetrics::builder().meter(metrics.meter()).build();
        voice.attempt(Id::new(1)).succeeded();
        voice.attempt(Id::new(1)).failed();
        drop(voice.attempt(Id::new(1)));
        voice.attempt(Id::new(2)).succeeded();

        let scrape = metrics.scrape();
        let value =
            |guild, status| scrape.value(ATTEMPTS, &[("guild_id", guild), ("status", status)]);
        assert_eq!(value("1", "success"), Some(1.0));
        assert_eq!(value("1", "error"), Some(1.0));
        assert_eq!(value("1", "cancelled"), Some(1.0));
        assert_eq!(value("2", "success"), Some(1.0));
        assert_eq!(value("2", "error"), None);
    }

    #[test]
    fn guild_labels_are_capped_or_off() {
        let metrics = TestMetrics::new("disruptor");
        let voice = VoiceMetrics::builder()
            .meter(metrics.meter())
            .guild_label_cap(2)
            .build();
        for guild in 1..=5 {
            voice.attempt(Id::new(guild)).succeeded();
        }
        assert_eq!(
            metrics.scrape().label_values(ATTEMPTS, "guild_id"),
            ["1", "2", "other"]
        );

        let metrics = TestMetrics::new("disruptor");
        let voice = VoiceMetrics::builder()
            .meter(metrics.meter())
            .without_guild_labels()
            .build();
        voice.attempt(Id::new(7)).succeeded();
        assert_eq!(
            metrics.scrape().label_values(ATTEMPTS, "guild_id"),
            ["other"]
        );
    }

    #[tokio::test]
    async fn time_records_completed_operations_only() {
        let metrics = TestMetrics::new("disruptor");
        let voice = VoiceMetrics::builder().meter(metrics.meter()).build();
        let guild = Id::new(3);

        let out = voice
            .time("cleanup", guild, async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                42
            })
            .await;
        assert_eq!(out, 42);

        // Cancelled half way: nothing recorded.
        let slow = voice.time(
            "cleanup",
            guild,
            tokio::time::sleep(Duration::from_secs(60)),
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(50), slow)
                .await
                .is_err()
        );

        let scrape = metrics.scrape();
        let labels = [("operation", "cleanup"), ("guild_id", "3")];
        assert_eq!(
            scrape.value(&format!("{PROCESSING}_count"), &labels),
            Some(1.0)
        );
        // The operation slept 300 ms, so it lies above the 0.25 s bound.
        let mut in_bucket = labels.to_vec();
        in_bucket.push(("le", "0.25"));
        assert_eq!(
            scrape.value(&format!("{PROCESSING}_bucket"), &in_bucket),
            Some(0.0)
        );
    }

    #[tokio::test]
    async fn connect_counts_results_cancellations_and_panics() {
        let metrics = TestMetrics::new("disruptor");
        let voice = VoiceMetrics::builder().meter(metrics.meter()).build();
        let guild = Id::new(9);

        assert_eq!(voice.connect(guild, async { Ok::<_, ()>(7) }).await, Ok(7));
        assert_eq!(
            voice.connect(guild, async { Err::<(), _>("no") }).await,
            Err("no")
        );
        // The join is abandoned half way: the caller's timeout drops the future.
        let stuck = voice.connect(guild, std::future::pending::<Result<(), ()>>());
        assert!(
            tokio::time::timeout(Duration::from_millis(20), stuck)
                .await
                .is_err()
        );
        // A panic reaches the caller with its payload, and is counted.
        let panicking = voice.connect(guild, async {
            if true {
                std::panic::panic_any("voice gateway gone");
            }
            Ok::<(), ()>(())
        });
        let error = tokio::spawn(panicking).await.unwrap_err();
        assert!(error.is_panic());
        assert_eq!(
            error.into_panic().downcast_ref::<&str>(),
            Some(&"voice gateway gone")
        );

        let scrape = metrics.scrape();
        let value = |status| scrape.value(ATTEMPTS, &[("guild_id", "9"), ("status", status)]);
        assert_eq!(value("success"), Some(1.0));
        assert_eq!(value("error"), Some(1.0));
        assert_eq!(value("cancelled"), Some(1.0));
        assert_eq!(value("panic"), Some(1.0));
    }

    #[tokio::test]
    async fn a_panicking_audio_operation_records_no_duration_and_carries_on() {
        let metrics = TestMetrics::new("disruptor");
        let voice = VoiceMetrics::builder().meter(metrics.meter()).build();
        let timed = voice.time("cleanup", Id::new(4), async {
            if true {
                panic!("decoder crashed");
            }
        });
        assert!(tokio::spawn(timed).await.unwrap_err().is_panic());
        assert!(!metrics.scrape().has(&format!("{PROCESSING}_count")));
    }
}
