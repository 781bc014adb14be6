//! Listeners on real sockets: TCP (HTTP/1.1 and HTTP/2, TLS), Unix sockets and their
//! permissions, shutdown and drain.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::routing::get;
use tokio::sync::{Notify, oneshot};

use super::*;
use crate::settings::TlsSettings;

fn hello() -> Router {
    Router::new().route("/hello", get(|| async { "hi" }))
}

fn tcp(tls: Option<TlsSettings>) -> ListenerSettings {
    ListenerSettings::new(ListenerKind::Tcp {
        address: "127.0.0.1:0".to_owned(),
        tls,
    })
}

fn unix_settings(
    path: &Path,
    mode: Option<u32>,
    user: Option<&str>,
    group: Option<&str>,
) -> ListenerSettings {
    ListenerSettings::new(ListenerKind::Unix {
        path: path.to_owned(),
        mode,
        user: user.map(str::to_owned),
        group: group.map(str::to_owned),
    })
}

#[tokio::test]
async fn tcp_serves_http1_and_http2_and_stops_on_shutdown() {
    let bound = Listener::bind(&tcp(None)).await.unwrap();
    let address = bound.local_addr().unwrap();
    assert_eq!(bound.address(), address.to_string());
    let shutdown = CancellationToken::new();
    let serving = bound.serve(hello(), shutdown.clone());
    let url = format!("http://{address}/hello");

    let http1 = reqwest::get(&url).await.unwrap();
    assert_eq!(http1.version(), http::Version::HTTP_11);
    assert_eq!(http1.text().await.unwrap(), "hi");

    let http2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let answer = http2.get(&url).send().await.unwrap();
    assert_eq!(answer.version(), http::Version::HTTP_2);
    assert_eq!(answer.text().await.unwrap(), "hi");

    shutdown.cancel();
    serving.await.unwrap();
    assert!(reqwest::get(&url).await.is_err(), "no longer accepting");
}

#[tokio::test]
async fn bind_errors_name_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let settings = ListenerSettings::new(ListenerKind::Tcp {
        address: address.clone(),
        tls: None,
    });

    let error = Listener::bind(&settings).await.unwrap_err();
    assert_eq!(error.to_string(), format!("cannot listen on {address}"));

    let missing = TlsSettings::new("/nonexistent/cert.pem", "/nonexistent/key.pem");
    let error = Listener::bind(&tcp(Some(missing))).await.unwrap_err();
    assert_eq!(error.to_string(), "cannot set up TLS for 127.0.0.1:0");
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert!(
        cause.starts_with("cannot read /nonexistent/cert.pem"),
        "{cause}"
    );
}

/// A request in flight when shutdown starts still gets its answer; no new connection is
/// accepted meanwhile.
#[tokio::test]
async fn shutdown_drains_requests_in_flight() {
    let release = Arc::new(Notify::new());
    let (entered_tx, entered_rx) = oneshot::channel::<()>();
    let entered = Arc::new(parking_lot::Mutex::new(Some(entered_tx)));
    let handler_release = release.clone();
    let router = Router::new().route(
        "/slow",
        get(move || {
            let release = handler_release.clone();
            let entered = entered.lock().take();
            async move {
                let released = release.notified();
                if let Some(entered) = entered {
                    let _ = entered.send(());
                }
                released.await;
                "done"
            }
        }),
    );

    let bound = Listener::bind(&tcp(None)).await.unwrap();
    let address = bound.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let serving = bound.serve(router, shutdown.clone());

    let in_flight = tokio::spawn(reqwest::get(format!("http://{address}/slow")));
    entered_rx.await.unwrap();
    shutdown.cancel();
    tokio::task::yield_now().await;
    assert!(!serving.is_finished(), "waits for the request in flight");

    release.notify_one();
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer.text().await.unwrap(), "done");
    serving.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_means_no_request_in_flight_for_the_whole_timeout() {
    let idle = Duration::from_secs(300);
    let activity = Arc::new(Activity::new());
    assert!(!activity.is_idle(idle));

    let busy = activity.begin();
    tokio::time::advance(Duration::from_secs(400)).await;
    assert!(!activity.is_idle(idle), "a request is in flight");

    drop(busy);
    tokio::time::advance(Duration::from_secs(299)).await;
    assert!(
        !activity.is_idle(idle),
        "counted from the end of the last request"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(activity.is_idle(idle));
}

/// A client that connects and sends nothing, or only the start of the HTTP/2 preface, is cut
/// off after the header-read timeout. Hyper's own clock starts only once the protocol is
/// known, so without this such a connection would stay for the idle timeout (5 min), and
/// enough of them would use up the agent's file descriptors.
#[tokio::test]
async fn a_connection_that_sends_no_request_is_closed_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let timeouts = ServeTimeouts {
        header_read: Duration::from_millis(200),
        ..ServeTimeouts::default()
    };
    let bound = Listener::bind(&tcp(None)).await.unwrap();
    let address = bound.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let serving = bound
        .with_timeouts(timeouts)
        .serve(hello(), shutdown.clone());

    for sent in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(sent).await.unwrap();
        let mut buffer = [0; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "after sending {sent:?}: the connection is still open"
        );
    }

    shutdown.cancel();
    serving.await.unwrap();
}

