//! Rules on request paths and headers: what is refused, what is stripped, which routes the
//! proxy treats specially, and where the configured namespace goes.

use std::borrow::Cow;

use http::header::{
    CONNECTION, CONTENT_LENGTH, EXPECT, HOST, HeaderName, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION,
    TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::uri::PathAndQuery;
use http::{HeaderMap, Uri};

/// Headers that describe one connection, not the message, and never cross the proxy.
const HOP_BY_HOP: [HeaderName; 8] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    UPGRADE,
];

/// Checks a request path before anything is forwarded.
///
/// The rule: a path is refused when, after percent-decoding (once, as Vault decodes), one of
/// its `/`-separated segments is `.` or `..`. That catches `..`, `%2e%2e`, `.%2E`, and
/// segments smuggled in with an encoded slash (`a%2f..%2fsys`). Vault's HTTP server would
/// answer such a path with a redirect to its cleaned form, so no client relies on them, and a
/// proxy that passed them on could be steered to a route other than the one it checked.
///
/// Everything else is allowed, including dots inside a segment (`my.app`, `a..b`), empty
/// segments (`//`, which [`canonical_uri`] removes), a trailing `/`, and a mount that happens
/// to be called `v1` (`/v1/v1/...`): once dot segments are gone, a second `v1` can only name a
/// mount.
pub(crate) fn check_path(path: &str) -> Result<(), &'static str> {
    // Nearly every path has neither: skip the decoding.
    if !path.bytes().any(|b| b == b'.' || b == b'%') {
        return Ok(());
    }

    let decoded = percent_decode(path);
    let is_dot_segment = |segment: &[u8]| segment == b"." || segment == b"..";
    if decoded.split(|&b| b == b'/').any(is_dot_segment) {
        return Err("dot segments (. or ..) are not allowed in a request path");
    }
    Ok(())
}

/// The request target rewritten to the path Vault acts on, when the client spelled it
/// another way; `None` when it is already in that form. Run after [`check_path`].
///
/// Vault decodes every percent-escape in a path, and answers a path with empty segments with a
/// redirect to its cleaned form, which the forward follows. So `auth/token%2Frevoke-self`,
/// `auth/token/revok%65-self` and `auth//token/revoke-self` all revoke a token. Every rule of
/// the proxy and the cache (token routes, revocations, routes never cached) reads the path, so
/// it must read the one Vault acts on: escapes of `/` and of unreserved characters are decoded
/// and runs of `/` become one. Other escapes (`%20`, `%3F`, `%25`) stay as written, since
/// decoded they would change the request target; no route name contains those characters.
pub(crate) fn canonical_uri(uri: &Uri) -> Result<Option<Uri>, &'static str> {
    let Some(path) = canonical_path(uri.path()) else {
        return Ok(None);
    };

    let target = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(target).map_err(|_| UNREADABLE)?);
    Uri::from_parts(parts).map(Some).map_err(|_| UNREADABLE)
}

const UNREADABLE: &str = "the path cannot be put in the form Vault reads";

fn canonical_path(path: &str) -> Option<String> {
    // Nearly every path is already canonical: skip the copy.
    if !path.contains('%') && !path.contains("//") {
        return None;
    }

    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let (byte, width) = match bytes[i] {
            b'%' => match hex_byte(bytes.get(i + 1..i + 3)) {
                Some(decoded) if decoded == b'/' || is_unreserved(decoded) => (decoded, 3),
                _ => (b'%', 1),
            },
            other => (other, 1),
        };
        i += width;
        if !(byte == b'/' && out.last() == Some(&b'/')) {
            out.push(byte);
        }
    }

    // Only ASCII was decoded or dropped, so the text stays UTF-8.
    let canonical = String::from_utf8(out).ok()?;
    (canonical != path).then_some(canonical)
}

/// RFC 3986's unreserved characters: an escape of one means the character itself.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Removes hop-by-hop headers (and those the `Connection` header names), plus `Host`,
/// `Content-Length` and `Expect`, which the outgoing connection sets for itself.
pub(crate) fn strip_request_headers(headers: &mut HeaderMap) {
    strip_connection_named(headers);
    remove_where(headers, |name| {
        is_hop_by_hop(name)
            || name == TRANSFER_ENCODING
            || name == HOST
            || name == CONTENT_LENGTH
            || name == EXPECT
    });
}

