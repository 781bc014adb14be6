//! What a request path means to the cache: its namespace, whether it may be cached at all,
//! and which revocation it is.

use std::borrow::Cow;

use http::Method;
use serde::Deserialize;

use crate::key::RequestParts;
use crate::secret::SecretToken;

/// The namespace every request without one is in.
pub const ROOT_NAMESPACE: &str = "root/";

/// A request path cut into the namespace written inside it and the path Vault routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ApiPath<'a> {
    /// Namespace segments found before the API path (`ns1/ns2`), without the final `/`.
    pub(crate) namespace: &'a str,
    /// The path Vault routes inside that namespace (`auth/token/create`).
    pub(crate) route: &'a str,
}

/// Splits `/v1/<namespace…>/<route>`; `None` when the path is not under `/v1/`.
///
/// Only `auth/` and `sys/` routes can be told apart from a namespace (Vault forbids those
/// names for namespaces); for any other path the whole rest is the route.
pub(crate) fn split_api_path(path: &str) -> Option<ApiPath<'_>> {
    let rest = path.strip_prefix("/v1/")?;

    let mut offset = 0;
    for segment in rest.split('/') {
        if segment == "auth" || segment == "sys" {
            return Some(ApiPath {
                namespace: rest[..offset].trim_end_matches('/'),
                route: &rest[offset..],
            });
        }
        offset += segment.len() + 1;
    }
    Some(ApiPath {
        namespace: "",
        route: rest,
    })
}

/// Joins the namespace header and the namespace found in the path: `ns1/ns2/`, or `root/`.
pub(crate) fn join_namespace(header: Option<&str>, in_path: &str) -> String {
    let mut joined = String::new();
    let header = header.unwrap_or("");
    for segment in header.split('/').chain(in_path.split('/')) {
        if !segment.is_empty() {
            joined.push_str(segment);
            joined.push('/');
        }
    }
    if joined.is_empty() || joined == ROOT_NAMESPACE {
        return ROOT_NAMESPACE.to_owned();
    }
    joined
        .strip_prefix(ROOT_NAMESPACE)
        .unwrap_or(&joined)
        .to_owned()
}

/// The namespace a request runs in, for one that creates a lease with `lease_id`.
///
/// Secret paths carry no marker that separates a namespace from the mount, but a lease id
/// starts with the mount-relative path that issued it (`db/creds/app/<id>`), so whatever comes
/// before that path in the request is the namespace.
pub(crate) fn request_namespace(parts: &RequestParts<'_>, lease_id: Option<&str>) -> String {
    let Some(api) = split_api_path(parts.path) else {
        return join_namespace(parts.namespace, "");
    };
    if !api.namespace.is_empty() {
        return join_namespace(parts.namespace, api.namespace);
    }

    let issued_under = lease_id
        .and_then(|id| id.rsplit_once('/'))
        .map(|(dir, _)| dir);
    let route = api.route.trim_end_matches('/');
    let in_path = match issued_under {
        Some(dir) if !dir.is_empty() && route.len() > dir.len() && route.ends_with(dir) => {
            route[..route.len() - dir.len()].trim_end_matches('/')
        }
        _ => "",
    };
    join_namespace(parts.namespace, in_path)
}

/// Routes whose responses are never cached, whatever they contain.
///
/// Renewals and lookups would return a stale answer on the next call; revocations and wrapping
/// change state; logins would hand one caller's token to the next caller.
pub(crate) fn never_cached(route: &str) -> bool {
    let mut segments = route.split('/');
    let first = segments.next().unwrap_or("");
    let second = segments.next().unwrap_or("");
    let third = segments.next().unwrap_or("");

    match (first, second) {
        ("auth", "token") => {
            third.starts_with("renew") || third.starts_with("lookup") || third.starts_with("revoke")
        }
        ("auth", _) => is_login(route),
        ("sys", "leases") => {
            third.starts_with("renew") || third == "lookup" || third.starts_with("revoke")
        }
        ("sys", op) => op == "renew" || op == "wrapping" || op.starts_with("revoke"),
        _ => false,
    }
}