// ---- Unix sockets (B02) --------------------------------------------------------------------

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// B02: the mode applies without user and group, the owner is set when given (numeric ids need
/// no account), and no one ever sees the socket at its path with other permissions; a stale
/// socket from the previous bind is replaced each time.
#[tokio::test]
async fn unix_socket_permissions_are_in_place_before_it_is_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    // Ownership can only be given away by root; CI runs as root.
    let owner = is_root().then_some("12345");

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(meta) = fs::symlink_metadata(&path) {
                    seen.push((meta.mode() & 0o777, meta.uid(), meta.gid()));
                }
            }
            seen
        })
    };

    for _ in 0..25 {
        let bound = Listener::bind(&unix_settings(&path, Some(0o600), owner, owner))
            .await
            .unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        if owner.is_some() {
            assert_eq!((meta.uid(), meta.gid()), (12345, 12345));
        }
        // Dropped without serving: the file stays behind, stale, for the next bind.
        drop(bound);
    }

    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert!(!seen.is_empty(), "the watcher saw the socket");
    let expected_owner = if owner.is_some() {
        (12345, 12345)
    } else {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    };
    for (mode, uid, gid) in seen {
        assert_eq!(mode, 0o600, "socket visible with mode {mode:o}");
        assert_eq!((uid, gid), expected_owner);
    }
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no staging directory left behind"
    );
}

#[tokio::test]
async fn unix_listener_serves_and_removes_its_socket_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let bound = Listener::bind(&unix_settings(&path, None, None, None))
        .await
        .unwrap();
    assert_eq!(bound.address(), format!("unix:{}", path.display()));
    let shutdown = CancellationToken::new();
    let serving = bound.serve(hello(), shutdown.clone());

    let client = reqwest::Client::builder()
        .unix_socket(path.as_path())
        .build()
        .unwrap();
    let answer = client.get("http://agent/hello").send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "hi");

    shutdown.cancel();
    serving.await.unwrap();
    assert!(!path.exists(), "socket file removed");
}

#[tokio::test]
async fn unix_socket_path_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");

    let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let error = Listener::bind(&unix_settings(&path, None, None, None))
        .await
        .unwrap_err();
    assert!(matches!(error, BindError::SocketInUse { .. }), "{error}");

    drop(live);
    let bound = Listener::bind(&unix_settings(&path, None, None, None)).await;
    assert!(bound.is_ok(), "a stale socket is replaced");

    let file = dir.path().join("data.txt");
    fs::write(&file, "keep me").unwrap();
    let error = Listener::bind(&unix_settings(&file, None, None, None))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{} exists and is not a socket; refusing to replace it",
            file.display()
        )
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), "keep me");
}

#[tokio::test]
async fn unknown_socket_user_or_group_is_a_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");

    async fn check(settings: ListenerSettings, expected: &str) {
        let error = Listener::bind(&settings).await.unwrap_err();
        assert_eq!(error.to_string(), expected);
    }

    check(
        unix_settings(&path, Some(0o660), None, Some("no-such-group-b02")),
        "unknown socket_group \"no-such-group-b02\"",
    )
    .await;
    check(
        unix_settings(&path, None, Some("no-such-user-b02"), None),
        "unknown socket_user \"no-such-user-b02\"",
    )
    .await;
    assert!(!path.exists(), "nothing created");
}

