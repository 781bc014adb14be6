//! The Diffie-Hellman envelope: X25519 agreement, optional HKDF, AES-256-GCM.
//!
//! The consumer publishes its X25519 public key in a small JSON file; we encrypt each value to
//! it and write an envelope the consumer can open with its private key and our public key,
//! which the envelope carries. Everything binary is standard base64.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Generate, KeyInit, Nonce, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// The largest consumer key file read: the JSON holding one key is under a hundred bytes.
const MAX_KEY_FILE_BYTES: usize = 64 * 1024;

/// Encrypts sink values to a consumer's X25519 public key (`dh_type = "curve25519"`).
///
/// One key pair per encryptor, made at construction and kept for the process lifetime, so a
/// consumer sees the same agent public key in every envelope. The consumer's key is read from
/// `dh_path` on the first successful encryption and trusted from then on; a missing or invalid
/// file is an error for that write only, so a later retry can pick the key up.
pub struct DhEncryptor {
    dh_path: PathBuf,
    derive_key: bool,
    aad: Zeroizing<Vec<u8>>,
    secret: StaticSecret,
    public: PublicKey,
    peer: OnceLock<PublicKey>,
}

/// The operating system could not supply random bytes.
#[derive(Debug, thiserror::Error)]
#[error("no random bytes from the operating system")]
pub struct RandomUnavailable;

/// The consumer's public key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DhKeyUnreadable {
    /// The file could not be read (often: the consumer has not written it yet).
    #[error("cannot read consumer public key file {}", dh_path.display())]
    Read {
        /// The configured `dh_path`.
        dh_path: PathBuf,
        /// What the filesystem said.
        #[source]
        source: io::Error,
    },

    /// The file does not hold a usable key.
    #[error("consumer public key file {}: {problem}", dh_path.display())]
    Invalid {
        /// The configured `dh_path`.
        dh_path: PathBuf,
        /// What is wrong, never the file content.
        problem: &'static str,
    },
}