/// `auth/<mount…>/login…` and the OIDC/JWT callbacks, which also hand out a fresh token.
fn is_login(route: &str) -> bool {
    route
        .split('/')
        .skip(2)
        .any(|segment| segment.starts_with("login") || segment == "callback")
}

/// What a successful (`204`, or queued `202`) revocation made Vault forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// A token and, with it, every token and lease created under it
    /// (`auth/token/revoke`, `auth/token/revoke-self`).
    Token(SecretToken),
    /// The same, located by the token's accessor (`auth/token/revoke-accessor`).
    TokenAccessor(String),
    /// A token and its leases; its child tokens live on (`auth/token/revoke-orphan`).
    TokenOrphan(SecretToken),
    /// One lease (`sys/leases/revoke`, body or path form, and legacy `sys/revoke/<id>`).
    Lease(String),
    /// Every lease whose id starts with `prefix` in `namespace`
    /// (`sys/leases/revoke-prefix/`, `revoke-force/`, and the legacy `sys/` forms).
    LeasePrefix {
        /// The lease id prefix from the path.
        prefix: String,
        /// The namespace the revocation ran in (`root/` by default).
        namespace: String,
    },
}

#[derive(Deserialize)]
struct RevokeBody<'a> {
    #[serde(default, borrow)]
    token: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    accessor: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    lease_id: Option<Cow<'a, str>>,
}

