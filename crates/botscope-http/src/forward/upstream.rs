//! Where the forwarder sends a request: the upstream base URI, the headers that never cross a
//! hop, and the proxy's own answers in Discord's error shape.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Response, StatusCode, Uri};
use http_body_util::{Either, Full};

use crate::forward::body::ProxyBody;

/// A response of the proxy's own, in Discord's error shape, so twilight-http reports it as
/// an API error with this status.
pub(crate) fn own_response(status: StatusCode, message: &'static str) -> Response<ProxyBody> {
    let body = format!("{{\"message\":\"{message}\",\"code\":0}}");
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The base URI requests are forwarded to: a scheme, an authority and an optional path prefix.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    scheme: Scheme,
    pub(crate) authority: Authority,
    prefix: String,
}

impl Upstream {
    pub(crate) fn parse(base: &str) -> Option<Self> {
        let uri: Uri = base.parse().ok()?;
        let scheme = uri.scheme()?.clone();
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return None;
        }
        let authority = uri.authority()?.clone();
        // No query, and no credentials: the upstream is logged at start-up.
        if uri.query().is_some() || authority.as_str().contains('@') {
            return None;
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Some(Self {
            scheme,
            authority,
            prefix,
        })
    }

    pub(crate) fn uri(&self, path_and_query: Option<&PathAndQuery>) -> Option<Uri> {
        let path = path_and_query.map_or("/", PathAndQuery::as_str);
        let path_and_query: PathAndQuery = if self.prefix.is_empty() {
            path.parse().ok()?
        } else {
            format!("{}{path}", self.prefix).parse().ok()?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .ok()
    }
}

/// Headers that describe one hop and never cross a proxy (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those the `connection` header names.
/// `transfer-encoding` goes too: hyper frames the body again on the next hop.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uri_keeps_prefix_and_query() {
        let up = Upstream::parse("http://127.0.0.1:9/base/").unwrap();
        let pq: PathAndQuery = "/api/v10/users/@me?x=1".parse().unwrap();
        assert_eq!(
            up.uri(Some(&pq)).unwrap().to_string(),
            "http://127.0.0.1:9/base/api/v10/users/@me?x=1"
        );
        assert!(Upstream::parse("discord.com").is_none());
        assert!(Upstream::parse("ftp://discord.com").is_none());
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, x-private".parse().unwrap());
        headers.insert("x-private", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        headers.insert(header::AUTHORIZATION, "Bot x".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::AUTHORIZATION));
    }
}
