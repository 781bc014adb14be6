//! `token_file`: a token read from a file; there is no login.

use tracing::warn;
use vault_client::Token;

use super::files::read_credential;
use super::{AuthMethod, Credentials};
use crate::api::AuthApi;
use crate::error::{Chain, LoginFailed};
use crate::settings::TokenFileSettings;

pub(crate) struct TokenFile {
    settings: TokenFileSettings,
    token: Option<Token>,
}

impl TokenFile {
    pub(crate) fn new(settings: TokenFileSettings) -> Self {
        Self {
            settings,
            token: None,
        }
    }
}

impl<A: AuthApi> AuthMethod<A> for TokenFile {
    async fn credentials(&mut self, _api: &A) -> Result<Credentials<A>, LoginFailed> {
        let token = match read_credential(&self.settings.token_file_path, "token").await {
            Ok(token) => Token::new(token.expose()),
            Err(error) => {
                let Some(cached) = &self.token else {
                    return Err(error);
                };
                warn!(error = %Chain(&error), "using the token read earlier");
                cached.clone()
            }
        };

        self.token = Some(token.clone());
        Ok(Credentials::Token(token))
    }
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;
    use crate::fake::FakeVault;

    async fn token(method: &mut TokenFile) -> Result<String, LoginFailed> {
        match AuthMethod::<FakeVault>::credentials(method, &FakeVault::new()).await? {
            Credentials::Token(token) => Ok(token.expose().to_owned()),
            Credentials::Login { .. } => panic!("token_file does not log in"),
        }
    }

    #[tokio::test]
    async fn the_token_is_read_trimmed_and_kept_when_the_file_goes() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("token");
        let mut method = TokenFile::new(TokenFileSettings {
            token_file_path: path.clone(),
        });

        let error = token(&mut method).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot read the token file {}", path.display())
        );

        std::fs::write(&path, "s.one\n").unwrap();
        assert_eq!(token(&mut method).await.unwrap(), "s.one");
        std::fs::write(&path, "s.two").unwrap();
        assert_eq!(token(&mut method).await.unwrap(), "s.two");

        std::fs::remove_file(&path).unwrap();
        assert_eq!(token(&mut method).await.unwrap(), "s.two");
    }
}
