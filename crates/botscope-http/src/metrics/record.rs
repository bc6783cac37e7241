//! What the metrics layer records of one request: its series, and how it ended.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use botscope_core::outcome::{Ending, Finish};
use botscope_core::span::Span;
use http::StatusCode;
use opentelemetry::StringValue;

use crate::edge::{EdgeErrorKind, ErrorBody};
use crate::failure::ForwardFailure;
use crate::instruments::{End, EndpointSeries, Instruments};
use crate::interaction;
use crate::labels::{
    ENDPOINT, KIND, OUTCOME, SCOPE, STATUS_CANCELLED, STATUS_CLIENT_ERROR, STATUS_ERROR,
    STATUS_PANIC, STATUS_TIMEOUT, kv,
};
use crate::pairing::{self, Parent};
use crate::scope::RateLimitScope;
use crate::session::SessionStartLimit;

/// What the metrics take from a call that returned.
pub(crate) enum Answer {
    /// A response head; the scope is read for a 429 only, Discord's error code (when the
    /// proxy read one) and the edge kind for a 4xx or 5xx only, the session start limit for a
    /// `GET /gateway/bot` only.
    Head {
        status: StatusCode,
        scope: Option<RateLimitScope>,
        code: Option<u32>,
        edge: Option<EdgeErrorKind>,
        session: Option<SessionStartLimit>,
    },
    /// The proxy's own answer to a request it could not forward.
    NotForwarded(ForwardFailure),
    /// The inner service's error.
    Error,
}

impl Answer {
    /// `gateway_bot`: the request was a `GET /gateway/bot`.
    pub(crate) fn of<ResBody, E>(
        result: &Result<http::Response<ResBody>, E>,
        gateway_bot: bool,
    ) -> Self {
        let Ok(response) = result else {
            return Self::Error;
        };
        let extensions = response.extensions();
        if let Some(kind) = extensions.get::<ForwardFailure>() {
            return Self::NotForwarded(*kind);
        }
        let status = response.status();
        let scope = (status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| RateLimitScope::from_headers(response.headers()));
        let (code, edge) = if status.is_client_error() || status.is_server_error() {
            let body = extensions.get::<ErrorBody>();
            (
                body.and_then(ErrorBody::code),
                EdgeErrorKind::classify(status, scope, response.headers(), body),
            )
        } else {
            (None, None)
        };
        Self::Head {
            status,
            scope,
            code,
            edge,
            session: (gateway_bot && status.is_success())
                .then(|| extensions.get::<SessionStartLimit>().copied())
                .flatten(),
        }
    }
}

/// The [`Finish`] of one request: its series and how it ended.
pub(crate) struct Record {
    pub(crate) instruments: Arc<Instruments>,
    /// The bound series of the endpoint, if it has one.
    pub(crate) series: Option<Arc<EndpointSeries>>,
    pub(crate) endpoint: StringValue,
    pub(crate) method: &'static str,
    pub(crate) interaction: Option<InteractionCall>,
    /// The twilight span that sent the request, when paired.
    pub(crate) parent: Option<Parent>,
}

/// A request that answers an interaction (see [`interaction`](crate::interaction)).
#[derive(Clone, Copy)]
pub(crate) enum InteractionCall {
    /// The initial response; `late` when forwarded past Discord's deadline.
    Callback { late: bool },
    /// A follow-up on the interaction's token.
    Followup,
}

