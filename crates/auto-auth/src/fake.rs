//! A scripted stand-in for Vault, for the lifecycle's timing and faults.
//!
//! This is the one place where a fake server is the right tool: the renewal schedule needs
//! hours of virtual time, and the faults under test (a 403 on the very first renewal, a
//! login answered without a token, renewals that shrink toward a max TTL, an outage of a
//! given length) cannot be produced on demand by a real server. What a real server does
//! is tested end to end through the binary.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use vault_client::http::{Method, StatusCode};
use vault_client::{
    AuthInfo, BuildError, ClientSettings, LoginResponse, RequestError, SecretData, Token,
    TokenInfo, WrapLookup,
};

use crate::api::AuthApi;

type Script<In, Out> = Box<dyn FnMut(In) -> Result<Out, RequestError> + Send>;
type RenewScript = Box<dyn FnMut(Renew<'_>) -> Result<AuthInfo, RequestError> + Send>;

/// One call the fake received, with the virtual time since the fake was made.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Record {
    pub(crate) at: Duration,
    pub(crate) call: Call,
    /// The namespace of the client the call went through.
    pub(crate) namespace: Option<String>,
    /// Whether it went through a client built by `with_settings` (the cert method's).
    pub(crate) own_client: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Call {
    Login {
        mount_path: String,
        body: serde_json::Value,
        wrap_ttl: Option<Duration>,
    },
    LookupSelf(String),
    RenewSelf(String),
    WrapLookup(String),
    Unwrap(String),
}

/// What a renewal script sees.
pub(crate) struct Renew<'a> {
    pub(crate) token: &'a str,
    /// Virtual time since the login that issued `token`.
    pub(crate) since_login: Duration,
}

#[derive(Clone)]
pub(crate) struct FakeVault {
    state: Arc<Mutex<State>>,
    namespace: Option<String>,
    own_client: bool,
}

struct State {
    start: Instant,
    records: Vec<Record>,
    logins: u32,
    /// Each token issued, with when.
    issued: Vec<(String, Instant)>,
    built: Vec<ClientSettings>,
    login: Script<u32, LoginResponse>,
    renew: RenewScript,
    lookup: Script<String, TokenInfo>,
    wrap_lookup: Script<String, WrapLookup>,
    unwrap: Script<String, SecretData>,
}

impl FakeVault {
    /// Logins succeed with `s.token-<n>` (one hour, renewable); renewals give one hour.
    pub(crate) fn new() -> Self {
        let state = State {
            start: Instant::now(),
            records: Vec::new(),
            logins: 0,
            issued: Vec::new(),
            built: Vec::new(),
            login: Box::new(|n| Ok(login_ok(n, 3600))),
            renew: Box::new(|_| Ok(lease(3600))),
            lookup: Box::new(|_| Err(status(403))),
            wrap_lookup: Box::new(|_| Err(status(400))),
            unwrap: Box::new(|_| Err(status(400))),
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            namespace: None,
            own_client: false,
        }
    }

    /// Answers login number `n` (from 1).
    pub(crate) fn on_login(
        &self,
        script: impl FnMut(u32) -> Result<LoginResponse, RequestError> + Send + 'static,
    ) {
        self.state().login = Box::new(script);
    }

    pub(crate) fn on_renew(
        &self,
        script: impl FnMut(Renew<'_>) -> Result<AuthInfo, RequestError> + Send + 'static,
    ) {
        self.state().renew = Box::new(script);
    }

    pub(crate) fn on_lookup(
        &self,
        script: impl FnMut(String) -> Result<TokenInfo, RequestError> + Send + 'static,
    ) {
        self.state().lookup = Box::new(script);
    }

    pub(crate) fn on_wrap_lookup(
        &self,
        script: impl FnMut(String) -> Result<WrapLookup, RequestError> + Send + 'static,
    ) {
        self.state().wrap_lookup = Box::new(script);
    }

    pub(crate) fn on_unwrap(
        &self,
        script: impl FnMut(String) -> Result<SecretData, RequestError> + Send + 'static,
    ) {
        self.state().unwrap = Box::new(script);
    }

    pub(crate) fn records(&self) -> Vec<Record> {
        self.state().records.clone()
    }

    /// When each call matching `pick` was made.
    pub(crate) fn times(&self, pick: impl Fn(&Call) -> bool) -> Vec<Duration> {
        let records = self.records();
        records
            .iter()
            .filter(|r| pick(&r.call))
            .map(|r| r.at)
            .collect()
    }

    pub(crate) fn login_times(&self) -> Vec<Duration> {
        self.times(|call| matches!(call, Call::Login { .. } | Call::LookupSelf(_)))
    }

    pub(crate) fn renew_times(&self) -> Vec<Duration> {
        self.times(|call| matches!(call, Call::RenewSelf(_)))
    }

    /// The settings of every client built with `with_settings`.
    pub(crate) fn built(&self) -> Vec<ClientSettings> {
        self.state().built.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, state: &mut State, call: Call) {
        state.records.push(Record {
            at: Instant::now() - state.start,
            call,
            namespace: self.namespace.clone(),
            own_client: self.own_client,
        });
    }
}

impl AuthApi for FakeVault {
    fn for_auth(&self, namespace: Option<&str>) -> Result<Self, BuildError> {
        Ok(Self {
            namespace: namespace
                .map(str::to_owned)
                .or_else(|| self.namespace.clone()),
            ..self.clone()
        })
    }

