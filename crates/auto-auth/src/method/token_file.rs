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