/// Removes hop-by-hop headers from Vault's answer; `Content-Length` stays, it is the body's.
pub(crate) fn strip_response_headers(headers: &mut HeaderMap) {
    strip_connection_named(headers);
    remove_where(headers, |name| {
        is_hop_by_hop(name) || name == TRANSFER_ENCODING
    });
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Removes every header whose name `doomed` picks. A message carries a handful of headers
/// and rarely more than one to drop, so looking at those it has is cheaper than looking up
/// each name that might be there.
fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    while let Some(name) = headers.keys().find(|name| doomed(name)).cloned() {
        headers.remove(name);
    }
}

/// Token routes whose answers reveal the token they were called with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenRoute {
    /// `auth/token/lookup-self`: the token in `data.id`, its accessor in `data.accessor`.
    LookupSelf,
    /// `auth/token/renew-self`: the token in `auth.client_token`.
    RenewSelf,
    /// `auth/token/lookup`, about the token in the body.
    Lookup,
    /// `auth/token/renew`, about the token in the body.
    Renew,
}

/// Which token route `path` is (`/v1/[namespace/]auth/token/<op>`), if any.
pub(crate) fn token_route(path: &str) -> Option<TokenRoute> {
    let rest = path.strip_prefix("/v1/")?;
    let mut segments = rest.rsplit('/');
    let op = segments.next()?;
    if segments.next()? != "token" || segments.next()? != "auth" {
        return None;
    }

    match op {
        "lookup-self" => Some(TokenRoute::LookupSelf),
        "renew-self" => Some(TokenRoute::RenewSelf),
        "lookup" => Some(TokenRoute::Lookup),
        "renew" => Some(TokenRoute::Renew),
        _ => None,
    }
}

/// Whether a path may be a revocation the cache must hear about; a cheap first filter
/// before the cache's own classification.
pub(crate) fn may_revoke(path: &str) -> bool {
    path.contains("revoke")
}

/// Whether a request for `path` gets the agent's namespace as `X-Vault-Namespace`, given that
/// the client sent no namespace header.
///
/// The rule: a namespace is given once, either in the header or as the first segments of the
/// path, never both. A path that already starts with the configured namespace
/// (`/v1/ns1/child/...` for `ns1/child`) goes as it is; any other path gets the header.
pub(crate) fn needs_namespace_header(path: &str, namespace: &str) -> bool {
    let Some(rest) = path.strip_prefix("/v1/") else {
        return true;
    };
    let Some(after) = rest.strip_prefix(namespace) else {
        return true;
    };
    !(after.is_empty() || after.starts_with('/'))
}

/// Decodes `%XX` escapes; a malformed escape stays as written.
fn percent_decode(text: &str) -> Cow<'_, [u8]> {
    let bytes = text.as_bytes();
    if !bytes.contains(&b'%') {
        return Cow::Borrowed(bytes);
    }

    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| hex_byte(bytes.get(i + 1..i + 3)))
            .flatten();
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// The byte two hex digits stand for.
fn hex_byte(digits: Option<&[u8]>) -> Option<u8> {
    let digits = std::str::from_utf8(digits?).ok()?;
    u8::from_str_radix(digits, 16).ok()
}

