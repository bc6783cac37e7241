//! [`Error`]: the one error every botscope error converts into, so a bot's own error type
//! needs one `From`.

use std::error::Error as StdError;
use std::fmt;

use crate::error::BuildError;

/// Any error botscope returns: [`BuildError`] from `Telemetry::install`, and with their
/// features `botscope::http::ProxyError`, `botscope::jobs::JobError` and
/// tokio-cron-scheduler's `JobSchedulerError`. Each converts with `?`; the original error is
/// the [`source`](StdError::source), and [`kind`](Self::kind) says which part failed.
///
/// ```
/// #[derive(Debug)]
/// enum BotError {
///     Botscope(botscope::Error),
///     // the bot's own variants
/// }
///
/// impl From<botscope::Error> for BotError {
///     fn from(error: botscope::Error) -> Self {
///         Self::Botscope(error)
///     }
/// }
///
/// fn start() -> Result<botscope::Telemetry, BotError> {
///     let telemetry = botscope::Telemetry::builder()
///         .serve(false)
///         .system_metrics(false)
///         .set_global(false)
///         .install()
///         .map_err(botscope::Error::from)?;
///     Ok(telemetry)
/// }
/// # start().unwrap();
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorType,
    source: Box<dyn StdError + Send + Sync>,
}

/// Which part of botscope an [`Error`] came from; the source has the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorType {
    /// `Telemetry::install` failed: the source is a [`BuildError`].
    Telemetry,
    /// The Discord proxy did not start: the source is a `botscope::http::ProxyError`.
    Proxy,
    /// A job, layer, registration or cron job could not be built: the source is a
    /// `botscope::jobs::JobError`.
    Job,
    /// tokio-cron-scheduler failed: the source is its `JobSchedulerError`.
    Scheduler,
}

impl Error {
    fn new(kind: ErrorType, source: impl StdError + Send + Sync + 'static) -> Self {
        Self {
            kind,
            source: Box::new(source),
        }
    }

    /// Which part failed.
    pub const fn kind(&self) -> ErrorType {
        self.kind
    }

    /// The kind and the original error.
    pub fn into_parts(self) -> (ErrorType, Box<dyn StdError + Send + Sync>) {
        (self.kind, self.source)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            ErrorType::Telemetry => "telemetry could not be installed",
            ErrorType::Proxy => "the discord proxy could not start",
            ErrorType::Job => "a scheduled job could not be set up",
            ErrorType::Scheduler => "the job scheduler failed",
        })
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

impl From<BuildError> for Error {
    fn from(error: BuildError) -> Self {
        Self::new(ErrorType::Telemetry, error)
    }
}

#[cfg(feature = "http")]
impl From<botscope_http::ProxyError> for Error {
    fn from(error: botscope_http::ProxyError) -> Self {
        Self::new(ErrorType::Proxy, error)
    }
}

#[cfg(feature = "jobs")]
impl From<botscope_jobs::JobError> for Error {
    fn from(error: botscope_jobs::JobError) -> Self {
        Self::new(ErrorType::Job, error)
    }
}

#[cfg(feature = "cron")]
impl From<tokio_cron_scheduler::JobSchedulerError> for Error {
    fn from(error: tokio_cron_scheduler::JobSchedulerError) -> Self {
        Self::new(ErrorType::Scheduler, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(Error: StdError, Send, Sync);

    #[test]
    fn a_build_error_keeps_its_message_as_the_source() {
        let error = Error::from(BuildError::new(crate::BuildErrorType::EmptyBearerToken));
        assert_eq!(error.kind(), ErrorType::Telemetry);
        assert_eq!(error.to_string(), "telemetry could not be installed");
        let source = error.source().map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some("the bearer token is empty: pass a non-empty token or none at all")
        );
    }

    #[test]
    fn messages_are_lowercase_without_trailing_period() {
        for kind in [
            ErrorType::Telemetry,
            ErrorType::Proxy,
            ErrorType::Job,
            ErrorType::Scheduler,
        ] {
            let message = Error::new(kind, std::fmt::Error).to_string();
            assert!(message.starts_with(|c: char| c.is_lowercase()), "{message}");
            assert!(!message.ends_with('.'), "{message}");
        }
    }
}
