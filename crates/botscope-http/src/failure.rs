//! How a request or its answer failed, as the layers tell each other: the marker the
//! forwarder leaves on an answer of its own ([`ForwardErrorType`]), why an upstream body
//! failed after its head ([`BodyErrorKind`]), and the boxed error of the proxy's stack
//! ([`BoxError`]).

use std::error::Error as StdError;
use std::fmt;

use http::StatusCode;

use crate::labels::{STATUS_ERROR, STATUS_TIMEOUT};

/// A boxed error, as tower middleware commonly returns.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Why [`Forward`](crate::Forward) answered a request itself: the marker it leaves in the extensions of
/// that response. See the [`forward`](crate::forward) module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardErrorType {
    /// The upstream could not be reached or the connection failed mid-request: 502.
    Unreachable,
    /// The upstream sent no response head within the timeout: 504.
    Timeout,
    /// The request's path and the upstream base make no valid URI: 502.
    InvalidUri,
    /// No rustls crypto provider to open TLS with: none was given to the proxy and none is
    /// installed for the process (the bot installs one, or twilight-http's `build()` does
    /// from the rustls features of the bot's tree): 502.
    NoCryptoProvider,
    /// The client's request body failed while it was forwarded: malformed (an overflowing
    /// chunk size, bad chunked framing) or cut short (the client hung up mid-upload): 400.
    /// The client's fault, not Discord's: counted `status_code="client_error"`.
    ClientBody,
}

impl ForwardErrorType {
    /// The status the proxy answers with: 504 for a timeout, 400 for the client's own fault,
    /// else 502.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::ClientBody => StatusCode::BAD_REQUEST,
            Self::Unreachable | Self::InvalidUri | Self::NoCryptoProvider => {
                StatusCode::BAD_GATEWAY
            }
        }
    }

    /// Whether the upstream did not answer in time.
    pub const fn is_timeout(self) -> bool {
        matches!(self, Self::Timeout)
    }

    /// Whether the client, not the upstream, failed the request.
    pub const fn is_client_fault(self) -> bool {
        matches!(self, Self::ClientBody)
    }

    /// The message of the response body; never the URI, whose path may carry a token.
    pub(crate) const fn message(self) -> &'static str {
        match self {
            Self::Unreachable => "botscope proxy: upstream unreachable",
            Self::Timeout => "botscope proxy: upstream timed out",
            Self::InvalidUri => "botscope proxy: request path is not a valid upstream uri",
            Self::NoCryptoProvider => "botscope proxy: no rustls crypto provider is installed",
            Self::ClientBody => "botscope proxy: the request body is malformed or incomplete",
        }
    }
}

impl fmt::Display for ForwardErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unreachable => "upstream unreachable",
            Self::Timeout => "upstream did not answer in time",
            Self::InvalidUri => "request path is not a valid upstream uri",
            Self::NoCryptoProvider => "no rustls crypto provider is installed",
            Self::ClientBody => "request body from the client is malformed or incomplete",
        })
    }
}

/// Why an upstream body failed after its head: the `kind` of
/// `N_discord_api_body_errors_total`. See the [`body`](crate::body) module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyErrorKind {
    /// No byte of the body arrived within the body timeout.
    Timeout,
    /// The upstream connection failed mid-body (reset, closed before the stated length).
    Error,
}

impl BodyErrorKind {
    /// The `kind` label: `timeout` or `error`, the words `status_code` uses for the same
    /// faults before the head.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => STATUS_TIMEOUT,
            Self::Error => STATUS_ERROR,
        }
    }
}

impl fmt::Display for BodyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "upstream body stalled past the body timeout",
            Self::Error => "upstream body failed",
        })
    }
}