    fn with_settings(&self, settings: &ClientSettings) -> Result<Self, BuildError> {
        self.state().built.push(settings.clone());
        Ok(Self {
            namespace: settings.namespace.clone(),
            own_client: true,
            ..self.clone()
        })
    }

    async fn login(
        &self,
        mount_path: &str,
        body: serde_json::Value,
        wrap_ttl: Option<Duration>,
    ) -> Result<LoginResponse, RequestError> {
        let mut state = self.state();
        let call = Call::Login {
            mount_path: mount_path.to_owned(),
            body,
            wrap_ttl,
        };
        self.record(&mut state, call);

        state.logins += 1;
        let n = state.logins;
        let response = (state.login)(n);
        if let Ok(LoginResponse::Auth(auth)) = &response {
            let token = auth.client_token.expose().to_owned();
            state.issued.push((token, Instant::now()));
        }
        response
    }

    async fn lookup_self(&self, token: &Token) -> Result<TokenInfo, RequestError> {
        let mut state = self.state();
        let token = token.expose().to_owned();
        self.record(&mut state, Call::LookupSelf(token.clone()));
        state.issued.push((token.clone(), Instant::now()));
        (state.lookup)(token)
    }

    async fn renew_self(
        &self,
        token: &Token,
        _increment: Option<Duration>,
    ) -> Result<AuthInfo, RequestError> {
        let mut state = self.state();
        let token = token.expose().to_owned();
        self.record(&mut state, Call::RenewSelf(token.clone()));

        let issued = state.issued.iter().rev().find(|(t, _)| *t == token);
        let since_login = issued.map_or(Duration::ZERO, |(_, at)| Instant::now() - *at);
        (state.renew)(Renew {
            token: &token,
            since_login,
        })
    }

    async fn wrap_lookup(&self, wrapping_token: &Token) -> Result<WrapLookup, RequestError> {
        let mut state = self.state();
        let token = wrapping_token.expose().to_owned();
        self.record(&mut state, Call::WrapLookup(token.clone()));
        (state.wrap_lookup)(token)
    }

    async fn unwrap(&self, wrapping_token: &Token) -> Result<SecretData, RequestError> {
        let mut state = self.state();
        let token = wrapping_token.expose().to_owned();
        self.record(&mut state, Call::Unwrap(token.clone()));
        (state.unwrap)(token)
    }
}

/// A successful login issuing `s.token-<n>` for `ttl` seconds, renewable.
pub(crate) fn login_ok(n: u32, ttl: u64) -> LoginResponse {
    LoginResponse::Auth(AuthInfo {
        client_token: Token::new(format!("s.token-{n}")),
        accessor: format!("accessor-{n}"),
        lease_duration: Duration::from_secs(ttl),
        renewable: true,
        token_type: "service".to_owned(),
        ..AuthInfo::default()
    })
}

/// A renewal answer: `ttl` seconds left, renewable.
pub(crate) fn lease(ttl: u64) -> AuthInfo {
    AuthInfo {
        lease_duration: Duration::from_secs(ttl),
        renewable: true,
        ..AuthInfo::default()
    }
}

/// Vault answering `code`.
pub(crate) fn status(code: u16) -> RequestError {
    RequestError::Api {
        method: Method::PUT,
        path: "fake".to_owned(),
        status: StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        errors: vec![format!("fake error {code}")],
    }
}

/// No answer at all.
pub(crate) fn unreachable() -> RequestError {
    RequestError::Unreachable {
        address: "http://127.0.0.1:1".to_owned(),
        attempts: 1,
        reason: "connection refused".to_owned(),
        source: "connection refused".into(),
    }
}
