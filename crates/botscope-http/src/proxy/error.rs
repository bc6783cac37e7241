//! [`ProxyError`]: why a [`DiscordProxy`](crate::DiscordProxy) could not start.

use std::error::Error as StdError;
use std::fmt;
use std::net::SocketAddr;

use crate::forward::upstream::Upstream;

/// An error spawning a [`DiscordProxy`](crate::DiscordProxy).
#[derive(Debug)]
pub struct ProxyError {
    kind: ProxyErrorType,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl ProxyError {
    pub(crate) fn new(
        kind: ProxyErrorType,
        source: Option<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self { kind, source }
    }

    /// The type of error.
    pub const fn kind(&self) -> &ProxyErrorType {
        &self.kind
    }

    /// The type of error and its source.
    pub fn into_parts(self) -> (ProxyErrorType, Option<Box<dyn StdError + Send + Sync>>) {
        (self.kind, self.source)
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ProxyErrorType::InvalidUpstream => f.write_str(
                "upstream must be an http or https url without a query or credentials, e.g. https://discord.com",
            ),
            ProxyErrorType::Bind { addr } => write!(f, "cannot listen on {addr}"),
            ProxyErrorType::Tls => f.write_str("cannot build the tls configuration"),
        }
    }
}

impl StdError for ProxyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|source| &**source as &(dyn StdError + 'static))
    }
}

/// Checks an upstream base URL as [`DiscordProxyBuilder::spawn`](crate::DiscordProxyBuilder::spawn) does: an `http` or `https`
/// URL without a query or credentials, e.g. `https://discord.com`. For a command line or a configuration file
/// that should fail before anything starts.
///
/// # Errors
///
/// [`ProxyErrorType::InvalidUpstream`] if it is not one.
///
/// ```
/// use botscope_http::proxy::validate_upstream;
///
/// assert!(validate_upstream("https://discord.com").is_ok());
/// assert!(validate_upstream("http://127.0.0.1:8080/prefix").is_ok());
/// assert!(validate_upstream("discord.com").is_err());
/// assert!(validate_upstream("ftp://discord.com").is_err());
/// assert!(validate_upstream("https://discord.com/?secret=1").is_err());
/// assert!(validate_upstream("https://user:pass@discord.com").is_err());
/// ```
pub fn validate_upstream(base: &str) -> Result<(), ProxyError> {
    match Upstream::parse(base) {
        Some(_) => Ok(()),
        None => Err(ProxyError {
            kind: ProxyErrorType::InvalidUpstream,
            source: None,
        }),
    }
}

/// The type of a [`ProxyError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyErrorType {
    /// The upstream is not an `http`/`https` URL.
    InvalidUpstream,
    /// The listen address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
    },
    /// The TLS configuration could not be built.
    Tls,
}