/// A value could not be encrypted.
#[derive(Debug, thiserror::Error)]
pub enum EncryptFailed {
    /// The consumer's public key is not available.
    #[error(transparent)]
    PeerKey(#[from] DhKeyUnreadable),

    /// No nonce could be drawn.
    #[error("cannot draw a nonce")]
    Nonce(#[source] RandomUnavailable),

    /// AES-GCM refused the input, which only happens past its size limits.
    #[error("aes-gcm refused the value")]
    Cipher,
}

#[derive(Deserialize)]
struct PeerKeyFile {
    curve25519_public_key: String,
}

#[derive(Serialize)]
struct Envelope {
    curve25519_public_key: String,
    nonce: String,
    encrypted_payload: String,
}

impl DhEncryptor {
    /// An encryptor to the key published at `dh_path`.
    ///
    /// With `derive_key`, the AES key is HKDF-SHA256 of the shared secret (salt: the
    /// lexicographically smaller public key, info: the larger); without it, the raw shared secret.
    /// `aad` is authenticated but not encrypted; empty means none.
    pub fn curve25519(
        dh_path: impl Into<PathBuf>,
        derive_key: bool,
        aad: impl Into<Vec<u8>>,
    ) -> Result<Self, RandomUnavailable> {
        let seed = Zeroizing::new(<[u8; 32]>::try_generate().map_err(|_| RandomUnavailable)?);
        let secret = StaticSecret::from(*seed);
        let public = PublicKey::from(&secret);

        Ok(Self {
            dh_path: dh_path.into(),
            derive_key,
            aad: Zeroizing::new(aad.into()),
            secret,
            public,
            peer: OnceLock::new(),
        })
    }

    /// Where the consumer's public key is read from.
    pub fn dh_path(&self) -> &Path {
        &self.dh_path
    }

    /// Our public key, as the envelope carries it.
    pub fn public_key(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    /// Encrypts `plaintext` and returns the envelope JSON. Blocking: may read `dh_path`.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, EncryptFailed> {
        let peer = self.peer_key()?;
        let key = self.aes_key(&peer);
        let cipher = Aes256Gcm::new_from_slice(&key[..]).map_err(|_| EncryptFailed::Cipher)?;

        let nonce = Nonce::<Aes256Gcm>::try_generate()
            .map_err(|_| EncryptFailed::Nonce(RandomUnavailable))?;
        let payload = Payload {
            msg: plaintext,
            aad: &self.aad,
        };
        let sealed = cipher
            .encrypt(&nonce, payload)
            .map_err(|_| EncryptFailed::Cipher)?;

        let envelope = Envelope {
            curve25519_public_key: BASE64.encode(self.public.as_bytes()),
            nonce: BASE64.encode(nonce),
            encrypted_payload: BASE64.encode(sealed),
        };
        serde_json::to_string(&envelope).map_err(|_| EncryptFailed::Cipher)
    }

    fn peer_key(&self) -> Result<PublicKey, DhKeyUnreadable> {
        if let Some(peer) = self.peer.get() {
            return Ok(*peer);
        }

        let peer = self.read_peer_key()?;
        // Sinks write one at a time; were two ever to race here, both read the same file.
        Ok(*self.peer.get_or_init(|| peer))
    }

    /// Reads and checks the consumer's key, refusing a file over [`MAX_KEY_FILE_BYTES`].
    fn read_peer_key(&self) -> Result<PublicKey, DhKeyUnreadable> {
        let invalid = |problem| DhKeyUnreadable::Invalid {
            dh_path: self.dh_path.clone(),
            problem,
        };

        let read_failed = |source| DhKeyUnreadable::Read {
            dh_path: self.dh_path.clone(),
            source,
        };
        let mut text = Vec::new();
        File::open(&self.dh_path)
            .and_then(|file| {
                file.take(MAX_KEY_FILE_BYTES as u64 + 1)
                    .read_to_end(&mut text)
            })
            .map_err(read_failed)?;
        if text.len() > MAX_KEY_FILE_BYTES {
            return Err(invalid("larger than 64 KiB, which is no key file"));
        }
        let file: PeerKeyFile = serde_json::from_slice(&text)
            .map_err(|_| invalid("not a JSON object with a curve25519_public_key string"))?;

        let bytes = BASE64
            .decode(file.curve25519_public_key.trim())
            .map_err(|_| invalid("curve25519_public_key is not standard base64"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| invalid("curve25519_public_key is not 32 bytes"))?;
        let peer = PublicKey::from(bytes);

        // A low-order point makes the shared secret predictable whatever our key is.
        if !self.secret.diffie_hellman(&peer).was_contributory() {
            return Err(invalid("curve25519_public_key is a low-order point"));
        }
        Ok(peer)
    }

    fn aes_key(&self, peer: &PublicKey) -> Zeroizing<[u8; 32]> {
        let shared = self.secret.diffie_hellman(peer);
        if !self.derive_key {
            return Zeroizing::new(shared.to_bytes());
        }
        derive_key(shared.as_bytes(), self.public.as_bytes(), peer.as_bytes())
    }
}

impl std::fmt::Debug for DhEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhEncryptor")
            .field("dh_path", &self.dh_path)
            .field("derive_key", &self.derive_key)
            .finish_non_exhaustive()
    }
}

/// HKDF-SHA256 with the two public keys in a fixed order, so both sides derive the same key
/// without agreeing on roles.
fn derive_key(shared: &[u8; 32], ours: &[u8; 32], theirs: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let (salt, info) = if ours <= theirs {
        (ours, theirs)
    } else {
        (theirs, ours)
    };

    let mut key = Zeroizing::new([0; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(salt), shared).expand(info, &mut key[..]);
    key
}

/// The consumer's side of the format, written from the description rather than reusing
/// `DhEncryptor`, so a mistake on one side does not cancel out on the other.
#[cfg(test)]
pub(crate) mod consumer {
    use serde_json::Value;

    use super::*;

    pub(crate) fn open_envelope(
        envelope: &str,
        consumer: &StaticSecret,
        derive: bool,
        aad: &[u8],
    ) -> Vec<u8> {
        let envelope: Value = serde_json::from_str(envelope).unwrap();
        let field = |name: &str| BASE64.decode(envelope[name].as_str().unwrap()).unwrap();

        let agent: [u8; 32] = field("curve25519_public_key").try_into().unwrap();
        let consumer_public = PublicKey::from(consumer).to_bytes();
        let shared = consumer.diffie_hellman(&PublicKey::from(agent)).to_bytes();

        let key = if derive {
            let (salt, info) = if agent < consumer_public {
                (agent, consumer_public)
            } else {
                (consumer_public, agent)
            };
            let mut key = [0; 32];
            Hkdf::<Sha256>::new(Some(&salt), &shared)
                .expand(&info, &mut key)
                .unwrap();
            key
        } else {
            shared
        };

        let nonce = field("nonce");
        assert_eq!(nonce.len(), 12);
        let nonce = Nonce::<Aes256Gcm>::try_from(&nonce[..]).unwrap();
        let payload = Payload {
            msg: &field("encrypted_payload"),
            aad,
        };
        Aes256Gcm::new_from_slice(&key)
            .unwrap()
            .decrypt(&nonce, payload)
            .unwrap()
    }

    /// Writes the consumer's public key where the agent looks for it.
    pub(crate) fn publish(dir: &Path, consumer: &StaticSecret) -> PathBuf {
        let path = dir.join("dh.json");
        let key = BASE64.encode(PublicKey::from(consumer).as_bytes());
        std::fs::write(&path, format!(r#"{{"curve25519_public_key": "{key}"}}"#)).unwrap();
        path
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use serde_json::Value;

    use super::consumer::{open_envelope as open, publish};
    use super::*;

    #[test]
    fn envelopes_open_with_the_consumer_key() {
        fn check(derive: bool, aad: &[u8]) {
            let dir = tempfile::tempdir().unwrap();
            let consumer = StaticSecret::random();
            let dh = DhEncryptor::curve25519(publish(dir.path(), &consumer), derive, aad).unwrap();

            let first = dh.encrypt(b"hvs.token").unwrap();
            let second = dh.encrypt(b"hvs.token").unwrap();

            assert_eq!(open(&first, &consumer, derive, aad), b"hvs.token");
            assert_eq!(open(&second, &consumer, derive, aad), b"hvs.token");
            assert_ne!(first, second, "a fresh nonce for every envelope");
            assert!(!first.contains("hvs.token"));
        }

        check(false, b"");
        check(true, b"");
        check(true, b"my-aad");
        check(false, b"my-aad");
    }

    #[test]
    fn envelope_has_exactly_the_three_fields() {
        let dir = tempfile::tempdir().unwrap();
        let consumer = StaticSecret::random();
        let dh = DhEncryptor::curve25519(publish(dir.path(), &consumer), true, "").unwrap();

        let envelope: Value = serde_json::from_str(&dh.encrypt(b"t").unwrap()).unwrap();
        let mut keys: Vec<_> = envelope.as_object().unwrap().keys().cloned().collect();
        keys.sort();

        assert_eq!(
            keys,
            ["curve25519_public_key", "encrypted_payload", "nonce"]
        );
        assert_eq!(
            envelope["curve25519_public_key"],
            BASE64.encode(dh.public_key())
        );
        // 1 byte of ciphertext plus the 16-byte tag.
        assert_eq!(
            BASE64
                .decode(envelope["encrypted_payload"].as_str().unwrap())
                .unwrap()
                .len(),
            17
        );
    }

    #[test]
    fn the_derived_key_does_not_depend_on_which_side_computes_it() {
        let (a, b) = ([1; 32], [2; 32]);
        assert_eq!(*derive_key(&[7; 32], &a, &b), *derive_key(&[7; 32], &b, &a));
        assert_ne!(*derive_key(&[7; 32], &a, &b), [7; 32]);
    }

    #[test]
    fn aad_mismatch_fails_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let consumer = StaticSecret::random();
        let dh = DhEncryptor::curve25519(publish(dir.path(), &consumer), true, "right").unwrap();
        let envelope: Value = serde_json::from_str(&dh.encrypt(b"t").unwrap()).unwrap();

        let key = derive_key(
            consumer
                .diffie_hellman(&PublicKey::from(dh.public_key()))
                .as_bytes(),
            &dh.public_key(),
            PublicKey::from(&consumer).as_bytes(),
        );
        let field = |name: &str| BASE64.decode(envelope[name].as_str().unwrap()).unwrap();
        let nonce = Nonce::<Aes256Gcm>::try_from(&field("nonce")[..]).unwrap();
        let payload = Payload {
            msg: &field("encrypted_payload"),
            aad: b"wrong",
        };

        assert!(
            Aes256Gcm::new_from_slice(&key[..])
                .unwrap()
                .decrypt(&nonce, payload)
                .is_err()
        );
    }

    /// A key file is under a hundred bytes; an endless one (`/dev/zero` named by mistake) is
    /// refused after a bound's worth instead of filling memory.
    #[test]
    fn an_endless_key_file_is_refused_unread() {
        let dh = DhEncryptor::curve25519(Path::new("/dev/zero"), false, "").unwrap();
        let message = dh.encrypt(b"hvs.token").unwrap_err().to_string();
        assert_eq!(
            message,
            "consumer public key file /dev/zero: larger than 64 KiB, which is no key file"
        );
    }

    #[test]
    fn unusable_key_files_are_errors_naming_dh_path() {
        fn check(content: Option<&str>, expected: &str) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("consumer-key.json");
            if let Some(content) = content {
                fs::write(&path, content).unwrap();
            }
            let dh = DhEncryptor::curve25519(&path, true, "").unwrap();

            let message = dh.encrypt(b"hvs.token").unwrap_err().to_string();

            assert!(message.contains(&*path.to_string_lossy()), "{message}");
            assert!(message.contains(expected), "{message}");
        }

        let short = BASE64.encode([9; 31]);
        let zero = BASE64.encode([0; 32]);
        check(None, "cannot read");
        let padded = format!("{{{}}}", " ".repeat(MAX_KEY_FILE_BYTES));
        check(Some(&padded), "larger than 64 KiB");
        check(Some(""), "not a JSON object");
        check(Some("junk"), "not a JSON object");
        check(Some(r#"{"curve25519_public_key": 5}"#), "not a JSON object");
        check(Some(r#"{"other": "x"}"#), "not a JSON object");
        check(
            Some(r#"{"curve25519_public_key": "!!"}"#),
            "not standard base64",
        );
        check(
            Some(&format!(r#"{{"curve25519_public_key": "{short}"}}"#)),
            "not 32 bytes",
        );
        check(
            Some(&format!(r#"{{"curve25519_public_key": "{zero}"}}"#)),
            "low-order",
        );
    }

    #[test]
    fn a_key_file_that_appears_later_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let consumer = StaticSecret::random();
        let dh = DhEncryptor::curve25519(dir.path().join("dh.json"), false, "").unwrap();

        assert!(matches!(dh.encrypt(b"t"), Err(EncryptFailed::PeerKey(_))));

        publish(dir.path(), &consumer);
        assert_eq!(
            open(&dh.encrypt(b"t").unwrap(), &consumer, false, b""),
            b"t"
        );
    }

    #[test]
    fn the_first_key_read_is_trusted_for_the_process_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let first = StaticSecret::random();
        let dh = DhEncryptor::curve25519(publish(dir.path(), &first), true, "").unwrap();
        let agent_key = dh.public_key();
        dh.encrypt(b"t").unwrap();

        publish(dir.path(), &StaticSecret::random());
        let envelope = dh.encrypt(b"t").unwrap();

        assert_eq!(open(&envelope, &first, true, b""), b"t");
        assert_eq!(dh.public_key(), agent_key, "one key pair per sink");
    }

    #[test]
    fn debug_shows_neither_key_nor_aad() {
        let dh = DhEncryptor::curve25519("/run/dh.json", true, "secret-aad").unwrap();
        let rendered = format!("{dh:?}");

        assert!(rendered.contains("/run/dh.json"), "{rendered}");
        assert!(!rendered.contains("secret-aad"), "{rendered}");
    }
}
