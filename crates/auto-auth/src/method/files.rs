//! Reading credential files, and deleting them after reading.

use std::io;
use std::path::Path;

use tracing::{debug, warn};
use vault_client::SecretValue;
use zeroize::Zeroizing;

use crate::error::LoginFailed;

/// Reads a credential, without the whitespace around it; an empty file is an error.
pub(crate) async fn read_credential(
    path: &Path,
    what: &'static str,
) -> Result<SecretValue, LoginFailed> {
    let read_failed = |source| LoginFailed::ReadFile {
        what,
        path: path.to_owned(),
        source,
    };
    let content = Zeroizing::new(tokio::fs::read_to_string(path).await.map_err(read_failed)?);

    let value = content.trim();
    if value.is_empty() {
        return Err(LoginFailed::EmptyFile {
            what,
            path: path.to_owned(),
        });
    }
    Ok(SecretValue::new(value))
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
