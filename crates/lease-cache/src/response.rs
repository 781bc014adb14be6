//! Responses: what the proxy hands in, what the cache keeps and serves, and what in a Vault
//! response makes it cacheable.

use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hashbrown::HashTable;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use memchr::memmem;
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::time::Instant;

/// An upstream response as the proxy received it, borrowed.
#[derive(Clone, Copy)]
pub struct ResponseParts<'a> {
    /// Upstream status.
    pub status: StatusCode,
    /// Upstream headers.
    pub headers: &'a HeaderMap,
    /// Upstream body, decompressed.
    pub body: &'a [u8],
}

/// A stored response as served: its status, headers and body, and when it was stored.
/// Cheap to clone: the headers are shared with every response that has the same ones, the
/// body with the cache entry.
///
/// The headers exclude `Date`, `Content-Length` and hop-by-hop headers: the proxy writes those
/// for each answer, along with `X-Cache: HIT` and `Age`.
#[derive(Clone)]
pub struct CachedResponse {
    stored: Stored,
    stored_at: Instant,
}

/// A response as a cache entry keeps it.
///
/// The body is a copy of exactly its size, so nothing of the proxy's (possibly much larger)
/// read buffers stays pinned by the cache. The headers are interned: nearly every answer
/// carries the same two or three, and they are stored once, ready to serve.
#[derive(Clone)]
pub(crate) struct Stored {
    status: StatusCode,
    head: Arc<Head>,
    body: Bytes,
}

/// The kept headers of one or more stored responses: as `name:value\n` lines, by which they
/// are interned, and as a header map, with room for the two headers each answer adds.
pub(crate) struct Head {
    text: Box<[u8]>,
    map: HeaderMap,
}

/// A response checked for caching, not yet stored: its headers still to be interned.
pub(crate) struct Pending {
    status: StatusCode,
    head: Vec<u8>,
    body: Bytes,
}

impl Pending {
    /// Copies what is kept of `response`.
    pub(crate) fn new(response: &ResponseParts<'_>) -> Self {
        let mut head = Vec::new();
        for (name, value) in kept(response.headers) {
            head.extend_from_slice(name.as_str().as_bytes());
            head.push(b':');
            head.extend_from_slice(value.as_bytes());
            head.push(b'\n');
        }

        Self {
            status: response.status,
            head,
            body: Bytes::copy_from_slice(response.body),
        }
    }

    /// The response to keep, with its headers found in `heads` or added to it.
    pub(crate) fn store(self, heads: &mut Heads) -> Stored {
        Stored {
            status: self.status,
            head: heads.intern(&self.head),
            body: self.body,
        }
    }
}

impl Stored {
    /// The response to serve, stored at `stored_at`.
    pub(crate) fn serve(&self, stored_at: Instant) -> CachedResponse {
        CachedResponse {
            stored: self.clone(),
            stored_at,
        }
    }
}

/// The distinct header sets of stored responses.
pub(crate) struct Heads {
    known: HashTable<Arc<Head>>,
    hasher: RandomState,
    /// When the table reaches this size, the header sets no response uses any more are
    /// dropped; then it doubles what is left, so that the sweep stays rare.
    tidy_at: usize,
}

impl Default for Heads {
    fn default() -> Self {
        Self {
            known: HashTable::new(),
            hasher: RandomState::new(),
            tidy_at: 64,
        }
    }
}

impl Heads {
    /// The shared copy of the headers written as `text`.
    fn intern(&mut self, text: &[u8]) -> Arc<Head> {
        let hash = self.hasher.hash_one(text);
        if let Some(known) = self.known.find(hash, |head| &*head.text == text) {
            return known.clone();
        }

        if self.known.len() >= self.tidy_at {
            self.known.retain(|head| Arc::strong_count(head) > 1);
            self.tidy_at = (2 * self.known.len()).max(64);
        }
        let head = Arc::new(Head {
            text: Box::from(text),
            map: parse_head(text),
        });
        let hasher = &self.hasher;
        self.known
            .insert_unique(hash, head.clone(), |head| hasher.hash_one(&*head.text));
        head
    }

