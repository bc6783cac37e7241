//! The label keys and the fixed label values of the Discord REST metrics: the vocabulary every
//! floor above records with.

use botscope_core::naming::ERROR_TYPE_OTHER;
use opentelemetry::{KeyValue, Value};

/// The well-known methods of the conventions (RFC 9110 and PATCH); any other is `_OTHER`.
pub(crate) const HTTP_METHODS: [&str; 9] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];
/// Where Discord's API answers: the default `server.address` and `server.port`.
pub(crate) const DISCORD_SERVER: (&str, u16) = ("discord.com", 443);

pub(crate) const HTTP_REQUEST_METHOD: &str = "http.request.method";
pub(crate) const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
pub(crate) const SERVER_ADDRESS: &str = "server.address";
pub(crate) const SERVER_PORT: &str = "server.port";
pub(crate) const URL_TEMPLATE: &str = "url.template";

/// The `status_code` value of a transport failure or a service error.
pub const STATUS_ERROR: &str = "error";
/// The `status_code` value of an upstream timeout.
pub const STATUS_TIMEOUT: &str = "timeout";
/// The `status_code` value of a request the client spoiled: its body was malformed, or it hung
/// up mid-upload (the proxy's 400, marked [`ForwardFailure::ClientBody`]).
///
/// [`ForwardFailure::ClientBody`]: crate::ForwardFailure::ClientBody
pub const STATUS_CLIENT_ERROR: &str = "client_error";
/// The `status_code` value of a request dropped before its response head (the caller gave up).
pub const STATUS_CANCELLED: &str = botscope_core::status::CANCELLED;
/// The `status_code` value of a request whose inner future panicked.
pub const STATUS_PANIC: &str = botscope_core::status::PANIC;

pub(crate) const ENDPOINT: &str = "endpoint";
pub(crate) const METHOD: &str = "method";
pub(crate) const STATUS_CODE: &str = "status_code";
pub(crate) const SCOPE: &str = "scope";
/// `N_clock_skew_total`'s label.
pub(crate) const REASON: &str = "reason";
pub(crate) const OUTCOME: &str = "outcome";
pub(crate) const KIND: &str = "kind";

/// `key=value`, for the attributes of a measurement.
pub(crate) fn kv(key: &'static str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(key, value)
}

/// The statuses Discord answers most, whose `status_code` values are static strings and whose
/// series the metrics layer binds once.
pub(crate) const COMMON_STATUSES: [(u16, &str); 14] = [
    (200, "200"),
    (201, "201"),
    (204, "204"),
    (304, "304"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (429, "429"),
    (500, "500"),
    (502, "502"),
    (503, "503"),
    (504, "504"),
];

/// The place of `status` in [`COMMON_STATUSES`], if it is one of them.
pub(crate) fn common_status(status: http::StatusCode) -> Option<usize> {
    let code = status.as_u16();
    COMMON_STATUSES.iter().position(|(known, _)| *known == code)
}

/// The `status_code` value of a status, without allocating for the common ones.
pub(crate) fn status_value(status: http::StatusCode) -> Value {
    match common_status(status) {
        Some(index) => Value::from(COMMON_STATUSES[index].1),
        None => Value::from(status.as_u16().to_string()),
    }
}

/// `http.request.method`: a well-known method of the conventions ([`HTTP_METHODS`]), else
/// `_OTHER`.
pub(crate) fn semconv_method(method: &http::Method) -> &'static str {
    HTTP_METHODS
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or(ERROR_TYPE_OTHER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semconv_methods() {
        assert_eq!(semconv_method(&http::Method::HEAD), "HEAD");
        assert_eq!(semconv_method(&http::Method::PATCH), "PATCH");
        assert_eq!(
            semconv_method(&http::Method::from_bytes(b"PURGE").unwrap()),
            "_OTHER"
        );
    }

    #[test]
    fn common_status_codes_are_static() {
        assert_eq!(status_value(http::StatusCode::OK).as_str(), "200");
        assert_eq!(status_value(http::StatusCode::IM_A_TEAPOT).as_str(), "418");
    }
}
