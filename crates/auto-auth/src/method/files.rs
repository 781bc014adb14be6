//! Reading credential files, and deleting them after reading.

use std::io;
use std::path::Path;

use tokio::io::AsyncReadExt;
use tracing::{debug, warn};
use vault_client::SecretValue;
use zeroize::Zeroizing;

use crate::error::LoginFailed;

/// The largest credential file read. Role and secret ids are tens of bytes, tokens and JWTs a
/// few kilobytes; a bigger file is a mistake (a wrong path, `/dev/zero`), and reading it
/// whole could fill the agent's memory.
pub(crate) const MAX_CREDENTIAL_BYTES: usize = 1024 * 1024;

/// Reads a credential, without the whitespace around it; an empty file, or one over
/// [`MAX_CREDENTIAL_BYTES`], is an error.
pub(crate) async fn read_credential(
    path: &Path,
    what: &'static str,
) -> Result<SecretValue, LoginFailed> {
    let read_failed = |source| LoginFailed::ReadFile {
        what,
        path: path.to_owned(),
        source,
    };
    let content = read_bounded(path).await.map_err(read_failed)?;

    let value = content.trim();
    if value.is_empty() {
        return Err(LoginFailed::EmptyFile {
            what,
            path: path.to_owned(),
        });
    }
    Ok(SecretValue::new(value))
}

/// The file's text, refused past [`MAX_CREDENTIAL_BYTES`]; sized up front so that the secret
/// is not left behind in buffers outgrown while reading.
async fn read_bounded(path: &Path) -> io::Result<Zeroizing<String>> {
    let file = tokio::fs::File::open(path).await?;
    let size = file.metadata().await?.len();
    let capacity =
        usize::try_from(size).map_or(MAX_CREDENTIAL_BYTES, |size| size.min(MAX_CREDENTIAL_BYTES));

    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity + 1));
    let limit = MAX_CREDENTIAL_BYTES as u64 + 1;
    file.take(limit).read_to_end(&mut bytes).await?;
    if bytes.len() > MAX_CREDENTIAL_BYTES {
        let message = "it holds more than 1 MiB, which is no credential";
        return Err(io::Error::new(io::ErrorKind::InvalidData, message));
    }

    let text = std::str::from_utf8(&bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "it is not UTF-8 text"))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// True when reading failed because the file is not there (anymore).
pub(crate) fn is_missing(error: &LoginFailed) -> bool {
    matches!(error, LoginFailed::ReadFile { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

/// Deletes a credential file after reading it.
///
/// A failure is logged once as a warning and then only at debug level until a removal
/// succeeds: on a read-only mount every attempt fails the same way, and one line says all
/// there is to say.
#[derive(Debug)]
pub(crate) struct Remover {
    what: &'static str,
    reported: bool,
}

impl Remover {
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            what,
            reported: false,
        }
    }

    pub(crate) async fn remove(&mut self, path: &Path) {
        match tokio::fs::remove_file(path).await {
            Ok(()) => {
                self.reported = false;
                debug!(credential = self.what, path = %path.display(), "removed the credential file after reading it");
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => self.failed(path, &error),
        }
    }

    /// Reports a removal that could not even be attempted.
    pub(crate) fn failed(&mut self, path: &Path, error: &io::Error) {
        if std::mem::replace(&mut self.reported, true) {
            debug!(credential = self.what, path = %path.display(), %error, "still cannot remove the credential file");
            return;
        }
        warn!(
            credential = self.what,
            path = %path.display(),
            %error,
            "cannot remove the credential file after reading it; carrying on with the value \
             read, and not reporting this again"
        );
    }
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;
    use crate::test_log::Captured;

    /// A credential is a few hundred bytes; a far bigger file, or an endless one such as
    /// `/dev/zero` named by mistake, is refused after a bound's worth instead of filling
    /// memory and then going to Vault whole.
    #[tokio::test]
    async fn an_oversized_credential_file_is_refused_unread() {
        let dir = TempDir::new().unwrap();
        let fits = dir.path().join("fits");
        std::fs::write(&fits, vec![b'a'; MAX_CREDENTIAL_BYTES]).unwrap();
        let over = dir.path().join("over");
        std::fs::write(&over, vec![b'a'; MAX_CREDENTIAL_BYTES + 1]).unwrap();

        for path in [over.as_path(), Path::new("/dev/zero")] {
            let error = read_credential(path, "role_id").await.unwrap_err();
            let expected = format!(
                "cannot read the role_id file {}: it holds more than 1 MiB, which is no credential",
                path.display()
            );
            assert_eq!(crate::error::Chain(&error).to_string(), expected);
        }
        let read = read_credential(&fits, "role_id").await.unwrap();
        assert_eq!(read.expose().len(), MAX_CREDENTIAL_BYTES);
    }

    #[tokio::test]
    async fn a_failing_removal_warns_once_until_a_removal_succeeds() {
        let dir = TempDir::new().unwrap();
        // remove_file refuses a directory, whoever runs the test.
        let stuck = dir.path().join("stuck");
        std::fs::create_dir(&stuck).unwrap();
        let file = dir.path().join("file");

        let (logs, _guard) = Captured::start();
        let mut remover = Remover::new("jwt");
        for _ in 0..3 {
            remover.remove(&stuck).await;
        }
        assert_eq!(logs.lines_with("WARN").len(), 1);

        std::fs::write(&file, "x").unwrap();
        remover.remove(&file).await;
        assert!(!file.exists());
        remover.remove(&file).await;
        remover.remove(&stuck).await;
        assert_eq!(logs.lines_with("WARN").len(), 2);
    }
}