    /// How many distinct header sets are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.known.len()
    }
}

/// The header map of `name:value\n` lines written from valid headers.
fn parse_head(text: &[u8]) -> HeaderMap {
    let lines = text.split(|&b| b == b'\n').filter(|line| !line.is_empty());
    let mut map = HeaderMap::with_capacity(lines.clone().count() + 2);
    for line in lines {
        // Both parts were a valid name and value when written; a line that somehow is not
        // is skipped rather than served broken.
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(&line[..colon]);
        let value = HeaderValue::from_bytes(&line[colon + 1..]);
        if let (Ok(name), Ok(value)) = (name, value) {
            map.append(name, value);
        }
    }
    map
}

impl CachedResponse {
    /// Status to answer with.
    pub fn status(&self) -> StatusCode {
        self.stored.status
    }

    /// Stored headers, in upstream order, with room for the two each answer adds.
    pub fn headers(&self) -> &HeaderMap {
        &self.stored.head.map
    }

    /// The body (shared, not copied).
    pub fn body(&self) -> Bytes {
        self.stored.body.clone()
    }

    /// When the response was stored.
    pub fn stored_at(&self) -> Instant {
        self.stored_at
    }

    /// Time since the response was stored.
    pub fn age(&self) -> Duration {
        self.stored_at.elapsed()
    }

    /// The `Age` header value: whole seconds since the response was stored, rounded.
    pub fn age_secs(&self) -> u64 {
        let age = self.age();
        age.as_secs() + u64::from(age.subsec_millis() >= 500)
    }
}

impl std::fmt::Debug for CachedResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body is secret data (credentials, tokens): only its size is shown.
        f.debug_struct("CachedResponse")
            .field("status", &self.stored.status)
            .field("body_len", &self.stored.body.len())
            .finish_non_exhaustive()
    }
}

/// The headers of `headers` a stored response keeps.
fn kept(headers: &HeaderMap) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    headers.iter().filter(|(name, _)| !is_per_answer(name))
}

/// Headers that belong to one answer, not to the stored response.
fn is_per_answer(name: &HeaderName) -> bool {
    [
        header::DATE,
        header::CONTENT_LENGTH,
        header::AGE,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
    ]
    .contains(name)
        || name == "keep-alive"
        || name == "x-cache"
}

/// Whether the response says `Content-Type: application/json` (parameters allowed).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether `body` can be seen, without parsing it, to create neither a token nor a lease:
/// it names a `lease_id`, and every `lease_id` is empty, every `client_token` empty or null
/// and every `wrap_info` null. Nearly every read (a KV secret, a policy, a health check)
/// answers so, and then a few vectorised substring searches replace a JSON parse.
///
/// Anything it is not sure of (a value of another shape, a key written with a `\u` escape,
/// a body with no `lease_id` at all) is left to the parser: `false` decides nothing.
pub(crate) fn plainly_leaseless(body: &[u8]) -> bool {
    // A key spelled with an escape would hide from the searches below.
    if memmem::find(body, b"\\u").is_some() {
        return false;
    }

    let mut names_lease = false;
    for key in &KEYS {
        for found in memmem::find_iter(body, key.name) {
            // An escaped quote is inside a string, which no key is. An unescaped one before
            // the name opens the key, or a string value that happens to be the name, which
            // `value_after` turns down for want of a colon.
            if escaped(body, found) {
                continue;
            }
            let after = &body[found + key.name.len()..];
            if !value_after(after).is_some_and(key.plain) {
                return false;
            }
            names_lease |= key.name == LEASE_ID.name;
        }
    }
    names_lease
}

/// A key [`plainly_leaseless`] looks at, quotes included, and the values that leave an
/// answer plain.
struct Key {
    name: &'static [u8],
    plain: fn(Value) -> bool,
}

