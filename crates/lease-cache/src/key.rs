//! The cache key: which requests count as "the same request".
//!
//! The key is SHA-256 over these fields, in this order, each one length-prefixed (or, for the
//! canonical JSON body, self-delimiting) so that two different field lists never produce the
//! same byte stream:
//!
//! 1. a domain tag naming this rule's version;
//! 2. the method, where `LIST` and `GET` with a true `list` query parameter are the same
//!    (`LIST`); that `list` parameter is then not part of the query;
//! 3. the path exactly as sent, `/v1` included; `//` and a trailing `/` are kept, because
//!    Vault may route them differently;
//! 4. the query: split on `&`, each parameter at its first `=`, `+` and `%XX` decoded, then
//!    sorted by name and value, so order and encoding do not matter;
//! 5. the body: when it is a JSON object, its canonical form (keys sorted at every level, no
//!    insignificant whitespace, strings re-escaped one way, numbers as written); otherwise
//!    the raw bytes;
//! 6. the token actually used (so a response is never served to another token);
//! 7. the namespace header, surrounding `/` trimmed, `root` meaning none;
//! 8. the headers that change Vault's answer, by name in a fixed order, every value in the
//!    order sent: [`KEYED_HEADERS`].
//!
//! Everything else is left out: `User-Agent`, `Accept-Encoding`, the consistency headers
//! (`X-Vault-Index`, `X-Vault-Forward`, `X-Vault-Inconsistent`), header order and case.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::io;

use http::{HeaderMap, HeaderName, Method};
use serde::de::IgnoredAny;
use sha2::{Digest, Sha256};

/// Headers whose values are part of the key, sorted by name.
///
/// The wrap and MFA headers change what Vault returns; `Authorization` can carry the token
/// itself; `Content-Type` changes how Vault reads the body (JSON or form).
pub const KEYED_HEADERS: [&str; 6] = [
    "authorization",
    "content-type",
    "x-vault-mfa",
    "x-vault-policy-override",
    "x-vault-wrap-format",
    "x-vault-wrap-ttl",
];

/// The parts of an incoming request that the cache looks at, borrowed from the proxy.
///
/// `Debug` leaves out the token and the body, which may carry secrets.
#[derive(Clone, Copy)]
pub struct RequestParts<'a> {
    /// HTTP method as received (`LIST` included).
    pub method: &'a Method,
    /// Path as received, starting with `/v1/`.
    pub path: &'a str,
    /// Raw query string without the `?`, when there is one.
    pub query: Option<&'a str>,
    /// Request headers as received.
    pub headers: &'a HeaderMap,
    /// Request body.
    pub body: &'a [u8],
    /// The token sent upstream (the client's, or the auto-auth token the proxy put in).
    pub token: Option<&'a str>,
    /// The `X-Vault-Namespace` header, when present.
    pub namespace: Option<&'a str>,
}

impl<'a> RequestParts<'a> {
    /// Fills every field from a parsed HTTP request; the namespace comes from its header.
    pub fn from_request(
        request: &'a http::request::Parts,
        body: &'a [u8],
        token: Option<&'a str>,
    ) -> Self {
        let namespace = request
            .headers
            .get(NAMESPACE_HEADER)
            .and_then(|value| value.to_str().ok());

        Self {
            method: &request.method,
            path: request.uri.path(),
            query: request.uri.query(),
            headers: &request.headers,
            body,
            token,
            namespace,
        }
    }
}

impl fmt::Debug for RequestParts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestParts")
            .field("method", self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("namespace", &self.namespace)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// A fixed-size identity of a request (see the module documentation for the rule).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// A key no request hashes to in practice, for entries that answer no request.
    pub(crate) const ZERO: CacheKey = CacheKey([0; 32]);

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A well-mixed 64-bit hash for the crate's own hash tables.
    pub(crate) fn short_hash(&self) -> u64 {
        let mut first = [0; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(first)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first bytes are enough to tell keys apart in logs.
        write!(f, "CacheKey(")?;
        for byte in &self.0[..6] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "…)")
    }
}

