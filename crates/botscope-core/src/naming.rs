//! [`Naming`]: which names the REST and database families carry — botscope's own catalogue
//! (the default, the Go bot's contract) or the OpenTelemetry semantic conventions v1.44.
//!
//! Each instrumentation builder that records one of those families (`DiscordMetricsLayer`,
//! `DiscordProxy`, `InstrumentedPool`) takes a `naming(..)`; without one it reads the
//! process-wide default here, as it reads the global meter provider when given no meter.
//! `botscope::Telemetry::builder().naming(..)` sets that default when it installs (with
//! `set_global(true)`, its default), so one line switches a whole bot. Builders read it when
//! they build: install the telemetry first, as for the global meter provider.
//!
//! ```
//! use botscope_core::naming::{self, Naming};
//!
//! assert_eq!(naming::global(), Naming::Botscope);
//! assert_eq!(naming::naming_or_global(Some(Naming::Semconv)), Naming::Semconv);
//! ```
//!
//! Only the families the conventions name change; every other family keeps its name in
//! both modes (see docs/METRICS.md, "Semantic-convention names").

use std::sync::atomic::{AtomicU8, Ordering};

/// The names the REST and database families carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Naming {
    /// botscope's catalogue: `N_discord_api_request_duration_seconds`,
    /// `N_database_query_duration_seconds`… — the names the Go bot's dashboards and alerts
    /// query. The default.
    #[default]
    Botscope,
    /// The OpenTelemetry semantic conventions v1.44: `http.client.request.duration`,
    /// `db.client.operation.duration`, `db.client.connection.*`, with the conventions'
    /// attributes and advised buckets, in place of the botscope families they replace.
    Semconv,
}

impl Naming {
    /// `botscope` or `semconv`, as the demo's `BOTSCOPE_NAMING` spells them.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Botscope => "botscope",
            Self::Semconv => "semconv",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s spelling, ASCII case-insensitively; `None` for
    /// anything else.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Botscope, Self::Semconv]
            .into_iter()
            .find(|naming| naming.as_str().eq_ignore_ascii_case(name.trim()))
    }

    const fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Semconv,
            _ => Self::Botscope,
        }
    }

    const fn to_u8(self) -> u8 {
        match self {
            Self::Botscope => 0,
            Self::Semconv => 1,
        }
    }
}

impl std::fmt::Display for Naming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The process-wide default, [`Naming::Botscope`] until [`set_global`] says otherwise.
static GLOBAL: AtomicU8 = AtomicU8::new(0);

/// Sets the naming builders use when not given one. `botscope::Telemetry` calls it on
/// install; call it yourself when you wire your own exporter.
pub fn set_global(naming: Naming) {
    GLOBAL.store(naming.to_u8(), Ordering::Relaxed);
}

/// The naming builders use when not given one.
pub fn global() -> Naming {
    Naming::from_u8(GLOBAL.load(Ordering::Relaxed))
}

/// The naming a builder was given, else the process-wide one.
pub fn naming_or_global(naming: Option<Naming>) -> Naming {
    naming.unwrap_or_else(global)
}

/// The attribute that classes a failed operation, in every semantic-convention family.
pub const ERROR_TYPE: &str = "error.type";
/// The `error.type` value of an error with no better class (the conventions' fallback).
pub const ERROR_TYPE_OTHER: &str = "_OTHER";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_round_trips() {
        for naming in [Naming::Botscope, Naming::Semconv] {
            assert_eq!(Naming::parse(naming.as_str()), Some(naming));
            assert_eq!(naming.to_string(), naming.as_str());
            assert_eq!(Naming::from_u8(naming.to_u8()), naming);
        }
        assert_eq!(Naming::parse(" SemConv "), Some(Naming::Semconv));
        assert_eq!(Naming::parse("otel"), None);
        assert_eq!(Naming::default(), Naming::Botscope);
    }

    #[test]
    fn an_explicit_naming_wins_over_the_global_one() {
        // The only test that touches the global: it ends where it started.
        assert_eq!(global(), Naming::Botscope);
        set_global(Naming::Semconv);
        assert_eq!(naming_or_global(None), Naming::Semconv);
        assert_eq!(naming_or_global(Some(Naming::Botscope)), Naming::Botscope);
        set_global(Naming::Botscope);
        assert_eq!(naming_or_global(None), Naming::Botscope);
    }
}