const LEASE_ID: Key = Key {
    name: b"\"lease_id\"",
    plain: |value| value == Value::Empty,
};
const KEYS: [Key; 3] = [
    LEASE_ID,
    Key {
        name: b"\"client_token\"",
        plain: |_| true,
    },
    Key {
        name: b"\"wrap_info\"",
        plain: |value| value == Value::Null,
    },
];

/// Whether the quote at `at` is escaped: preceded by an odd run of backslashes.
fn escaped(text: &[u8], at: usize) -> bool {
    let run = text[..at].iter().rev().take_while(|&&b| b == b'\\').count();
    run % 2 == 1
}

/// The kinds of value [`plainly_leaseless`] tells apart.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Value {
    Empty,
    Null,
}

/// The value after a key's closing quote, when it is `""` or `null`; `None` for anything
/// else, including a string that was no key (no `:` follows).
fn value_after(text: &[u8]) -> Option<Value> {
    let text = skip_space(text).strip_prefix(b":")?;
    let text = skip_space(text);
    if text.starts_with(b"\"\"") {
        Some(Value::Empty)
    } else if text.starts_with(b"null") {
        Some(Value::Null)
    } else {
        None
    }
}

fn skip_space(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .unwrap_or(text.len());
    &text[start..]
}

/// The parts of Vault's response envelope that decide caching.
#[derive(Deserialize)]
pub(crate) struct Envelope<'a> {
    #[serde(default, borrow)]
    pub(crate) lease_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) renewable: Option<bool>,
    #[serde(default)]
    pub(crate) lease_duration: Option<u64>,
    #[serde(default, borrow)]
    pub(crate) auth: Option<AuthBlock<'a>>,
    #[serde(default)]
    pub(crate) wrap_info: Option<IgnoredAny>,
}

