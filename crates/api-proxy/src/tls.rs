//! TLS for TCP listeners: building the server configuration from PEM files, and swapping it
//! when the files change (the binary reloads on SIGHUP).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tracing::info;

use crate::settings::{TlsSettings, TlsVersion};

/// Why a listener's TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong, without the file's content.
        reason: String,
    },

    /// The certificate file holds no certificate.
    #[error("no PEM certificate found in {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },

    /// The key file holds no private key.
    #[error("no PEM private key found in {}", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },

    /// Client certificates are required but no CA to verify them is configured.
    #[error("tls_require_and_verify_client_cert needs tls_client_ca_file")]
    NoClientCa,

    /// The lowest version is above the highest.
    #[error("tls_min_version is above tls_max_version")]
    VersionRange,

    /// The TLS stack refused the certificate, key or CAs.
    #[error("cannot use the TLS material of {}: {reason}", cert_file.display())]
    Refused {
        /// The certificate file.
        cert_file: PathBuf,
        /// The TLS stack's reason.
        reason: String,
    },
}

/// The TLS configuration of a running listener, reloadable from its files.
///
/// Cloning shares it. A reload affects connections accepted afterwards; open connections keep
/// the certificate they were set up with.
#[derive(Clone)]
pub struct TlsReloader {
    settings: Arc<TlsSettings>,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl TlsReloader {
    /// Reads the files and builds the first configuration.
    pub fn new(settings: TlsSettings) -> Result<Self, TlsError> {
        let config = server_config(&settings)?;
        Ok(Self {
            settings: Arc::new(settings),
            current: Arc::new(RwLock::new(config)),
        })
    }

    /// Re-reads the certificate, key and client CA files. On error the previous
    /// configuration stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.settings)?;
        *self.current.write() = config;
        info!(cert_file = %self.settings.cert_file.display(), "listener TLS certificate reloaded");
        Ok(())
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }
}

impl std::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReloader")
            .field("cert_file", &self.settings.cert_file)
            .finish_non_exhaustive()
    }
}

fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certificates(&settings.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key_file).map_err(|error| match error {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: settings.key_file.clone(),
        },
        other => pem_error(&settings.key_file, &other),
    })?;

    let refused = |reason: String| TlsError::Refused {
        cert_file: settings.cert_file.clone(),
        reason,
    };

    // One explicit provider: with several compiled in, rustls has no process default.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(settings.min_version, settings.max_version)?)
        .map_err(|error| refused(error.to_string()))?;

    let builder = match &settings.client_ca_file {
        Some(ca_file) => {
            let verifier = client_verifier(ca_file, settings.require_client_cert, provider)?;
            builder.with_client_cert_verifier(verifier)
        }
        None if settings.require_client_cert => return Err(TlsError::NoClientCa),
        None => builder.with_no_client_auth(),
    };

    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|error| refused(error.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn versions(
    min: TlsVersion,
    max: TlsVersion,
) -> Result<&'static [&'static SupportedProtocolVersion], TlsError> {
    static BOTH: [&SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    static TLS13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

    match (min, max) {
        (TlsVersion::Tls12, TlsVersion::Tls13) => Ok(&BOTH),
        (TlsVersion::Tls12, TlsVersion::Tls12) => Ok(&TLS12),
        (TlsVersion::Tls13, TlsVersion::Tls13) => Ok(&TLS13),
        (TlsVersion::Tls13, TlsVersion::Tls12) => Err(TlsError::VersionRange),
    }
}

fn client_verifier(
    ca_file: &Path,
    require: bool,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(ca_file)? {
        roots.add(cert).map_err(|error| TlsError::Refused {
            cert_file: ca_file.to_owned(),
            reason: error.to_string(),
        })?;
    }

    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    if !require {
        // Vault's default: ask for a certificate, accept clients without one.
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|error| TlsError::Refused {
        cert_file: ca_file.to_owned(),
        reason: error.to_string(),
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|error| pem_error(path, &error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(path, &error))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn pem_error(path: &Path, error: &pem::Error) -> TlsError {
    let reason = match error {
        pem::Error::Io(io) => io.to_string(),
        _ => "invalid PEM".to_owned(),
    };
    TlsError::Pem {
        path: path.to_owned(),
        reason,
    }
}
