//! The command line, as `vault agent` takes it: Go-style single-dash flags (`-config=x`,
//! `-config x`) as well as `--flags`, and an optional leading `agent` word so the binary
//! can stand where `vault agent` / `bao agent` is invoked.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

/// Vault Agent, written in Rust: logs in to Vault for your application, keeps the token
/// alive, writes it to sinks, and serves a caching proxy of the Vault API.
#[derive(Debug, Parser)]
#[command(name = "vault-agent", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Path to a config file or directory; repeatable, merged in order.
    /// Defaults to $BAO_AGENT_CONFIG_PATH or $VAULT_AGENT_CONFIG_PATH.
    #[arg(long = "config", value_name = "PATH")]
    pub(crate) config: Vec<PathBuf>,

    /// Load and validate the config, print what was understood (secrets redacted), exit.
    #[arg(long = "check", alias = "test-verify-only", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, value_name = "BOOL")]
    pub(crate) check: Option<bool>,

    /// Authenticate, write every sink once, then exit.
    #[arg(long = "exit-after-auth", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, value_name = "BOOL")]
    pub(crate) exit_after_auth: Option<bool>,

    /// Log level: trace, debug, info, warn or error (env VAULT_LOG_LEVEL).
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub(crate) log_level: Option<String>,

    /// Log format: standard or json (env VAULT_LOG_FORMAT).
    #[arg(long = "log-format", value_name = "FORMAT")]
    pub(crate) log_format: Option<String>,

    /// Also write logs to this file (a path ending in / names a directory).
    #[arg(long = "log-file", value_name = "PATH")]
    pub(crate) log_file: Option<String>,

    /// Rotate the log file after this many bytes (0: no limit).
    #[arg(long = "log-rotate-bytes", value_name = "BYTES")]
    pub(crate) log_rotate_bytes: Option<u64>,

    /// Rotate the log file after this long (default 24h).
    #[arg(long = "log-rotate-duration", value_name = "DURATION")]
    pub(crate) log_rotate_duration: Option<String>,

    /// Rotated files to keep (0: all, -1: none).
    #[arg(
        long = "log-rotate-max-files",
        value_name = "N",
        allow_hyphen_values = true
    )]
    pub(crate) log_rotate_max_files: Option<i64>,

    /// Address of the Vault server (env VAULT_ADDR).
    #[arg(long = "address", value_name = "URL")]
    pub(crate) address: Option<String>,

    /// Ignored, as by Vault Agent: the agent never sends its requests to an agent.
    #[arg(long = "agent-address", value_name = "URL", hide = true)]
    pub(crate) agent_address: Option<String>,

    /// PEM CA certificate file to verify the Vault server (env VAULT_CACERT).
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub(crate) ca_cert: Option<String>,

    /// Directory of PEM CA certificates (env VAULT_CAPATH).
    #[arg(long = "ca-path", value_name = "DIR")]
    pub(crate) ca_path: Option<String>,

    /// PEM client certificate for TLS to Vault (env VAULT_CLIENT_CERT).
    #[arg(long = "client-cert", value_name = "FILE")]
    pub(crate) client_cert: Option<String>,

    /// PEM client key for TLS to Vault (env VAULT_CLIENT_KEY).
    #[arg(long = "client-key", value_name = "FILE")]
    pub(crate) client_key: Option<String>,

    /// Server name to use for TLS to Vault (env VAULT_TLS_SERVER_NAME).
    #[arg(long = "tls-server-name", value_name = "NAME")]
    pub(crate) tls_server_name: Option<String>,

    /// Do not verify Vault's TLS certificate (env VAULT_SKIP_VERIFY).
    #[arg(long = "tls-skip-verify", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, value_name = "BOOL")]
    pub(crate) tls_skip_verify: Option<bool>,

    /// Namespace for the agent's requests (env VAULT_NAMESPACE).
    #[arg(long = "namespace", visible_alias = "ns", value_name = "NS")]
    pub(crate) namespace: Option<String>,
}

impl Cli {
    /// Parses the process's arguments, Go style.
    pub(crate) fn parse_args() -> Result<Self, clap::Error> {
        Self::try_parse_from(go_style(std::env::args_os()))
    }
}

/// Turns every Go-style flag `-name[=v]` into `--name[=v]`, drops a leading `agent`
/// subcommand word, and stops rewriting after `--`. Unknown names are rewritten too, so
/// that a mistyped flag is reported whole instead of as a run of one-letter flags.
pub(crate) fn go_style(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = args.into_iter();
    out.extend(args.next());

    let mut passthrough = false;
    let mut first = true;
    for arg in args {
        let text = arg.to_string_lossy();
        if first && text == "agent" {
            first = false;
            continue;
        }
        first = false;
        if passthrough || text == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        if is_go_flag(&text) {
            out.push(format!("-{text}").into());
            continue;
        }
        out.push(arg);
    }
    out
}

/// `-name` or `-name=value` with a name of two or more characters starting with a letter;
/// `-h`, `-1` and `--name` are left alone.
fn is_go_flag(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('-') else {
        return false;
    };
    let name = rest.split('=').next().unwrap_or_default();
    name.len() > 1 && name.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// Go's `strconv.ParseBool` set.
fn parse_go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("{other:?} is not a boolean (use true or false)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let argv = std::iter::once("vault-agent")
            .chain(args.iter().copied())
            .map(OsString::from);
        Cli::try_parse_from(go_style(argv))
    }

    #[test]
    fn go_and_gnu_flags_parse_alike() {
        let cli = parse(&[
            "-config=/a.hcl",
            "--config",
            "/b.d",
            "-log-level=debug",
            "-exit-after-auth",
        ])
        .unwrap();
        assert_eq!(cli.config, [PathBuf::from("/a.hcl"), PathBuf::from("/b.d")]);
        assert_eq!(cli.log_level.as_deref(), Some("debug"));
        assert_eq!(cli.exit_after_auth, Some(true));
    }

    #[test]
    fn agent_word_is_accepted_where_vault_agent_is_invoked() {
        let cli = parse(&["agent", "-config", "/etc/agent.hcl", "-check"]).unwrap();
        assert_eq!(cli.config, [PathBuf::from("/etc/agent.hcl")]);
        assert_eq!(cli.check, Some(true));
    }

    #[test]
    fn go_booleans_take_explicit_values() {
        let cli = parse(&["-config=x", "-exit-after-auth=false", "-tls-skip-verify=1"]).unwrap();
        assert_eq!(cli.exit_after_auth, Some(false));
        assert_eq!(cli.tls_skip_verify, Some(true));
        assert!(parse(&["-exit-after-auth=maybe"]).is_err());
    }

    #[test]
    fn unknown_flags_are_usage_errors_naming_the_whole_flag() {
        let err = parse(&["-config=x", "-no-such-flag"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
        assert!(err.to_string().contains("no-such-flag"), "{err}");
    }

    #[test]
    fn negative_numbers_stay_values() {
        let cli = parse(&["-config=x", "-log-rotate-max-files", "-1"]).unwrap();
        assert_eq!(cli.log_rotate_max_files, Some(-1));
    }

    #[test]
    fn namespace_short_alias() {
        let cli = parse(&["-ns=team1", "-config=x"]).unwrap();
        assert_eq!(cli.namespace.as_deref(), Some("team1"));
    }
}