/// The header naming the request's namespace.
const NAMESPACE_HEADER: HeaderName = HeaderName::from_static("x-vault-namespace");
/// The header asking Vault to wrap its answer.
pub(crate) const WRAP_TTL_HEADER: HeaderName = HeaderName::from_static("x-vault-wrap-ttl");

/// [`KEYED_HEADERS`] as header names, so that looking them up parses nothing.
const KEYED_HEADER_NAMES: [HeaderName; 6] = [
    HeaderName::from_static(KEYED_HEADERS[0]),
    HeaderName::from_static(KEYED_HEADERS[1]),
    HeaderName::from_static(KEYED_HEADERS[2]),
    HeaderName::from_static(KEYED_HEADERS[3]),
    HeaderName::from_static(KEYED_HEADERS[4]),
    HeaderName::from_static(KEYED_HEADERS[5]),
];

/// Computes the cache key of a request.
pub fn cache_key(parts: &RequestParts<'_>) -> CacheKey {
    // The fields are laid out in one buffer and hashed at once: cheaper than feeding the
    // hash two dozen small pieces, and the same digest.
    let mut text = Vec::with_capacity(256 + parts.path.len() + parts.body.len());
    field(&mut text, b"lease-cache key v1");

    // Method and query go together: a true `list` parameter turns GET into LIST.
    let mut params = parse_query(parts.query.unwrap_or(""));
    let listed = take_list_flag(&mut params);
    let method = match parts.method.as_str() {
        "GET" if listed => "LIST",
        other => other,
    };
    field(&mut text, method.as_bytes());
    field(&mut text, parts.path.as_bytes());

    params.sort_unstable();
    count(&mut text, params.len());
    for (name, value) in &params {
        field(&mut text, name);
        field(&mut text, value);
    }

    hash_body(&mut text, parts.body);
    field(&mut text, parts.token.unwrap_or("").as_bytes());
    field(
        &mut text,
        normalise_namespace_header(parts.namespace).as_bytes(),
    );

    for name in &KEYED_HEADER_NAMES {
        let values = parts.headers.get_all(name);
        count(&mut text, values.iter().count());
        for value in values {
            field(&mut text, value.as_bytes());
        }
    }

    CacheKey(Sha256::digest(&text).into())
}

/// The namespace header with its surrounding `/` removed; `root` and empty mean none.
fn normalise_namespace_header(namespace: Option<&str>) -> &str {
    match namespace.map(|ns| ns.trim_matches('/')) {
        None | Some("root") => "",
        Some(ns) => ns,
    }
}

fn field(text: &mut Vec<u8>, bytes: &[u8]) {
    count(text, bytes.len());
    text.extend_from_slice(bytes);
}

fn count(text: &mut Vec<u8>, n: usize) {
    text.extend_from_slice(&(n as u64).to_be_bytes());
}

type Param<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

fn parse_query(query: &str) -> Vec<Param<'_>> {
    if query.is_empty() {
        return Vec::new();
    }
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

/// Removes every `list` parameter holding a boolean and says whether one of them was true.
///
/// Vault reads the flag as a Go boolean, so `1`, `t`, `TRUE`… all mean true.
fn take_list_flag(params: &mut Vec<Param<'_>>) -> bool {
    let mut listed = false;
    params.retain(|(name, value)| {
        if name.as_ref() != b"list" {
            return true;
        }
        match go_bool(value) {
            Some(flag) => {
                listed |= flag;
                false
            }
            None => true,
        }
    });
    listed
}

fn go_bool(value: &[u8]) -> Option<bool> {
    match value {
        b"1" | b"t" | b"T" | b"TRUE" | b"true" | b"True" => Some(true),
        b"0" | b"f" | b"F" | b"FALSE" | b"false" | b"False" => Some(false),
        _ => None,
    }
}