impl InteractionCall {
    /// The `outcome` label of its counter.
    fn outcome(self, ending: &Ending<'_, Answer>) -> &'static str {
        let answer = match ending {
            Ending::Completed(Answer::Head { status, code, .. }) => Some((*status, *code)),
            _ => None,
        };
        match self {
            Self::Callback { late } => interaction::callback_outcome(late, answer),
            Self::Followup => interaction::followup_outcome(answer),
        }
    }

    fn record(self, instruments: &Instruments, ending: &Ending<'_, Answer>) {
        let counter = match self {
            Self::Callback { .. } => &instruments.interaction_responses,
            Self::Followup => &instruments.interaction_followups,
        };
        counter.add(1, &[kv(OUTCOME, self.outcome(ending))]);
    }
}

impl Finish<Answer> for Record {
    /// A client span `{method} {route}`, with the route template (never the path).
    fn span(&self) -> Span {
        let span = botscope_core::unit_span!(
            target: "botscope_http",
            "http.request",
            otel.name = %format_args!("{} {}", self.method, self.endpoint.as_str()),
            otel.kind = "client",
            "http.request.method" = self.method,
            "url.template" = self.endpoint.as_str(),
            "http.response.status_code" = tracing::field::Empty,
            "discord.ratelimit.scope" = tracing::field::Empty,
            "discord.interaction.late" = tracing::field::Empty,
            "discord.interaction.outcome" = tracing::field::Empty,
        );
        if let Some(InteractionCall::Callback { late }) = self.interaction {
            span.record("discord.interaction.late", late);
        }
        pairing::adopt(&span, self.parent.as_ref());
        span
    }

    /// The status code of a 4xx or 5xx (as the conventions name it), the proxy's own
    /// failure as the `status_code` label says it, `panic` or `cancelled`.
    fn error_type(&self, ending: &Ending<'_, Answer>) -> Option<Cow<'static, str>> {
        match ending {
            Ending::Completed(Answer::Head { status, .. }) => (status.is_client_error()
                || status.is_server_error())
            .then(|| Cow::Owned(status.as_u16().to_string())),
            Ending::Completed(Answer::NotForwarded(ForwardFailure::Timeout)) => {
                Some(Cow::Borrowed(STATUS_TIMEOUT))
            }
            Ending::Completed(Answer::NotForwarded(ForwardFailure::ClientBody)) => {
                Some(Cow::Borrowed(STATUS_CLIENT_ERROR))
            }
            Ending::Completed(Answer::NotForwarded(_) | Answer::Error) => {
                Some(Cow::Borrowed(STATUS_ERROR))
            }
            Ending::Panicked => Some(Cow::Borrowed(STATUS_PANIC)),
            Ending::Cancelled => Some(Cow::Borrowed(STATUS_CANCELLED)),
        }
    }

    fn record_span(&self, span: &Span, ending: &Ending<'_, Answer>) {
        if let Some(interaction) = self.interaction {
            span.record("discord.interaction.outcome", interaction.outcome(ending));
        }
        if let Ending::Completed(Answer::Head { status, scope, .. }) = ending {
            span.record("http.response.status_code", status.as_u16());
            if let Some(scope) = scope {
                span.record("discord.ratelimit.scope", scope.as_str());
            }
        }
    }

    fn finish(self, elapsed: Duration, ending: Ending<'_, Answer>) {
        let instruments = &self.instruments;
        let end = match &ending {
            Ending::Completed(Answer::Head {
                status,
                scope,
                edge,
                session,
                ..
            }) => {
                if let Some(edge) = edge {
                    instruments.edge_errors.add(1, &[kv(KIND, edge.as_str())]);
                }
                if let Some(session) = session {
                    instruments.record_session_starts(session);
                }
                if let Some(scope) = scope {
                    if scope.counts_as_invalid() {
                        instruments.invalid.record();
                    }
                    instruments.ratelimited.add(
                        1,
                        &[
                            kv(ENDPOINT, self.endpoint.clone()),
                            kv(SCOPE, scope.as_str()),
                        ],
                    );
                } else if matches!(*status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                    instruments.invalid.record();
                }
                End::Head(*status)
            }
            Ending::Completed(Answer::NotForwarded(kind)) => End::NotForwarded(*kind),
            Ending::Completed(Answer::Error) => End::Error,
            Ending::Panicked => End::Panicked,
            Ending::Cancelled => End::Cancelled,
        };
        instruments.record_request(
            self.series.as_deref(),
            &self.endpoint,
            self.method,
            end,
            elapsed,
        );
        if let Some(call) = self.interaction {
            call.record(instruments, &ending);
        }
    }
}