#[tokio::test]
async fn unix_socket_owner_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap();
    let group = nix::unistd::Group::from_gid(me.gid).unwrap().unwrap();

    let _bound = Listener::bind(&unix_settings(
        &path,
        None,
        Some(&me.name),
        Some(&group.name),
    ))
    .await
    .unwrap();
    let meta = fs::symlink_metadata(&path).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (me.uid.as_raw(), group.gid.as_raw())
    );
}

// ---- TLS ---------------------------------------------------------------------------------

/// A fresh self-signed certificate for `localhost`, written to `dir`; returns its PEM.
fn write_certificate(dir: &Path) -> String {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = generated.cert.pem();
    fs::write(dir.join("cert.pem"), &cert).unwrap();
    fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    fs::set_permissions(dir.join("key.pem"), fs::Permissions::from_mode(0o600)).unwrap();
    cert
}

fn trusting(cert: &str, address: SocketAddr) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(cert.as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .resolve("localhost", address)
        .build()
        .unwrap()
}

#[tokio::test]
async fn tls_listener_serves_and_reloads_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_certificate(dir.path());
    let settings = TlsSettings::new(dir.path().join("cert.pem"), dir.path().join("key.pem"));

    let bound = Listener::bind(&tcp(Some(settings))).await.unwrap();
    let address = bound.local_addr().unwrap();
    let reloader = bound.tls_reloader().unwrap();
    let shutdown = CancellationToken::new();
    let serving = bound.serve(hello(), shutdown.clone());
    let url = format!("https://localhost:{}/hello", address.port());

    let answer = trusting(&first, address).get(&url).send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "hi");

    let second = write_certificate(dir.path());
    reloader.reload().unwrap();
    let answer = trusting(&second, address).get(&url).send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "hi");
    assert!(
        trusting(&first, address).get(&url).send().await.is_err(),
        "new connections get the new certificate"
    );

    // A broken file on reload keeps the certificate in use.
    fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    assert!(reloader.reload().is_err());
    let answer = trusting(&second, address).get(&url).send().await.unwrap();
    assert_eq!(answer.status(), http::StatusCode::OK);

    shutdown.cancel();
    serving.await.unwrap();
}

#[tokio::test]
async fn tls_min_version_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let cert = write_certificate(dir.path());
    let settings = TlsSettings {
        min_version: crate::settings::TlsVersion::Tls13,
        ..TlsSettings::new(dir.path().join("cert.pem"), dir.path().join("key.pem"))
    };

    let bound = Listener::bind(&tcp(Some(settings))).await.unwrap();
    let address = bound.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let serving = bound.serve(hello(), shutdown.clone());
    let url = format!("https://localhost:{}/hello", address.port());

    let tls12_only = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert.as_bytes()).unwrap()])
        .tls_version_max(reqwest::tls::Version::TLS_1_2)
        .resolve("localhost", address)
        .build()
        .unwrap();
    assert!(tls12_only.get(&url).send().await.is_err());
    let answer = trusting(&cert, address).get(&url).send().await.unwrap();
    assert_eq!(answer.version(), http::Version::HTTP_2, "ALPN offers h2");

    shutdown.cancel();
    serving.await.unwrap();
}

/// A CA and a client certificate it signed, as PEM: (CA, client certificate and key).
fn client_ca_and_identity() -> (String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["agent-client".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca).unwrap();

    (ca.pem(), client.pem() + &client_key.serialize_pem())
}

