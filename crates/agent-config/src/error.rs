//! Where a setting came from, and the one error and warning shape of this crate.

use std::fmt;
use std::sync::Arc;

/// Where a value was written: a file and line, an environment variable or a command-line flag.
///
/// `line` is 0 when the value has no line of its own (an environment variable, a flag, a whole
/// file); `Display` then prints the source alone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// File path, or a description such as `environment variable VAULT_ADDR`.
    pub file: Arc<str>,
    /// 1-based line in `file`, 0 when not applicable.
    pub line: u32,
}

impl Location {
    pub(crate) fn new(file: &Arc<str>, line: u32) -> Location {
        Location {
            file: Arc::clone(file),
            line,
        }
    }

    pub(crate) fn env(name: &str) -> Location {
        Location {
            file: format!("environment variable {name}").into(),
            line: 0,
        }
    }

    pub(crate) fn flag(name: &str) -> Location {
        Location {
            file: format!("command-line flag -{name}").into(),
            line: 0,
        }
    }

    pub(crate) fn nowhere() -> Location {
        Location {
            file: "built-in default".into(),
            line: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

/// Loading failed: a file could not be read or parsed, a value has the wrong type, or the merged
/// configuration breaks a rule.
///
/// `Display` is one line: `file:line: key.path: what is wrong and what is allowed`. No secret
/// value is ever part of the message.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(location, key, message))]
pub struct ConfigError {
    /// Where the offending setting was written.
    pub location: Location,
    /// Full key path of the setting (`auto_auth.method.wrap_ttl`), empty for whole-file errors.
    pub key: String,
    /// What is wrong, in lowercase, with what is allowed.
    pub message: String,
    #[source]
    source: Option<std::io::Error>,
    /// What the loader had noticed before it failed (an unknown key is often the cause of
    /// the error: a misspelt `tls_disable` makes TLS settings required).
    warnings: Vec<Warning>,
}

impl ConfigError {
    pub(crate) fn new(
        location: Location,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            location,
            key: key.into(),
            message: message.into(),
            source: None,
            warnings: Vec::new(),
        }
    }

    pub(crate) fn io(
        location: Location,
        message: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        ConfigError {
            location,
            key: String::new(),
            message: message.into(),
            source: Some(source),
            warnings: Vec::new(),
        }
    }

    /// The warnings gathered before the error, in the order a successful load reports them;
    /// show them first, as one of them may explain the error.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    pub(crate) fn with_warnings(mut self, mut warnings: Vec<Warning>) -> ConfigError {
        warnings.append(&mut self.warnings);
        self.warnings = warnings;
        self
    }

    /// The file (or environment variable / flag description) named by the error.
    pub fn file(&self) -> &str {
        &self.location.file
    }

    /// The 1-based line of the setting, 0 when it has none.
    pub fn line(&self) -> u32 {
        self.location.line
    }
}

/// Something the loader accepted but an operator should look at, such as an unknown key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Where the setting was written.
    pub location: Location,
    /// Full key path of the setting.
    pub key: String,
    /// What was noticed, naming the key path.
    pub message: String,
}

impl fmt::Display for Warning {
    /// `file:line: message`; the message itself names the key path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

fn render(location: &Location, key: &str, message: &str) -> String {
    if key.is_empty() {
        format!("{location}: {message}")
    } else {
        format!("{location}: {key}: {message}")
    }
}