/// The `auth` block of a token-creating response.
#[derive(Deserialize)]
pub(crate) struct AuthBlock<'a> {
    #[serde(default, borrow)]
    pub(crate) client_token: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) accessor: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) renewable: Option<bool>,
    #[serde(default)]
    pub(crate) lease_duration: Option<u64>,
    #[serde(default)]
    pub(crate) orphan: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keeps_answer_headers_and_rounds_age() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::DATE,
            HeaderValue::from_static("Mon, 01 Jan 2024 00:00:00 GMT"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("2"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert("x-vault-custom", HeaderValue::from_static("a:b; c=d"));
        let parts = ResponseParts {
            status: StatusCode::OK,
            headers: &headers,
            body: b"{}",
        };

        let mut heads = Heads::default();
        let stored = Pending::new(&parts).store(&mut heads).serve(Instant::now());
        let kept: Vec<_> = stored.headers().iter().collect();
        assert_eq!(kept.len(), 3);
        let json = HeaderValue::from_static("application/json");
        assert_eq!(kept[0], (&header::CONTENT_TYPE, &json));
        let no_store = HeaderValue::from_static("no-store");
        assert_eq!(kept[1], (&header::CACHE_CONTROL, &no_store));
        let custom = HeaderName::from_static("x-vault-custom");
        assert_eq!(kept[2], (&custom, &HeaderValue::from_static("a:b; c=d")));
        assert_eq!(stored.body(), Bytes::from_static(b"{}"));

        tokio::time::advance(Duration::from_millis(2_499)).await;
        assert_eq!(stored.age_secs(), 2);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(stored.age_secs(), 3);
    }

    #[test]
    fn responses_with_the_same_headers_share_one_copy() {
        fn response(headers: &[(&'static str, &'static str)]) -> HeaderMap {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.append(*name, HeaderValue::from_static(value));
            }
            map
        }
        let json = [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ];
        let dated = [("date", "Mon, 01 Jan 2024 00:00:00 GMT")];
        let other = [("content-type", "application/json")];

        let mut heads = Heads::default();
        let mut store = |headers: &HeaderMap, body: &'static [u8]| {
            let parts = ResponseParts {
                status: StatusCode::OK,
                headers,
                body,
            };
            Pending::new(&parts).store(&mut heads)
        };
        let first = store(&response(&json), b"{\"a\":1}");
        let with_date = response(&[json[0], json[1], dated[0]]);
        let second = store(&with_date, b"{\"b\":2}");
        let third = store(&response(&other), b"{}");

        assert!(Arc::ptr_eq(&first.head, &second.head), "Date is not kept");
        assert!(!Arc::ptr_eq(&first.head, &third.head));
        assert_eq!(heads.len(), 2);
        let served = second.serve(Instant::now());
        assert_eq!(served.body(), Bytes::from_static(b"{\"b\":2}"));
        assert_eq!(served.headers().len(), 2);
        assert!(served.headers().capacity() >= 4, "room for X-Cache and Age");
    }

    #[test]
    fn json_content_type() {
        let check = |value: &'static str, expected: bool| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_json(&headers), expected, "{value}");
        };

        check("application/json", true);
        check("application/json; charset=utf-8", true);
        check("Application/JSON", true);
        check("text/plain", false);
        check("application/jsonx", false);
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn leaseless_answers_are_seen_without_parsing() {
        fn check(body: &str, plainly: bool) {
            assert_eq!(plainly_leaseless(body.as_bytes()), plainly, "{body}");
            // Whatever it says, it agrees with the parser.
            if plainly {
                let envelope: Envelope<'_> = serde_json::from_slice(body.as_bytes()).unwrap();
                assert!(envelope.lease_id.is_none_or(|id| id.is_empty()), "{body}");
                assert!(envelope.wrap_info.is_none(), "{body}");
                let token = envelope.auth.and_then(|auth| auth.client_token);
                assert!(token.is_none_or(|token| token.is_empty()), "{body}");
            }
        }

        // What Vault sends for reads.
        check(
            r#"{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":{"password":"x"},"metadata":{"version":1}},"wrap_info":null,"warnings":null,"auth":null}"#,
            true,
        );
        check(
            r#"{"lease_id" : "", "auth": null, "wrap_info" :null}"#,
            true,
        );
        check(
            r#"{"lease_id":"","auth":{"client_token":"","accessor":""}}"#,
            true,
        );
        check(
            r#"{"lease_id":"","data":{"note":"a \"lease_id\":\"x\" in text"}}"#,
            true,
        );
        check(
            r#"{"lease_id":"","data":{"path":"C:\\"},"auth":null}"#,
            true,
        );
        check(r#"{"lease_id":"","data":{"quoted":"\"lease_id"}}"#, true);

        // Leases, tokens and wrapped answers go to the parser.
        check(r#"{"lease_id":"db/creds/app/1","renewable":true}"#, false);
        check(r#"{"lease_id":"","auth":{"client_token":"s.new"}}"#, false);
        check(r#"{"lease_id":"","wrap_info":{"token":"s.w"}}"#, false);
        check(r#"{"data":{"lease_id":""},"lease_id":"x"}"#, false);

        // So does anything it cannot be sure of.
        check(r#"{"lease\u005fid":"x","data":{"lease_id":""}}"#, false);
        check(r#"{"lease_id":null}"#, false);
        check(r#"{"data":{"k":"lease_id"},"lease_id":""}"#, false);
        check(r#"{"data":{}}"#, false);
        check("<html>", false);
        check("", false);
    }

    #[test]
    fn debug_hides_the_body() {
        let headers = HeaderMap::new();
        let parts = ResponseParts {
            status: StatusCode::OK,
            headers: &headers,
            body: br#"{"auth":{"client_token":"hvs.in-the-body"}}"#,
        };
        let stored = Pending::new(&parts)
            .store(&mut Heads::default())
            .serve(Instant::now());

        assert!(!format!("{stored:?}").contains("hvs.in-the-body"));
    }
}