fn strip_connection_named(headers: &mut HeaderMap) {
    if !headers.contains_key(CONNECTION) {
        return;
    }

    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn paths_refused_and_allowed() {
        fn check(path: &str, refused: bool) {
            assert_eq!(check_path(path).is_err(), refused, "{path}");
        }

        check("/v1/secret/data/app", false);
        check("/v1/sys/health", false);
        check("/v1/secret/data/my.app", false);
        check("/v1/secret/data/a..b", false);
        check("/v1/secret/data/.hidden", false);
        check("/v1/secret/data/..hidden", false);
        check("/v1/v1/data/app", false);
        check("/v1//sys/health", false);
        check("/v1/secret/", false);
        check("/v1/secret/%41pp", false);
        check("/v1/secret/100%", false);

        check("/v1/secret/../sys/seal", true);
        check("/v1/secret/..", true);
        check("/v1/./sys/health", true);
        check("/v1/secret/%2e%2e/sys/seal", true);
        check("/v1/secret/%2E%2e/sys/seal", true);
        check("/v1/secret/.%2e/sys/seal", true);
        check("/v1/secret%2f..%2fsys/seal", true);
        check("/agent/v1/../../v1/sys/seal", true);
    }

    #[test]
    fn paths_are_put_in_the_form_vault_acts_on() {
        fn check(target: &str, expected: Option<&str>) {
            let uri: Uri = target.parse().unwrap();
            let got = canonical_uri(&uri).unwrap().map(|uri| uri.to_string());
            assert_eq!(got.as_deref(), expected, "{target}");
        }

        check("/v1/secret/data/app", None);
        check("/v1/secret/data/app/?list=true", None);
        check("/v1/secret/data/a%20b%3F%25%2", None);
        check("/v1/secret/data/%zz%", None);
        check(
            "/v1/auth/token%2Frevoke-self",
            Some("/v1/auth/token/revoke-self"),
        );
        check(
            "/v1/auth/token%2frevoke-self",
            Some("/v1/auth/token/revoke-self"),
        );
        check(
            "/v1/auth/token/revok%65-self",
            Some("/v1/auth/token/revoke-self"),
        );
        check("/%76%31/sys/%7e%5F%2D%2E", Some("/v1/sys/~_-."));
        check("/v1//auth///token/x//", Some("/v1/auth/token/x/"));
        check("//v1/sys/health", Some("/v1/sys/health"));
        check("/v1/a%2F%2Fb%2f/c", Some("/v1/a/b/c"));
        check("/v1/a%252F?x=%2F//", None);
        check(
            "http://vault:8200/v1//sys/health?a=%2F",
            Some("http://vault:8200/v1/sys/health?a=%2F"),
        );
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-custom-hop"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("host", "127.0.0.1:8200"),
            ("content-length", "3"),
            ("expect", "100-continue"),
            ("x-custom-hop", "1"),
            ("x-vault-token", "s.t"),
            ("x-vault-namespace", "ns1"),
            ("content-type", "application/json"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }

        strip_request_headers(&mut headers);
        let mut left: Vec<_> = headers.keys().map(|name| name.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "x-vault-namespace", "x-vault-token"]);
    }

    #[test]
    fn token_routes() {
        fn check(path: &str, expected: Option<TokenRoute>) {
            assert_eq!(token_route(path), expected, "{path}");
        }

        check("/v1/auth/token/lookup-self", Some(TokenRoute::LookupSelf));
        check(
            "/v1/ns1/auth/token/lookup-self",
            Some(TokenRoute::LookupSelf),
        );
        check("/v1/auth/token/renew-self", Some(TokenRoute::RenewSelf));
        check("/v1/auth/token/lookup", Some(TokenRoute::Lookup));
        check("/v1/auth/token/renew", Some(TokenRoute::Renew));
        check("/v1/auth/token/lookup-accessor", None);
        check("/v1/auth/mytoken/lookup-self", None);
        check("/v1/secret/auth/token/x", None);
        check("/agent/v1/auth/token/lookup-self", None);
        check("/v1/token/lookup-self", None);
    }

    #[test]
    fn namespace_goes_in_the_header_or_the_path_never_both() {
        fn check(path: &str, namespace: &str, header: bool) {
            assert_eq!(
                needs_namespace_header(path, namespace),
                header,
                "{path} in {namespace}"
            );
        }

        check("/v1/secret/data/app", "ns1", true);
        check("/v1/ns1/secret/data/app", "ns1", false);
        check("/v1/ns1", "ns1", false);
        check("/v1/ns10/secret", "ns1", true);
        check("/v1/ns1/child/secret", "ns1/child", false);
        check("/v1/ns1/secret", "ns1/child", true);
        check("/v1/ns1/ns1/secret", "ns1", false);
    }
}