/// Decodes `+` and `%XX` as form encoding does; a malformed escape is kept as written.
fn form_decode(text: &str) -> Cow<'_, [u8]> {
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(bytes);
    }

    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let escaped = bytes.get(i + 1..i + 3).and_then(|hex| {
                    let high = (hex[0] as char).to_digit(16)?;
                    let low = (hex[1] as char).to_digit(16)?;
                    u8::try_from(high * 16 + low).ok()
                });
                if let Some(byte) = escaped {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            other => out.push(other),
        }
        i += 1;
    }
    Cow::Owned(out)
}

fn hash_body(text: &mut Vec<u8>, body: &[u8]) {
    // The canonical form goes straight after its tag and a length written once it is known.
    let start = text.len();
    text.push(b'J');
    count(text, 0);
    if remembered_canonical_form(body, text) {
        let length = (text.len() - start - 9) as u64;
        text[start + 1..start + 9].copy_from_slice(&length.to_be_bytes());
    } else {
        text.truncate(start);
        text.push(b'R');
        field(text, body);
    }
}

/// Bodies at most this long have their canonical form remembered.
const REMEMBERED_BODY: usize = 1024;
/// How many bodies each thread remembers.
const REMEMBERED_BODIES: usize = 16;

/// A body canonicalised lately, and its canonical form (`None`: not a JSON object).
struct Remembered {
    body: Box<[u8]>,
    canonical: Option<Box<[u8]>>,
}

thread_local! {
    /// The bodies this thread canonicalised lately, each in the slot its bytes hash to.
    static REMEMBERED: RefCell<[Option<Remembered>; REMEMBERED_BODIES]> =
        const { RefCell::new([const { None }; REMEMBERED_BODIES]) };
}

/// [`canonical_json_object`], remembered for small bodies: a cache serves requests repeated
/// as they were, bodies included, and finding a body again costs a hash and a comparison
/// where canonicalising costs a parse and a walk that allocates. The output is the same.
fn remembered_canonical_form(body: &[u8], out: &mut Vec<u8>) -> bool {
    if body.is_empty() || body.len() > REMEMBERED_BODY {
        return canonical_json_object(body, out);
    }

    let slot = (fnv1a(body) % REMEMBERED_BODIES as u64) as usize;
    REMEMBERED.with_borrow_mut(|remembered| {
        if let Some(known) = &remembered[slot]
            && *known.body == *body
        {
            let Some(canonical) = &known.canonical else {
                return false;
            };
            out.extend_from_slice(canonical);
            return true;
        }

        let start = out.len();
        let is_object = canonical_json_object(body, out);
        remembered[slot] = Some(Remembered {
            body: Box::from(body),
            canonical: is_object.then(|| Box::from(&out[start..])),
        });
        is_object
    })
}

/// FNV-1a: enough to spread bodies over a few slots; a collision only costs a recompute.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes the canonical form of `body` when it is one valid JSON object.
fn canonical_json_object(body: &[u8], out: &mut Vec<u8>) -> bool {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') || serde_json::from_slice::<IgnoredAny>(body).is_err() {
        return false;
    }
    // The body is valid JSON from here on, so the walk below only has to find boundaries.
    let mut walk = Canon { text: body, at: 0 };
    walk.value(out).is_ok()
}

/// A walk over JSON text already known to be valid.
struct Canon<'a> {
    text: &'a [u8],
    at: usize,
}