/// Recognises a revocation request; pure, the proxy calls it once Vault answered `204` (or
/// `202`, a revocation queued).
///
/// Covers the seven token and lease routes plus the legacy `sys/revoke*` ones, with a
/// namespace inside the path tolerated. A revocation route whose body lacks the field it needs
/// gives `None` (logged): Vault did revoke something, but there is nothing to locate it by.
pub fn classify_revocation(parts: &RequestParts<'_>) -> Option<Revocation> {
    if parts.method != Method::PUT && parts.method != Method::POST {
        return None;
    }
    let api = split_api_path(parts.path)?;
    let route = api.route;

    let body_field = |pick: fn(RevokeBody<'_>) -> Option<Cow<'_, str>>| {
        let body: RevokeBody<'_> = serde_json::from_slice(parts.body).ok()?;
        pick(body).filter(|value| !value.is_empty())
    };
    let revocation = match route {
        "auth/token/revoke" => body_field(|b| b.token).map(|t| Revocation::Token(token(t))),
        "auth/token/revoke-self" => parts
            .token
            .filter(|t| !t.is_empty())
            .map(|t| Revocation::Token(SecretToken::new(t))),
        "auth/token/revoke-accessor" => {
            body_field(|b| b.accessor).map(|a| Revocation::TokenAccessor(a.into_owned()))
        }
        "auth/token/revoke-orphan" => {
            body_field(|b| b.token).map(|t| Revocation::TokenOrphan(token(t)))
        }
        "sys/leases/revoke" => body_field(|b| b.lease_id).map(|l| Revocation::Lease(l.into())),
        _ => return classify_lease_path(route, parts.namespace, api.namespace),
    };

    if revocation.is_none() {
        tracing::warn!(
            path = parts.path,
            "revocation succeeded upstream but its body names nothing to evict"
        );
    }
    revocation
}

/// The path forms: `sys/leases/revoke/<id>`, `…/revoke-prefix/<p>`, `…/revoke-force/<p>` and
/// the legacy `sys/revoke/<id>`, `sys/revoke-prefix/<p>`, `sys/revoke-force/<p>`.
fn classify_lease_path(route: &str, header_ns: Option<&str>, path_ns: &str) -> Option<Revocation> {
    let op_and_arg = route
        .strip_prefix("sys/leases/")
        .or_else(|| route.strip_prefix("sys/"))?;
    let (op, arg) = op_and_arg.split_once('/')?;
    if arg.is_empty() {
        return None;
    }

    match op {
        "revoke" => Some(Revocation::Lease(arg.to_owned())),
        "revoke-prefix" | "revoke-force" => Some(Revocation::LeasePrefix {
            prefix: arg.to_owned(),
            namespace: join_namespace(header_ns, path_ns),
        }),
        _ => None,
    }
}

fn token(text: Cow<'_, str>) -> SecretToken {
    match text {
        Cow::Borrowed(text) => SecretToken::new(text),
        Cow::Owned(text) => SecretToken::from(text),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    fn parts<'a>(
        method: &'a Method,
        headers: &'a HeaderMap,
        path: &'a str,
        body: &'a str,
    ) -> RequestParts<'a> {
        RequestParts {
            method,
            path,
            query: None,
            headers,
            body: body.as_bytes(),
            token: Some("s.caller"),
            namespace: None,
        }
    }

    #[test]
    fn splits_namespace_written_in_the_path() {
        let check = |path: &str, expected: Option<(&str, &str)>| {
            let got = split_api_path(path).map(|api| (api.namespace, api.route));
            assert_eq!(got, expected, "{path}");
        };

        check("/v1/auth/token/create", Some(("", "auth/token/create")));
        check(
            "/v1/ns1/auth/token/create",
            Some(("ns1", "auth/token/create")),
        );
        check(
            "/v1/a/b/sys/leases/revoke",
            Some(("a/b", "sys/leases/revoke")),
        );
        check("/v1/db/creds/app", Some(("", "db/creds/app")));
        check("/v2/auth/token/create", None);
        check("/agent/v1/cache-clear", None);
    }

    #[test]
    fn joins_namespaces() {
        let check = |header: Option<&str>, in_path: &str, expected: &str| {
            assert_eq!(
                join_namespace(header, in_path),
                expected,
                "{header:?} {in_path}"
            );
        };

        check(None, "", "root/");
        check(Some("root"), "", "root/");
        check(Some("/root/"), "", "root/");
        check(Some("ns1"), "", "ns1/");
        check(Some("ns1/"), "ns2", "ns1/ns2/");
        check(None, "ns1/ns2", "ns1/ns2/");
        check(Some("root/ns1"), "", "ns1/");
    }

    #[test]
    fn infers_the_namespace_of_a_lease_from_its_id() {
        let method = Method::GET;
        let headers = HeaderMap::new();
        let check = |path: &str, header: Option<&str>, lease: Option<&str>, expected: &str| {
            let request = RequestParts {
                namespace: header,
                ..parts(&method, &headers, path, "")
            };
            assert_eq!(request_namespace(&request, lease), expected, "{path}");
        };

        check("/v1/db/creds/app", None, Some("db/creds/app/xyz"), "root/");
        check(
            "/v1/ns1/db/creds/app",
            None,
            Some("db/creds/app/xyz.ns"),
            "ns1/",
        );
        check(
            "/v1/ns1/db/creds/app",
            Some("top"),
            Some("db/creds/app/x"),
            "top/ns1/",
        );
        check(
            "/v1/aws/sts/role",
            Some("ns2"),
            Some("aws/creds/role/x"),
            "ns2/",
        );
        check("/v1/ns1/auth/token/create", None, None, "ns1/");
    }

    #[test]
    fn routes_that_are_never_cached() {
        let check = |route: &str, expected: bool| {
            assert_eq!(never_cached(route), expected, "{route}");
        };

        for route in [
            "auth/token/renew",
            "auth/token/renew-self",
            "auth/token/renew-accessor",
            "auth/token/lookup",
            "auth/token/lookup-self",
            "auth/token/lookup-accessor",
            "auth/token/lookup/s.x",
            "auth/token/revoke",
            "auth/token/revoke-orphan",
            "sys/leases/renew",
            "sys/leases/renew/db/creds/x",
            "sys/leases/lookup",
            "sys/leases/lookup/db/",
            "sys/leases/revoke-prefix/db",
            "sys/renew",
            "sys/renew/db/creds/x",
            "sys/revoke/db/creds/x",
            "sys/revoke-force/db",
            "sys/wrapping/wrap",
            "sys/wrapping/unwrap",
            "auth/approle/login",
            "auth/userpass/login/alice",
            "auth/team/ldap/login/bob",
            "auth/oidc/oidc/callback",
            "auth/jwt/callback",
        ] {
            check(route, true);
        }
        for route in [
            "auth/token/create",
            "auth/token/create-orphan",
            "auth/token/create/login-role",
            "db/creds/app",
            "aws/creds/deploy",
            "sys/health",
        ] {
            check(route, false);
        }
    }

    #[test]
    fn classifies_revocations() {
        let put = Method::PUT;
        let get = Method::GET;
        let headers = HeaderMap::new();
        let check = |method: &Method, path: &str, body: &str, expected: Option<Revocation>| {
            let request = parts(method, &headers, path, body);
            assert_eq!(classify_revocation(&request), expected, "{path} {body}");
        };
        let token = |t: &str| SecretToken::new(t);
        let prefix = |p: &str, ns: &str| {
            Some(Revocation::LeasePrefix {
                prefix: p.into(),
                namespace: ns.into(),
            })
        };

        check(
            &put,
            "/v1/auth/token/revoke",
            r#"{"token":"s.a"}"#,
            Some(Revocation::Token(token("s.a"))),
        );
        check(
            &put,
            "/v1/auth/token/revoke-self",
            "",
            Some(Revocation::Token(token("s.caller"))),
        );
        check(
            &put,
            "/v1/auth/token/revoke-accessor",
            r#"{"accessor":"acc1"}"#,
            Some(Revocation::TokenAccessor("acc1".into())),
        );
        check(
            &put,
            "/v1/auth/token/revoke-orphan",
            r#"{"token":"s.o"}"#,
            Some(Revocation::TokenOrphan(token("s.o"))),
        );
        check(
            &put,
            "/v1/sys/leases/revoke",
            r#"{"lease_id":"db/creds/app/1"}"#,
            Some(Revocation::Lease("db/creds/app/1".into())),
        );
        check(
            &put,
            "/v1/sys/leases/revoke/db/creds/app/2",
            "",
            Some(Revocation::Lease("db/creds/app/2".into())),
        );
        check(
            &put,
            "/v1/sys/leases/revoke-prefix/db/creds/",
            "",
            prefix("db/creds/", "root/"),
        );
        check(
            &put,
            "/v1/sys/leases/revoke-force/db",
            "",
            prefix("db", "root/"),
        );
        check(
            &put,
            "/v1/ns1/sys/leases/revoke-prefix/db/",
            "",
            prefix("db/", "ns1/"),
        );
        check(
            &put,
            "/v1/ns1/auth/token/revoke",
            r#"{"token":"s.n"}"#,
            Some(Revocation::Token(token("s.n"))),
        );
        // Legacy routes Vault's cache misses.
        check(
            &put,
            "/v1/sys/revoke/db/creds/app/3",
            "",
            Some(Revocation::Lease("db/creds/app/3".into())),
        );
        check(
            &put,
            "/v1/sys/revoke-prefix/db/",
            "",
            prefix("db/", "root/"),
        );
        check(&put, "/v1/sys/revoke-force/db/", "", prefix("db/", "root/"));
        // Not revocations, or nothing to locate.
        check(&get, "/v1/auth/token/revoke", r#"{"token":"s.a"}"#, None);
        check(&put, "/v1/auth/token/revoke", "", None);
        check(&put, "/v1/auth/token/revoke", r#"{"token":""}"#, None);
        check(&put, "/v1/sys/leases/revoke-prefix/", "", None);
        check(&put, "/v1/sys/leases/renew", r#"{"lease_id":"x"}"#, None);
        check(&put, "/v1/auth/token/create", "{}", None);
    }
}