#[tokio::test]
async fn client_certificates_are_verified_when_required() {
    async fn check(require: bool, present: bool, accepted: bool) {
        let dir = tempfile::tempdir().unwrap();
        let server_cert = write_certificate(dir.path());
        let (ca, identity) = client_ca_and_identity();
        fs::write(dir.path().join("client-ca.pem"), ca).unwrap();
        let settings = TlsSettings {
            client_ca_file: Some(dir.path().join("client-ca.pem")),
            require_client_cert: require,
            ..TlsSettings::new(dir.path().join("cert.pem"), dir.path().join("key.pem"))
        };

        let bound = Listener::bind(&tcp(Some(settings))).await.unwrap();
        let address = bound.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let serving = bound.serve(hello(), shutdown.clone());

        let mut client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(server_cert.as_bytes()).unwrap()])
            .resolve("localhost", address);
        if present {
            client = client.identity(reqwest::Identity::from_pem(identity.as_bytes()).unwrap());
        }
        let url = format!("https://localhost:{}/hello", address.port());
        let answer = client.build().unwrap().get(&url).send().await;
        assert_eq!(
            answer.is_ok(),
            accepted,
            "require {require}, present {present}"
        );

        shutdown.cancel();
        serving.await.unwrap();
    }

    check(true, true, true).await;
    check(true, false, false).await;
    check(false, false, true).await;
    check(false, true, true).await;
}

#[tokio::test]
async fn requiring_client_certificates_needs_a_ca() {
    let dir = tempfile::tempdir().unwrap();
    write_certificate(dir.path());
    let settings = TlsSettings {
        require_client_cert: true,
        ..TlsSettings::new(dir.path().join("cert.pem"), dir.path().join("key.pem"))
    };

    let error = Listener::bind(&tcp(Some(settings))).await.unwrap_err();
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert_eq!(
        cause,
        "tls_require_and_verify_client_cert needs tls_client_ca_file"
    );
}

// ---- Bad HTTP on the wire ------------------------------------------------------------------

/// Sends `request` on a fresh connection and reads until the listener hangs up.
async fn exchange(address: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // The listener may answer and close before it has read everything we send.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the listener kept the connection open");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Requests that are not HTTP, that could be read two ways (request smuggling), or whose
/// line or headers are too big get a 4xx from the listener itself and never reach the
/// routes, so nothing of them is forwarded. Vault's listener caps only the total size of
/// the headers (1 MB); ours also refuses more than 100 header fields (431), a limit no Vault
/// client comes near. (A request with both `Content-Length` and chunked `Transfer-Encoding`
/// is read as chunked, as RFC 9112 lets a server do; the proxy drops both headers and frames
/// the body itself before it goes upstream, so Vault cannot read it another way.)
#[tokio::test]
async fn malformed_and_oversized_requests_get_a_4xx_and_reach_no_route() {
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let routes = Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "reached" }
    });
    let bound = Listener::bind(&tcp(None)).await.unwrap();
    let address = bound.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let serving = bound.serve(routes, shutdown.clone());

    let many_headers: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big_header = format!("X-Big: {}\r\n", "a".repeat(500 * 1024));
    let long_path = format!("/v1/{}", "a".repeat(100 * 1024));
    let cases: Vec<(String, &str)> = vec![
        ("NOT HTTP AT ALL\r\n\r\n".into(), "400"),
        ("GET /v1/a b HTTP/1.1\r\nHost: a\r\n\r\n".into(), "400"),
        (
            "GET /v1/a HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n".into(),
            "400",
        ),
        (
            "POST /v1/a HTTP/1.1\r\nHost: a\r\n\
             Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
                .into(),
            "400",
        ),
        (
            "POST /v1/a HTTP/1.1\r\nHost: a\r\n\
             Transfer-Encoding: gzip, chunked, identity\r\n\r\n"
                .into(),
            "400",
        ),
        (
            "POST /v1/a HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n".into(),
            "400",
        ),
        (
            format!("GET /v1/a HTTP/1.1\r\nHost: a\r\n{many_headers}\r\n"),
            "431",
        ),
        (
            format!("GET /v1/a HTTP/1.1\r\nHost: a\r\n{big_header}\r\n"),
            "431",
        ),
        (
            format!("GET {long_path} HTTP/1.1\r\nHost: a\r\n\r\n"),
            "414",
        ),
    ];
    for (request, status) in &cases {
        let answer = exchange(address, request.as_bytes()).await;
        let shown: String = request.chars().take(80).collect();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{shown:?}: answered {:?}",
            answer.lines().next()
        );
    }
    assert_eq!(reached.load(Ordering::SeqCst), 0);

    // The listener still serves good requests, at the limits just under those refused.
    let under: String = (0..90).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = exchange(
        address,
        format!("GET /v1/a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{under}\r\n").as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(reached.load(Ordering::SeqCst), 1);

    shutdown.cancel();
    serving.await.unwrap();
}
