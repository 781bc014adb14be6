//! Turns [`ClientSettings`] into the two HTTP stacks of a client: reqwest for typed calls,
//! and the [`Relay`] for forwarding. Both are built from one TLS configuration, so they
//! trust the same servers and present the same certificate.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper_util::client::proxy::matcher::Matcher;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Url, redirect};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tracing::debug;
use zeroize::Zeroizing;

use crate::error::BuildError;
use crate::relay::Relay;
use crate::settings::ClientSettings;

/// Longest wait for a TCP connection and TLS handshake, within the request timeout.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Host part of request URLs sent over a Unix socket, where the URL names no server.
const UNIX_SOCKET_BASE: &str = "http://localhost";

/// Where requests go: the URL prefix every request path is appended to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// Scheme, authority and path prefix, without a trailing slash.
    pub(crate) base: String,
    /// The socket to connect to instead of resolving the URL's host.
    pub(crate) unix_socket: Option<PathBuf>,
    /// The TLS name put into the URL in place of the real host, and that host; the
    /// resolver of the client once it is built.
    pub(crate) pinned: Option<PinnedName>,
}

/// A TLS server name that differs from the address's host.
///
/// The name goes into the request URL, so that the TLS layer sends it as SNI and verifies
/// the certificate against it, and resolving it yields the real host's addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PinnedName {
    pub(crate) name: String,
    pub(crate) host: String,
}

/// What a client sends through.
pub(crate) struct Transport {
    /// Typed calls, and forwarding when a proxy from the environment applies.
    pub(crate) http: reqwest::Client,
    /// Forwarding, straight to Vault; `None` when a proxy from the environment applies,
    /// which reqwest knows how to go through.
    pub(crate) relay: Option<Relay>,
    /// Scheme, authority and path prefix of every request, without a trailing slash.
    pub(crate) base: String,
}

/// Builds the HTTP stacks for `settings`.
pub(crate) fn build(settings: &ClientSettings) -> Result<Transport, BuildError> {
    let target = parse_address(&settings.address, settings.tls_server_name.as_deref())?;
    let tls = tls_config(settings)?;

    let proxied = target.unix_socket.is_none() && proxy_applies(&target.base);
    let relay = if proxied {
        debug!("a proxy from the environment applies to the Vault address; forwarding through it");
        None
    } else {
        Some(Relay::new(&target, &tls, settings)?)
    };
    let http = reqwest_client(settings, &target, tls)?;

    Ok(Transport {
        http,
        relay,
        base: target.base,
    })
}

/// The reqwest client of typed calls.
fn reqwest_client(
    settings: &ClientSettings,
    target: &Target,
    tls: Arc<ClientConfig>,
) -> Result<reqwest::Client, BuildError> {
    // Vault's own client follows one redirect (a standby pointing at the active node).
    let redirects = redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > 1 {
            attempt.stop()
        } else {
            attempt.follow()
        }
    });

    // Bodies pass through as Vault sent them, compressed or not.
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(settings.timeout))
        .redirect(redirects)
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .no_zstd()
        .tls_backend_preconfigured(Arc::unwrap_or_clone(tls));

    if let Some(agent) = user_agent(settings)? {
        builder = builder.user_agent(agent);
    }
    builder = builder.pool_max_idle_per_host(max_idle_per_host(settings));
    if let Some(socket) = &target.unix_socket {
        builder = builder.unix_socket(socket.as_path());
    }
    if let Some(pinned) = &target.pinned {
        builder = builder.dns_resolver(Arc::new(pinned.clone()));
    }

    builder.build().map_err(|error| BuildError::Http {
        source: error.into(),
    })
}

/// How many idle connections a pool keeps to Vault: one per CPU and one more, as the Go
/// transport of Vault's own client; none when keep-alives or idle connections are off. A
/// burst of requests opens as many connections as it needs; once it is over, all but these
/// close at once instead of holding a descriptor each until their idle timeout.
pub(crate) fn max_idle_per_host(settings: &ClientSettings) -> usize {
    if settings.disable_keep_alives || settings.disable_idle_connections {
        return 0;
    }
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) + 1
}

/// The `User-Agent` of requests that carry none, unless it is configured empty.
pub(crate) fn user_agent(settings: &ClientSettings) -> Result<Option<HeaderValue>, BuildError> {
    if settings.user_agent.is_empty() {
        return Ok(None);
    }
    HeaderValue::from_str(&settings.user_agent)
        .map(Some)
        .map_err(|_| BuildError::Header {
            setting: "user_agent",
        })
}