impl Canon<'_> {
    fn peek(&mut self) -> u8 {
        while self.at < self.text.len() && self.text[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
        self.text.get(self.at).copied().unwrap_or(0)
    }

    fn value(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        match self.peek() {
            b'{' => self.object(out),
            b'[' => self.array(out),
            b'"' => self.string(out),
            _ => {
                // Literals and numbers are kept as written: a different spelling only costs a
                // cache miss, while reformatting a number could merge two different requests.
                let start = self.at;
                while self.at < self.text.len()
                    && !matches!(self.text[self.at], b',' | b']' | b'}')
                    && !self.text[self.at].is_ascii_whitespace()
                {
                    self.at += 1;
                }
                out.extend_from_slice(&self.text[start..self.at]);
                Ok(())
            }
        }
    }

    fn string(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let start = self.at;
        let mut escaped = false;
        self.at += 1;
        while self.at < self.text.len() {
            match self.text[self.at] {
                b'\\' => {
                    escaped = true;
                    self.at += 1;
                }
                b'"' => break,
                _ => {}
            }
            self.at += 1;
        }
        self.at += 1;
        let raw = self.text.get(start..self.at).unwrap_or_default();

        // Without escapes the text already is in the one form serde_json writes.
        if !escaped {
            out.extend_from_slice(raw);
            return Ok(());
        }
        let decoded: String = serde_json::from_slice(raw)?;
        serde_json::to_writer(out, &decoded)?;
        Ok(())
    }

    fn array(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.at += 1;
        out.push(b'[');
        let mut first = true;
        while self.peek() != b']' {
            if !first {
                out.push(b',');
            }
            first = false;
            self.value(out)?;
            if self.peek() == b',' {
                self.at += 1;
            }
        }
        self.at += 1;
        out.push(b']');
        Ok(())
    }

    fn object(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.at += 1;

        // Members are written to one scratch buffer and sorted as (key, member) ranges.
        let mut scratch = Vec::new();
        let mut members = Vec::new();
        while self.peek() != b'}' {
            let start = scratch.len();
            self.string(&mut scratch)?;
            let key_end = scratch.len();
            self.peek();
            self.at += 1; // the ':'
            scratch.push(b':');
            self.value(&mut scratch)?;
            members.push((start, key_end, scratch.len()));
            if self.peek() == b',' {
                self.at += 1;
            }
        }
        self.at += 1;

        members.sort_by(|a, b| scratch[a.0..a.1].cmp(&scratch[b.0..b.1]));
        out.push(b'{');
        for (i, &(start, _, end)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&scratch[start..end]);
        }
        out.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    /// A request to key, built from the base case by changing one thing.
    #[derive(Clone)]
    struct Req {
        method: &'static str,
        path: &'static str,
        query: Option<&'static str>,
        headers: Vec<(&'static str, &'static str)>,
        body: &'static str,
        token: Option<&'static str>,
        namespace: Option<&'static str>,
    }

    fn base() -> Req {
        Req {
            method: "PUT",
            path: "/v1/auth/token/create",
            query: None,
            headers: Vec::new(),
            body: r#"{"policies":["a"],"ttl":"1h"}"#,
            token: Some("s.one"),
            namespace: None,
        }
    }

    impl Req {
        fn method(self, method: &'static str) -> Self {
            Self { method, ..self }
        }
        fn path(self, path: &'static str) -> Self {
            Self { path, ..self }
        }
        fn query(self, query: &'static str) -> Self {
            Self {
                query: Some(query),
                ..self
            }
        }
        fn body(self, body: &'static str) -> Self {
            Self { body, ..self }
        }
        fn token(self, token: Option<&'static str>) -> Self {
            Self { token, ..self }
        }
        fn namespace(self, namespace: &'static str) -> Self {
            Self {
                namespace: Some(namespace),
                ..self
            }
        }
        fn header(mut self, name: &'static str, value: &'static str) -> Self {
            self.headers.push((name, value));
            self
        }

        fn key(&self) -> CacheKey {
            let method = Method::from_bytes(self.method.as_bytes()).unwrap();
            let mut headers = HeaderMap::new();
            for (name, value) in &self.headers {
                headers.append(*name, HeaderValue::from_static(value));
            }
            cache_key(&RequestParts {
                method: &method,
                path: self.path,
                query: self.query,
                headers: &headers,
                body: self.body.as_bytes(),
                token: self.token,
                namespace: self.namespace,
            })
        }
    }

    const SAME: bool = true;
    const DIFFER: bool = false;

    fn check(name: &str, a: Req, b: Req, same: bool) {
        assert_eq!(a.key() == b.key(), same, "{name}");
    }

    /// Vault keys on the raw request, so a different `User-Agent`, query order or JSON key
    /// order makes a second entry. Here those are the same request; what changes Vault's
    /// answer still makes a different one.
    #[test]
    fn keys_ignore_noise_and_keep_what_changes_the_answer() {
        let get = || base().method("GET");

        check("identical", base(), base(), SAME);

        // Method and query.
        check(
            "list method and list flag",
            base().method("LIST"),
            get().query("list=true"),
            SAME,
        );
        check(
            "go spellings of true",
            get().query("list=1"),
            get().query("list=TRUE"),
            SAME,
        );
        check(
            "false list flag is a plain get",
            get().query("list=false"),
            get(),
            SAME,
        );
        check(
            "list flag on a put",
            base().query("list=true"),
            base().method("LIST"),
            DIFFER,
        );
        check(
            "query order",
            base().query("b=2&a=1&a=0"),
            base().query("a=0&a=1&b=2"),
            SAME,
        );
        check(
            "query encoding",
            base().query("x=a%2Fb+c&y=%7e"),
            base().query("x=a/b%20c&y=~"),
            SAME,
        );
        check(
            "query values",
            base().query("a=1"),
            base().query("a=2"),
            DIFFER,
        );

        // Body.
        let reordered = base().body(r#"{"ttl":"1h","policies":["a"]}"#);
        check(
            "json key order",
            reordered,
            base().body("{ \"policies\" : [ \"a\" ] ,\n \"ttl\":\"1h\" }"),
            SAME,
        );
        check(
            "nested key order",
            base().body(r#"{"m":{"b":1,"a":2}}"#),
            base().body(r#"{"m":{"a":2,"b":1}}"#),
            SAME,
        );
        check(
            "string escapes",
            base().body(r#"{"n":"\u0041\/"}"#),
            base().body(r#"{"n":"A/"}"#),
            SAME,
        );
        check(
            "array order",
            base().body(r#"{"p":["a","b"]}"#),
            base().body(r#"{"p":["b","a"]}"#),
            DIFFER,
        );
        check(
            "numbers as written",
            base().body(r#"{"n":1}"#),
            base().body(r#"{"n":1.0}"#),
            DIFFER,
        );
        check(
            "form body is raw",
            base().body("a=1&b=2"),
            base().body("b=2&a=1"),
            DIFFER,
        );
        check(
            "invalid json is raw",
            base().body(r#"{"a":1"#),
            base().body(r#"{"a":1"#),
            SAME,
        );
        check(
            "a json array is raw",
            base().body("[1, 2]"),
            base().body("[1,2]"),
            DIFFER,
        );

        // Token, path, namespace.
        check("token", base(), base().token(Some("s.two")), DIFFER);
        check("no token", base(), base().token(None), DIFFER);
        check(
            "double slash kept",
            base(),
            base().path("/v1/auth//token/create"),
            DIFFER,
        );
        check(
            "trailing slash kept",
            base(),
            base().path("/v1/auth/token/create/"),
            DIFFER,
        );
        check("namespace", base(), base().namespace("ns1"), DIFFER);
        check(
            "namespace slashes",
            base().namespace("/ns1/"),
            base().namespace("ns1"),
            SAME,
        );
        check(
            "root namespace is none",
            base().namespace("root"),
            base(),
            SAME,
        );

        // Headers.
        let noisy = base()
            .header("user-agent", "curl/8")
            .header("accept-encoding", "gzip");
        check(
            "user agent, accept-encoding",
            noisy,
            base().header("user-agent", "vault/1"),
            SAME,
        );
        let consistency = base()
            .header("x-vault-index", "abc")
            .header("x-vault-inconsistent", "x");
        check("consistency headers", consistency, base(), SAME);
        check(
            "header order",
            base()
                .header("x-vault-mfa", "m")
                .header("x-vault-wrap-format", "jwt"),
            base()
                .header("x-vault-wrap-format", "jwt")
                .header("x-vault-mfa", "m"),
            SAME,
        );
        check(
            "header name case",
            base().header("X-Vault-MFA", "m"),
            base().header("x-vault-mfa", "m"),
            SAME,
        );
        for name in KEYED_HEADERS {
            check(name, base().header(name, "v"), base(), DIFFER);
        }
    }

    /// A body found among the remembered ones gives the key it gave when canonicalised,
    /// however many others went through the same slots in between.
    #[test]
    fn remembered_bodies_give_the_keys_they_gave() {
        let key = |body: &str| {
            let headers = HeaderMap::new();
            cache_key(&RequestParts {
                method: &Method::POST,
                path: "/v1/auth/token/create",
                query: None,
                headers: &headers,
                body: body.as_bytes(),
                token: Some("s.t"),
                namespace: None,
            })
        };
        let compact = |n: usize| format!(r#"{{"b":[1,{{"a":2,"z":1}}],"ttl":"{n}h"}}"#);
        let spread = |n: usize| format!(r#"{{ "ttl" : "{n}h", "b" : [1, {{"z":1, "a":2}}] }}"#);
        let bodies: Vec<String> = (0..60)
            .flat_map(|n| [compact(n), spread(n), format!("not json {n}")])
            .collect();

        let first: Vec<CacheKey> = bodies.iter().map(|body| key(body)).collect();
        let again: Vec<CacheKey> = bodies.iter().rev().map(|body| key(body)).collect();
        for (i, (before, after)) in first.iter().zip(again.iter().rev()).enumerate() {
            assert_eq!(before, after, "{}", bodies[i]);
        }
        for n in 0..60 {
            assert_eq!(first[3 * n], first[3 * n + 1], "{}", bodies[3 * n]);
            assert_ne!(first[3 * n], first[3 * n + 2], "{}", bodies[3 * n]);
        }
        assert_ne!(first[0], first[3], "different bodies, different keys");
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        let split_path = base().path("/v1/a").query("b=");
        check(
            "path and query",
            split_path,
            base().path("/v1/ab").query(""),
            DIFFER,
        );
        let split_token = base().token(Some("s.ab")).namespace("c");
        check(
            "token and namespace",
            split_token,
            base().token(Some("s.a")).namespace("bc"),
            DIFFER,
        );
    }

    #[test]
    fn debug_of_parts_hides_token_and_body() {
        let method = Method::PUT;
        let headers = HeaderMap::new();
        let parts = RequestParts {
            method: &method,
            path: "/v1/auth/token/create",
            query: None,
            headers: &headers,
            body: br#"{"secret":"body-secret"}"#,
            token: Some("hvs.token-secret"),
            namespace: None,
        };
        let shown = format!("{parts:?}");

        assert!(!shown.contains("token-secret"), "{shown}");
        assert!(!shown.contains("body-secret"), "{shown}");
    }

    #[test]
    fn from_request_reads_namespace_header_and_query() {
        let (parts, ()) = http::Request::builder()
            .method("GET")
            .uri("/v1/db/creds/app?x=1")
            .header("X-Vault-Namespace", "team/")
            .body(())
            .unwrap()
            .into_parts();
        let request = RequestParts::from_request(&parts, b"", Some("s.t"));

        assert_eq!(request.path, "/v1/db/creds/app");
        assert_eq!(request.query, Some("x=1"));
        assert_eq!(request.namespace, Some("team/"));
    }
}