/// Whether `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY` (less `NO_PROXY`) sends requests for
/// `base` through a proxy, by the rule reqwest applies.
fn proxy_applies(base: &str) -> bool {
    let Ok(uri) = base.parse::<http::Uri>() else {
        return false;
    };
    Matcher::from_system().intercept(&uri).is_some()
}

/// The TLS configuration both stacks use: the configured CAs (which replace the system's
/// roots, as with Vault), or the system's verifier; the client certificate; or no
/// verification at all with `tls_skip_verify`.
pub(crate) fn tls_config(settings: &ClientSettings) -> Result<Arc<ClientConfig>, BuildError> {
    // The process-wide provider when the binary installed one, aws-lc-rs otherwise.
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let http_error = |error: rustls::Error| BuildError::Http {
        source: error.into(),
    };

    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(http_error)?;
    let builder = if settings.tls_skip_verify {
        let verifier = AcceptAnyCertificate {
            schemes: provider
                .signature_verification_algorithms
                .supported_schemes(),
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    } else if let Some(roots) = configured_roots(settings)? {
        builder.with_root_certificates(roots)
    } else {
        let verifier = rustls_platform_verifier::Verifier::new(provider).map_err(http_error)?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    };

    let mut config = match (&settings.client_cert, &settings.client_key) {
        (Some(cert), Some(key)) => {
            let (chain, private_key) = load_identity(cert, key)?;
            builder
                .with_client_auth_cert(chain, private_key)
                .map_err(|error| BuildError::Identity {
                    cert: cert.clone(),
                    key: key.clone(),
                    source: error.into(),
                })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(BuildError::HalfIdentity),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The CAs of `ca_cert` (which wins) or `ca_path`, when one is set.
fn configured_roots(settings: &ClientSettings) -> Result<Option<RootCertStore>, BuildError> {
    let files = if let Some(file) = &settings.ca_cert {
        vec![(file.clone(), load_ca_file(file)?)]
    } else if let Some(dir) = &settings.ca_path {
        load_ca_dir(dir)?
    } else {
        return Ok(None);
    };

    let mut roots = RootCertStore::empty();
    for (path, certs) in files {
        for cert in certs {
            roots.add(cert).map_err(|error| BuildError::Certificate {
                path: path.clone(),
                source: error.into(),
            })?;
        }
    }
    Ok(Some(roots))
}

/// What `tls_skip_verify` asks for: any certificate, any signature.
#[derive(Debug)]
struct AcceptAnyCertificate {
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// Splits an address into the URL prefix of requests and, for `unix://`, the socket path.
pub(crate) fn parse_address(
    address: &str,
    tls_server_name: Option<&str>,
) -> Result<Target, BuildError> {
    let invalid = |reason: &str| BuildError::Address {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };

    if let Some(path) = address.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(invalid("no socket path after unix://"));
        }
        return Ok(Target {
            base: UNIX_SOCKET_BASE.to_owned(),
            unix_socket: Some(PathBuf::from(path)),
            pinned: None,
        });
    }

    if !address.contains("://") {
        return Err(invalid(
            "no scheme; start it with http://, https:// or unix://",
        ));
    }
    let url = Url::parse(address).map_err(|error| invalid(&error.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("the scheme must be http, https or unix"));
    }
    let Some(host) = url.host_str() else {
        return Err(invalid("no host"));
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a query or fragment cannot prefix request paths"));
    }

    let base = url.as_str().trim_end_matches('/').to_owned();
    let name = tls_server_name.filter(|name| url.scheme() == "https" && *name != host);
    let Some(name) = name else {
        return Ok(Target {
            base,
            unix_socket: None,
            pinned: None,
        });
    };

    pin_server_name(address, &url, name)
}

/// Rewrites the address to carry the TLS server name instead of its host.
fn pin_server_name(address: &str, url: &Url, name: &str) -> Result<Target, BuildError> {
    let invalid = |reason: &str| BuildError::Address {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };

    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(invalid(
            "tls_server_name must be a DNS name, not an IP address",
        ));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let path = url.path().trim_end_matches('/');
    let pinned = Url::parse(&format!("https://{name}:{port}{path}"))
        .map_err(|_| invalid("tls_server_name is not a valid host name"))?;
    let Some(pinned_host) = pinned.host_str() else {
        return Err(invalid("tls_server_name is not a valid host name"));
    };

    // The URL keeps IPv6 literals in brackets; the resolver wants the bare address.
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');

    Ok(Target {
        base: format!("https://{pinned_host}:{port}{path}"),
        unix_socket: None,
        pinned: Some(PinnedName {
            name: pinned_host.to_owned(),
            host: host.to_owned(),
        }),
    })
}

/// Resolves the pinned TLS name to the addresses of the configured host.
impl Resolve for PinnedName {
    fn resolve(&self, name: Name) -> Resolving {
        let host = if name.as_str().eq_ignore_ascii_case(&self.name) {
            self.host.clone()
        } else {
            name.as_str().to_owned()
        };

        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Every certificate of a PEM file; at least one.
pub(crate) fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let pem = read(path)?;

    let mut certs = Vec::new();
    for der in CertificateDer::pem_slice_iter(&pem) {
        certs.push(der.map_err(|error| pem_error(path, &error))?);
    }

    if certs.is_empty() {
        return Err(BuildError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Every certificate of every file under a directory, which must all be PEM files; with
/// the file each came from.
pub(crate) fn load_ca_dir(
    dir: &Path,
) -> Result<Vec<(PathBuf, Vec<CertificateDer<'static>>)>, BuildError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    // A stable order keeps error messages reproducible.
    files.sort();

    let mut certs = Vec::new();
    for file in files {
        let found = load_ca_file(&file)?;
        certs.push((file, found));
    }

    if certs.is_empty() {
        return Err(BuildError::NoCertificate {
            path: dir.to_owned(),
        });
    }
    Ok(certs)
}

/// The client certificate chain and its key, checked one file at a time so that an error
/// names the file at fault.
pub(crate) fn load_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), BuildError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;

    let mut chain = Vec::new();
    for der in CertificateDer::pem_slice_iter(&cert_pem) {
        chain.push(der.map_err(|error| pem_error(cert, &error))?);
    }
    if chain.is_empty() {
        return Err(BuildError::NoCertificate {
            path: cert.to_owned(),
        });
    }

    match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(private_key) => Ok((chain, private_key)),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(BuildError::NoPrivateKey {
            path: key.to_owned(),
        }),
        Err(error) => Err(pem_error(key, &error)),
    }
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), BuildError> {
    let read_error = |source| BuildError::Read {
        path: dir.to_owned(),
        source,
    };

    for entry in fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        // Follows symlinks, as CA directories are often links into a package's files.
        let meta = fs::metadata(&path).map_err(|source| BuildError::Read {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, BuildError> {
    fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| BuildError::Read {
            path: path.to_owned(),
            source,
        })
}

fn pem_error(path: &Path, error: &rustls_pki_types::pem::Error) -> BuildError {
    BuildError::Pem {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        fn check(address: &str, server_name: Option<&str>, base: &str, socket: Option<&str>) {
            let target = parse_address(address, server_name).unwrap();
            assert_eq!(target.base, base, "{address}");
            assert_eq!(target.unix_socket, socket.map(PathBuf::from), "{address}");
        }

        check("http://127.0.0.1:8200", None, "http://127.0.0.1:8200", None);
        check(
            "http://127.0.0.1:8200/",
            None,
            "http://127.0.0.1:8200",
            None,
        );
        check(
            "https://vault.example.com",
            None,
            "https://vault.example.com",
            None,
        );
        check(
            "https://Vault.Example.com:8200/",
            None,
            "https://vault.example.com:8200",
            None,
        );
        check(
            "https://lb.example/vault/",
            None,
            "https://lb.example/vault",
            None,
        );
        check("http://[::1]:8200", None, "http://[::1]:8200", None);
        check(
            "unix:///run/vault.sock",
            None,
            "http://localhost",
            Some("/run/vault.sock"),
        );
        check(
            "unix://relative.sock",
            None,
            "http://localhost",
            Some("relative.sock"),
        );

        // The TLS name only matters for https, and only when it differs from the host.
        check(
            "http://10.0.0.5:8200",
            Some("vault.internal"),
            "http://10.0.0.5:8200",
            None,
        );
        check(
            "https://vault.internal:8200",
            Some("vault.internal"),
            "https://vault.internal:8200",
            None,
        );
        check(
            "https://10.0.0.5:8200",
            Some("vault.internal"),
            "https://vault.internal:8200",
            None,
        );
        check(
            "https://10.0.0.5/pfx/",
            Some("vault.internal"),
            "https://vault.internal:443/pfx",
            None,
        );
    }

    #[test]
    fn pinned_names_resolve_to_the_configured_host() {
        fn check(address: &str, name: &str, host: &str) {
            let target = parse_address(address, Some(name)).unwrap();
            let pinned = target.pinned.unwrap();
            assert_eq!(
                (pinned.name.as_str(), pinned.host.as_str()),
                (name, host),
                "{address}"
            );
        }

        check("https://10.0.0.5:8200", "vault.internal", "10.0.0.5");
        check("https://[::1]:8200", "localhost", "::1");
        check("https://lb.example:8200", "vault.internal", "lb.example");
    }

    #[test]
    fn bad_addresses() {
        fn check(address: &str, server_name: Option<&str>, reason: &str) {
            let error = parse_address(address, server_name).unwrap_err().to_string();
            assert!(error.contains(reason), "{address}: {error}");
            assert!(error.contains(address), "{address}: {error}");
        }

        check("127.0.0.1:8200", None, "scheme");
        check("ftp://vault:21", None, "scheme");
        check("unix://", None, "no socket path");
        check("vault.example.com", None, "no scheme");
        check("vault://x:8200", None, "scheme must be");
        check("http://", None, "empty host");
        check("http://vault:8200/?x=1", None, "query");
        check("https://vault:8200", Some("10.0.0.1"), "DNS name");
        check("https://vault:8200", Some("bad name/x"), "tls_server_name");
    }

    #[test]
    fn pem_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        fs::write(&garbage, "not a certificate").unwrap();
        let broken = dir.path().join("broken.pem");
        fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        let missing = dir.path().join("missing.pem");

        fn check(error: BuildError, path: &Path, words: &str) {
            let message = error.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(words), "{message}");
        }

        check(
            load_ca_file(&garbage).unwrap_err(),
            &garbage,
            "no PEM certificate",
        );
        check(load_ca_file(&broken).unwrap_err(), &broken, "invalid PEM");
        check(load_ca_file(&missing).unwrap_err(), &missing, "cannot read");
        check(load_ca_dir(dir.path()).unwrap_err(), &broken, "invalid PEM");
        check(
            load_identity(&garbage, &garbage).unwrap_err(),
            &garbage,
            "no PEM certificate",
        );
        check(
            load_identity(&missing, &garbage).unwrap_err(),
            &missing,
            "cannot read",
        );
    }

    fn testdata(file: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(file)
    }

    #[test]
    fn good_pem_files_load() {
        assert_eq!(load_ca_file(&testdata("ca.pem")).unwrap().len(), 1);
        load_identity(&testdata("client-cert.pem"), &testdata("client-key.pem")).unwrap();

        let dir = tempfile::tempdir().unwrap();
        fs::copy(testdata("ca.pem"), dir.path().join("ca.pem")).unwrap();
        fs::create_dir(dir.path().join("more")).unwrap();
        fs::copy(
            testdata("client-cert.pem"),
            dir.path().join("more/client.pem"),
        )
        .unwrap();
        assert_eq!(load_ca_dir(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn misplaced_pem_files_are_named() {
        fn check(error: BuildError, file: &str, words: &str) {
            let message = error.to_string();
            assert!(message.contains(file), "{message}");
            assert!(message.contains(words), "{message}");
        }

        let cert = testdata("client-cert.pem");
        let key = testdata("client-key.pem");

        check(
            load_identity(&cert, &cert).unwrap_err(),
            "client-cert.pem",
            "no PEM private key",
        );
        check(
            load_identity(&key, &key).unwrap_err(),
            "client-key.pem",
            "no PEM certificate",
        );
        check(
            load_ca_file(&key).unwrap_err(),
            "client-key.pem",
            "no PEM certificate",
        );
        // Like Vault, a CA directory holding anything but certificates is an error.
        let mixed = tempfile::tempdir().unwrap();
        fs::copy(testdata("ca.pem"), mixed.path().join("ca.pem")).unwrap();
        fs::copy(&key, mixed.path().join("client-key.pem")).unwrap();
        check(
            load_ca_dir(mixed.path()).unwrap_err(),
            "client-key.pem",
            "no PEM certificate",
        );

        let empty = tempfile::tempdir().unwrap();
        let error = load_ca_dir(empty.path()).unwrap_err();
        assert!(matches!(error, BuildError::NoCertificate { .. }), "{error}");
    }

    #[test]
    fn a_client_with_every_tls_file_builds() {
        let settings = ClientSettings {
            address: "https://127.0.0.1:8200".to_owned(),
            ca_cert: Some(testdata("ca.pem")),
            client_cert: Some(testdata("client-cert.pem")),
            client_key: Some(testdata("client-key.pem")),
            tls_server_name: Some("vault.internal".to_owned()),
            ..ClientSettings::default()
        };
        let transport = build(&settings).unwrap();
        assert_eq!(transport.base, "https://vault.internal:8200");
        assert!(transport.relay.is_some());
    }

    #[test]
    fn a_lone_cert_or_key_is_refused() {
        fn check(cert: Option<&str>, key: Option<&str>) {
            let settings = ClientSettings {
                address: "http://127.0.0.1:8200".to_owned(),
                client_cert: cert.map(PathBuf::from),
                client_key: key.map(PathBuf::from),
                ..ClientSettings::default()
            };
            let Err(error) = build(&settings) else {
                panic!("a client was built with half an identity");
            };
            assert!(matches!(error, BuildError::HalfIdentity), "{error}");
        }

        check(Some("/etc/cert.pem"), None);
        check(None, Some("/etc/key.pem"));
    }

    /// A server on a real socket: each connection's first request waits until `together`
    /// connections are open, then every request is answered with `{}`. Returns its address,
    /// how many connections are open now, and how many were ever accepted.
    async fn counting_server(
        together: usize,
    ) -> (
        String,
        tokio::sync::watch::Receiver<usize>,
        Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let (open, watch) = tokio::sync::watch::channel(0usize);
        let open = Arc::new(open);
        let accepted = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(tokio::sync::Barrier::new(together));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let (open, barrier) = (open.clone(), barrier.clone());
                open.send_modify(|n| *n += 1);
                tokio::spawn(async move {
                    let mut first = true;
                    let mut pending = Vec::new();
                    let mut buf = [0u8; 4096];
                    while let Ok(read @ 1..) = stream.read(&mut buf).await {
                        pending.extend_from_slice(&buf[..read]);
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            pending.drain(..end + 4);
                            if std::mem::take(&mut first) {
                                barrier.wait().await;
                            }
                            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                            if stream.write_all(answer.as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    }
                    open.send_modify(|n| *n -= 1);
                });
            }
        });
        (address, watch, accepted)
    }

    /// Sends `burst` requests at once, through `forward` or as typed calls do.
    async fn burst(client: &crate::Client, address: &str, burst: usize, forward: bool) {
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..burst {
            let client = client.clone();
            let url = format!("{address}/v1/sys/health");
            requests.spawn(async move {
                if forward {
                    let request = http::Request::get("/v1/sys/health")
                        .body(bytes::Bytes::new())
                        .unwrap();
                    let answer = client.forward(request).await.unwrap();
                    answer.into_body().to_bytes().await.unwrap()
                } else {
                    let answer = client.http.get(url).send().await.unwrap();
                    answer.bytes().await.unwrap()
                }
            });
        }
        let answers = requests.join_all().await;
        assert!(answers.iter().all(|body| body.as_ref() == b"{}"));
    }

    #[tokio::test]
    async fn after_a_burst_typed_calls_keep_only_a_few_idle_connections() {
        async fn check(disable_idle_connections: bool, kept: usize) {
            let size = 24;
            let (address, mut open, _) = counting_server(size).await;
            let settings = ClientSettings {
                address: address.clone(),
                disable_idle_connections,
                ..ClientSettings::default()
            };
            burst(
                &crate::Client::new(&settings).unwrap(),
                &address,
                size,
                false,
            )
            .await;

            let wait = open.wait_for(|n| *n <= kept);
            let settled = tokio::time::timeout(Duration::from_secs(10), wait)
                .await
                .is_ok();
            let open_now = *open.borrow();
            assert!(
                settled,
                "{open_now} connections still open, {kept} expected"
            );
        }

        check(false, max_idle_per_host(&ClientSettings::default())).await;
        check(true, 0).await;
    }

    /// Forwarding keeps the connections of a burst for the next one (opening and closing one
    /// per request is what a small idle pool does under load), and closes them all once idle.
    #[tokio::test(start_paused = true)]
    async fn forwarding_reuses_a_burst_of_connections_then_closes_them_when_idle() {
        use std::sync::atomic::Ordering;

        async fn check(disable_idle_connections: bool, reused: bool) {
            let size = 24;
            let (address, mut open, accepted) = counting_server(size).await;
            let settings = ClientSettings {
                address: address.clone(),
                disable_idle_connections,
                ..ClientSettings::default()
            };
            let client = crate::Client::new(&settings).unwrap();

            burst(&client, &address, size, true).await;
            burst(&client, &address, size, true).await;
            let opened = accepted.load(Ordering::SeqCst);
            assert_eq!(
                opened == size,
                reused,
                "{opened} connections for two bursts"
            );

            // Paused time moves on as soon as nothing is left to do but wait.
            let wait = open.wait_for(|n| *n == 0);
            let closed = tokio::time::timeout(Duration::from_secs(3600), wait)
                .await
                .is_ok();
            assert!(closed, "{} connections never closed", *open.borrow());
        }

        check(false, true).await;
        check(true, false).await;
    }
}
