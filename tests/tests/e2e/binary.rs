//! The `vault-agent` binary as an operator meets it: the command line, `-check`, refused
//! configs, the reference configs and their verdicts, logging (levels, formats, files,
//! rotation), precedence of flags over environment over file, signals, the pid file and the
//! quit endpoint. Every run is the real binary against the real dev server.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: an unexpected error fails the test"
)]

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::binary::{Finished, openbao_fixtures, run_agent};
use e2e::{Agent, AppRole, DevVault};
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;

/// Environment variables for one run of the agent.
type Env<'a> = &'a [(&'a str, &'a str)];

/// How long a login and the first sink write may take.
const LOGIN: Duration = Duration::from_secs(20);

/// An AppRole the agent logs in with; the secret_id file stays after reading so that one
/// role can serve several runs of the agent.
struct Login {
    role: AppRole,
    role_id_file: PathBuf,
    secret_id_file: PathBuf,
}

impl Login {
    fn new(vault: &DevVault, dir: &Path) -> Login {
        let role = vault.approle(&["token_ttl=1h"]).unwrap();
        let role_id_file = dir.join("role_id");
        let secret_id_file = dir.join("secret_id");
        std::fs::write(&role_id_file, &role.role_id).unwrap();
        std::fs::write(&secret_id_file, &role.secret_id).unwrap();
        Login {
            role,
            role_id_file,
            secret_id_file,
        }
    }

    /// An `auto_auth` block logging in with this role and writing a plain file sink.
    fn auto_auth(&self, sink: &Path) -> String {
        format!(
            r#"
auto_auth {{
  method "approle" {{
    mount_path = "auth/{mount}"
    config = {{
      role_id_file_path = "{role_id}"
      secret_id_file_path = "{secret_id}"
      remove_secret_id_file_after_reading = false
    }}
  }}
  sink "file" {{
    config = {{
      path = "{sink}"
    }}
  }}
}}
"#,
            mount = self.role.mount,
            role_id = self.role_id_file.display(),
            secret_id = self.secret_id_file.display(),
            sink = sink.display(),
        )
    }

    fn credentials(&self) -> [&str; 2] {
        [&self.role.role_id, &self.role.secret_id]
    }
}

/// Writes `text` as `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A loopback address nothing listens on.
fn dead_address() -> String {
    format!("http://127.0.0.1:{}", e2e::free_port())
}

/// `-config=<path>`.
fn config_flag(path: &Path) -> String {
    format!("-config={}", path.display())
}

/// Waits until the sink file holds a token and returns it.
fn token_in(sink: &Path) -> String {
    e2e::wait_for("the sink file", LOGIN, || {
        std::fs::read_to_string(sink).is_ok_and(|t| !t.is_empty())
    })
    .unwrap();
    std::fs::read_to_string(sink).unwrap()
}

/// The `address = ...` line of the `vault` block in a `-check` dump.
fn dumped_address(run: &Finished) -> String {
    assert_eq!(run.code, Some(0), "-check failed:\n{}", run.output());
    let line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("address = "))
        .unwrap_or_else(|| panic!("no address in the dump:\n{}", run.stdout));
    line.trim()
        .trim_start_matches("address = ")
        .trim_matches('"')
        .to_owned()
}

// --- Refused configs -----------------------------------------------------------------------

/// A bad config stops the agent before it does anything, with exit code 1 and one message
/// that names the file, the line and the setting. Checked for a real start and for `-check`.
#[test]
fn bad_configs_exit_1_naming_file_line_and_key() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("bad-configs");
    let sink = dir.path().join("token");
    let auth = |method: &str, sink_extra: &str| {
        format!(
            "auto_auth {{\n  method \"{method}\" {{\n    config = {{ role_id_file_path = \"/r\" }}\n  }}\n  \
             sink \"file\" {{\n{sink_extra}    config = {{\n      path = \"{}\"\n      mode = 0640\n    }}\n  }}\n}}\n",
            sink.display()
        )
    };

    // (what, config text, line, key, what the message must say)
    let cases: Vec<(&str, String, u32, &str, &str)> = vec![
        (
            "syntax error",
            format!("vault {{\n  address = \n}}\n{}", auth("approle", "")),
            3,
            "",
            "syntax error",
        ),
        (
            "bad value type",
            format!(
                "vault {{\n  retry {{\n    num_retries = \"many\"\n  }}\n}}\n{}",
                auth("approle", "")
            ),
            3,
            "vault.retry.num_retries",
            "whole number",
        ),
        (
            "validation rule",
            auth("approle", "    aad = \"some-aad-value\"\n"),
            6,
            "auto_auth.sink.aad",
            "dh_type",
        ),
        (
            "unknown auth method",
            auth("github", ""),
            2,
            "auto_auth.method",
            "\"github\"",
        ),
        (
            "sink mode 640 in HCL (decimal, not octal)",
            auth("approle", "").replace("mode = 0640", "mode = 640"),
            8,
            "auto_auth.sink.config.mode",
            "0640",
        ),
    ];

    for (what, text, line, key, says) in cases {
        let path = write(dir.path(), "agent.hcl", &text);
        let at = format!("{}:{line}: {key}", path.display());
        let env = [("VAULT_ADDR", vault.addr.as_str())];

        let started = run_agent(&[&config_flag(&path)], &env).unwrap();
        assert_eq!(started.code, Some(1), "{what}: {}", started.output());
        assert!(
            started.stderr.contains(&at) && started.stderr.contains(says),
            "{what}: expected {at:?} and {says:?} in:\n{}",
            started.stderr
        );
        assert!(!sink.exists(), "{what}: the agent got as far as a sink");
        assert!(
            !started.output().contains("some-aad-value"),
            "{what}: the aad was printed"
        );

        let checked = run_agent(&[&config_flag(&path), "-check"], &env).unwrap();
        if what == "unknown auth method" {
            // `-check` gives the reference agent's verdict, which only loads and validates
            // (the reference configs are valid with methods this agent lacks), but says what
            // a start would refuse.
            assert_eq!(checked.code, Some(0), "{what}: {}", checked.output());
            assert!(checked.stderr.contains(&at), "{what}: {}", checked.stderr);
        } else {
            assert_eq!(
                checked.code,
                Some(1),
                "{what} (-check): {}",
                checked.output()
            );
            assert!(
                checked.stderr.contains(&at),
                "{what} (-check): {}",
                checked.stderr
            );
        }
    }
}

// --- The reference configs -----------------------------------------------------------------

/// The setting an invalid reference config gets wrong, as our message must name it.
const INVALID_SETTING: &[(&str, &str)] = &[
    (
        "agent-bad-config-api_proxy-cache.hcl",
        "use_auto_auth_token",
    ),
    (
        "agent-bad-config-auto_auth-nosinks-nocache-notemplates.hcl",
        "auto_auth",
    ),
    (
        "agent-bad-config-cache-auto_auth-method-wrapping.hcl",
        "auto_auth.method.wrap_ttl",
    ),
    (
        "agent-bad-config-cache-force-token-no-auth-method.hcl",
        "cache.use_auto_auth_token",
    ),
    ("agent-bad-config-cache-no-listeners.hcl", "cache"),
    (
        "agent-bad-config-disable-idle-connections.hcl",
        "disable_idle_connections",
    ),
    (
        "agent-bad-config-env-templates-disalowed-fields.hcl",
        "env_template[FOO_PASSWORD]",
    ),
    (
        "agent-bad-config-env-templates-invalid-signal.hcl",
        "exec.restart_stop_signal",
    ),
    ("agent-bad-config-env-templates-no-name.hcl", "env_template"),
    (
        "agent-bad-config-env-templates-with-file-templates.hcl",
        "template",
    ),
    (
        "agent-bad-config-method-wrapping-and-sink-wrapping.hcl",
        "wrap_ttl",
    ),
    (
        "agent-config-cache-persist-empty-type.hcl",
        "cache.persist.type",
    ),
    ("agent-config-cache2.hcl", "cache"),
    (
        "agent-config-template_config.hcl",
        "auto_auth, cache or listener",
    ),
    ("agent-config1.hcl", "auto_auth, cache or listener"),
];

/// What `-check` must print for some valid reference configs (spot checks of values).
const DUMPED: &[(&str, &[&str])] = &[
    (
        "agent-config.hcl",
        &[
            "pid_file = \"./pidfile\"",
            "method \"aws\" {",
            "namespace = \"my-namespace/\"",
            "wrap_ttl = \"5m0s\"",
            "derive_key = true",
            "aad_env_var = \"TEST_AAD_ENV\"",
            "mode = 0640",
            "log_file = \"/var/log/vault/vault-agent.log\"",
        ],
    ),
    (
        "agent-config-method-wrapping.hcl",
        &["wrap_ttl = \"5m0s\"", "max_backoff = \"2m0s\""],
    ),
    (
        "agent-config-disable-keep-alives-all.hcl",
        &[
            "disable_keep_alives = [\"auto-auth\", \"proxying\", \"templating\"]",
            "address = \"http://127.0.0.1:1111\"",
        ],
    ),
    (
        "agent-config-cache-embedded-type.hcl",
        &[
            "tls_skip_verify = true",
            "persist \"kubernetes\" {",
            "keep_after_import = true",
        ],
    ),
];

/// Top-level blocks whose presence in a file must show in the dump.
const BLOCKS: &[&str] = &[
    "vault",
    "auto_auth",
    "cache",
    "api_proxy",
    "listener",
    "template",
    "env_template",
    "exec",
    "telemetry",
];

/// `vault-agent -config=FILE -check` over every reference config gives the reference agent's
/// verdict: a valid one exits 0 and prints what was understood, an invalid one exits 1 and
/// names the file and the setting. Every warning names its file and line.
#[test]
fn check_gives_every_reference_config_its_verdict() {
    let _ = e2e::vault_or_skip!();
    let dir = openbao_fixtures();
    let table = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let verdicts: Vec<(&str, &str)> = table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut columns = l.split('\t');
            (columns.next().unwrap(), columns.next().unwrap())
        })
        .collect();

    // Every config in the folder has a verdict, and every verdict a config.
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".hcl"))
        .collect();
    let judged: BTreeSet<String> = verdicts.iter().map(|(f, _)| (*f).to_owned()).collect();
    assert_eq!(files, judged, "expected.tsv and the folder disagree");
    assert!(
        files.len() > 40,
        "only {} reference configs found",
        files.len()
    );

    let mut failures = Vec::new();
    for (file, verdict) in &verdicts {
        let path = dir.join(file);
        let run = run_agent(&[&config_flag(&path), "-check"], &[]).unwrap();
        let problem = match *verdict {
            "valid" => valid_problem(&path, &run),
            "invalid" => invalid_problem(&path, file, &run),
            other => Some(format!("unknown verdict {other:?}")),
        };
        if let Some(problem) = problem {
            failures.push(format!("{file} ({verdict}): {problem}\n{}", run.output()));
        }
        if let Some(problem) = unlocated_warning(&path, &run) {
            failures.push(format!("{file}: {problem}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn valid_problem(path: &Path, run: &Finished) -> Option<String> {
    if run.code != Some(0) {
        return Some(format!("exit code {:?}", run.code));
    }
    let text = std::fs::read_to_string(path).unwrap();
    for block in BLOCKS {
        let in_file = text
            .lines()
            .filter(|l| l.split([' ', '{', '\t']).next() == Some(block))
            .count();
        let dumped = run
            .stdout
            .lines()
            .filter(|l| l.split([' ', '{']).next() == Some(block))
            .count();
        // The dump always has a `vault` block, and an `api_proxy` one when the legacy
        // `cache.use_auto_auth_token` was moved there.
        let same = if matches!(*block, "vault" | "api_proxy") {
            in_file <= dumped
        } else {
            in_file == dumped
        };
        if !same {
            return Some(format!(
                "{in_file} {block} block(s) in the file, {dumped} dumped"
            ));
        }
    }
    let name = path.file_name().unwrap().to_string_lossy();
    let expected = DUMPED
        .iter()
        .find(|(f, _)| *f == name)
        .map_or(&[][..], |(_, e)| e);
    expected
        .iter()
        .find(|line| !run.stdout.lines().any(|l| l.trim() == **line))
        .map(|line| format!("the dump lacks {line:?}"))
}

fn invalid_problem(path: &Path, file: &str, run: &Finished) -> Option<String> {
    if run.code != Some(1) {
        return Some(format!("exit code {:?}", run.code));
    }
    let Some((_, setting)) = INVALID_SETTING.iter().find(|(f, _)| *f == file) else {
        return Some("no expected setting in INVALID_SETTING; add one".to_owned());
    };
    let error = run.stderr.lines().find(|l| l.starts_with("error: "))?;
    let names_file = error.contains(&format!("{}:", path.display()));
    (!names_file || !error.contains(setting))
        .then(|| format!("the error should name the file and {setting:?}"))
}

/// A warning line that does not start with `file:line:`.
fn unlocated_warning(path: &Path, run: &Finished) -> Option<String> {
    let prefix = format!("warning: {}:", path.display());
    run.stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .find(|l| {
            let rest = l.strip_prefix(&prefix).unwrap_or_default();
            let line: String = rest.chars().take_while(char::is_ascii_digit).collect();
            line.is_empty() || line == "0" || !rest[line.len()..].starts_with(": ")
        })
        .map(|l| format!("a warning without file:line: {l}"))
}

// --- Command-line forms --------------------------------------------------------------------

/// The forms operators use: the `agent` word, `-config` and `--config`, `=` or a separate
/// value, repeated `-config` (later files win the `vault` block, listeners add up), a config
/// directory (editor leftovers and other files skipped) and the config path from the
/// environment.
#[test]
fn check_takes_every_form_of_the_command_line() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("check-forms");
    let d = dir.path();
    let file = write(
        d,
        "agent.hcl",
        &format!(
            "vault {{\n  address = \"{}\"\n}}\ncache {{}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:8100\"\n  tls_disable = true\n}}\n",
            vault.addr
        ),
    );
    let later = write(
        d,
        "later.hcl",
        "vault {\n  address = \"http://later.example:8200\"\n}\nlistener \"unix\" {\n  address = \"/tmp/later.sock\"\n  tls_disable = true\n}\n",
    );
    let conf_d = d.join("conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    write(
        &conf_d,
        "10-vault.hcl",
        "vault {\n  address = \"http://dir.example:8200\"\n}\n",
    );
    write(
        &conf_d,
        "20-listener.json",
        r#"{"cache": {}, "listener": [{"tcp": {"address": "127.0.0.1:8101", "tls_disable": true}}]}"#,
    );
    write(&conf_d, "30-broken.hcl~", "this is { not a config");
    write(&conf_d, "README.txt", "not a config either");

    let file = file.display().to_string();
    let forms: &[&[&str]] = &[
        &["-config", &file, "-check"],
        &["agent", &format!("-config={file}"), "-check"],
        &["agent", "--config", &file, "--check"],
        &[&format!("--config={file}"), "-check=true"],
    ];
    for args in forms {
        let run = run_agent(args, &[]).unwrap();
        assert_eq!(dumped_address(&run), vault.addr, "{args:?}");
        assert!(
            run.stdout.contains("listener \"tcp\""),
            "{args:?}: {}",
            run.stdout
        );
    }

    let repeated = run_agent(&["-config", &file, &config_flag(&later), "-check"], &[]).unwrap();
    assert_eq!(dumped_address(&repeated), "http://later.example:8200");
    assert!(
        repeated.stdout.contains("listener \"tcp\""),
        "{}",
        repeated.stdout
    );
    assert!(
        repeated.stdout.contains("listener \"unix\""),
        "{}",
        repeated.stdout
    );

    let directory = run_agent(&[&config_flag(&conf_d), "-check"], &[]).unwrap();
    assert_eq!(dumped_address(&directory), "http://dir.example:8200");
    assert!(
        directory.stdout.contains("127.0.0.1:8101"),
        "{}",
        directory.stdout
    );

    let conf_d = conf_d.display().to_string();
    let from_env = run_agent(&["-check"], &[("VAULT_AGENT_CONFIG_PATH", &conf_d)]).unwrap();
    assert_eq!(dumped_address(&from_env), "http://dir.example:8200");

    let none = run_agent(&["-check"], &[]).unwrap();
    assert_eq!(none.code, Some(1), "{}", none.output());
    assert!(none.stderr.contains("-config"), "{}", none.stderr);
}

/// A bad command line is a usage error: exit code 2, the usage line, the offending flag.
#[test]
fn a_bad_command_line_exits_2_with_usage() {
    let _ = e2e::vault_or_skip!();
    let cases: &[(&[&str], &str)] = &[
        (&["-config=x.hcl", "-no-such-flag"], "no-such-flag"),
        (&["-config=x.hcl", "-exit-after-auth=maybe"], "maybe"),
        (&["-config=x.hcl", "-log-rotate-bytes=lots"], "lots"),
        (
            &["agent", "-config=x.hcl", "stray-argument"],
            "stray-argument",
        ),
    ];
    for (args, named) in cases {
        let run = run_agent(args, &[]).unwrap();
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.output());
        assert!(run.stderr.contains("Usage"), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(named), "{args:?}: {}", run.stderr);
    }
}

// --- Unknown keys ---------------------------------------------------------------------------

/// A misspelt key is not silently dropped: `-check` and a real start both warn with the file,
/// the line and the key it was probably meant to be. (Vault ignores unknown keys silently.)
#[test]
fn unknown_keys_warn_with_line_and_suggestion() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("unknown-keys");
    let login = Login::new(vault, dir.path());
    let sink = dir.path().join("token");
    let text = format!(
        "vault {{\n  address = \"{}\"\n}}\n{}\nexit_after_auth = true\npid_flie = \"/tmp/x.pid\"\n",
        vault.addr,
        login.auto_auth(&sink)
    );
    let path = write(dir.path(), "agent.hcl", &text);
    let line = text
        .lines()
        .position(|l| l.starts_with("pid_flie"))
        .unwrap()
        + 1;
    let warning = format!(
        "{}:{line}: unknown key \"pid_flie\" (did you mean \"pid_file\"?)",
        path.display()
    );

    let checked = run_agent(&[&config_flag(&path), "-check"], &[]).unwrap();
    assert_eq!(checked.code, Some(0), "{}", checked.output());
    assert!(checked.stderr.contains(&warning), "{}", checked.stderr);

    let mut agent = Agent::start(&path, &[]).unwrap();
    let status = agent.wait_exit(LOGIN).unwrap();
    assert!(status.success(), "{}", agent.logs());
    let logs = agent.logs();
    let warned = logs
        .lines()
        .find(|l| l.contains(&warning))
        .unwrap_or_else(|| panic!("no warning at startup:\n{logs}"));
    assert!(warned.contains("[WARN]"), "{warned}");
    let token = token_in(&sink);
    agent.assert_no_secrets(&[&token, login.credentials()[0], login.credentials()[1]]);
}

// --- Logs and secrets -----------------------------------------------------------------------

/// At debug level the agent prints the configuration it understood, in both log formats,
/// and never a secret from it: not a sink's `aad`, not a secret-looking method setting
/// (string or number), not the credentials it read, not the token it got.
#[test]
fn debug_logs_show_the_config_but_never_a_secret() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("debug-secrets");
    let d = dir.path();
    let login = Login::new(vault, d);
    let sink = d.join("token");
    let dh_path = write(
        d,
        "dh.json",
        // A consumer's public key; the agent only needs it to encrypt.
        r#"{"curve25519_public_key": "sxaTWCmPvJ2LPdjBMC1jzs35kNy4b3eHl2qdvZQ/k1M="}"#,
    );
    let aad = "aad-that-must-stay-private";
    let client_secret = "client-secret-that-must-stay-private";
    let pin = "271828182845904";
    let text = format!(
        r#"vault {{
  address = "{addr}"
}}
exit_after_auth = true
auto_auth {{
  method "approle" {{
    mount_path = "auth/{mount}"
    config = {{
      role_id_file_path = "{role_id}"
      secret_id_file_path = "{secret_id}"
      remove_secret_id_file_after_reading = false
      client_secret = "{client_secret}"
      client_secret_pin = {pin}
    }}
  }}
  sink "file" {{
    config = {{
      path = "{sink}"
    }}
  }}
  sink "file" {{
    dh_type = "curve25519"
    dh_path = "{dh}"
    aad = "{aad}"
    config = {{
      path = "{encrypted}"
    }}
  }}
}}
"#,
        addr = vault.addr,
        mount = login.role.mount,
        role_id = login.role_id_file.display(),
        secret_id = login.secret_id_file.display(),
        sink = sink.display(),
        dh = dh_path.display(),
        encrypted = d.join("token.dh").display(),
    );
    let path = write(d, "agent.hcl", &text);

    // (flags, environment, whether the lines are JSON)
    let runs: &[(&[&str], Env<'_>, bool)] = &[
        (&["-log-level=debug"], &[], false),
        (&["-log-level=debug", "-log-format=json"], &[], true),
        (
            &[],
            &[("VAULT_LOG_LEVEL", "debug"), ("VAULT_LOG_FORMAT", "json")],
            true,
        ),
        (
            &["-log-level=debug"],
            &[("BAO_LOG_FORMAT", "standard"), ("VAULT_LOG_FORMAT", "json")],
            false,
        ),
        (&["-log-level=debug"], &[("BAO_LOG_FORMAT", "json")], true),
    ];
    for (args, env, json) in runs {
        let _ = std::fs::remove_file(&sink);
        let mut agent = Agent::start_with_env(&path, args, env).unwrap();
        let status = agent.wait_exit(LOGIN).unwrap();
        assert!(status.success(), "{args:?} {env:?}:\n{}", agent.logs());
        let token = token_in(&sink);
        let logs = agent.logs();

        for needle in [
            "role_id_file_path",
            "aad = <redacted>",
            "client_secret = <redacted>",
        ] {
            assert!(
                logs.contains(needle),
                "{args:?} {env:?}: no {needle:?} in\n{logs}"
            );
        }
        if *json {
            for line in logs.lines() {
                let object: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{args:?} {env:?}: not JSON ({e}): {line}"));
                assert!(object["@level"].is_string(), "{line}");
            }
            assert!(logs.contains(r#""@level":"debug""#), "{logs}");
        } else {
            assert!(
                logs.lines().all(|l| l.contains(" [")),
                "{args:?} {env:?}:\n{logs}"
            );
            assert!(logs.contains("[DEBUG]"), "{logs}");
        }
        let [role_id, secret_id] = login.credentials();
        agent.assert_no_secrets(&[&token, role_id, secret_id, aad, client_secret, pin]);
    }

    // `-check` prints the same dump on stdout, with the same redactions.
    let checked = run_agent(&[&config_flag(&path), "-check"], &[]).unwrap();
    assert_eq!(checked.code, Some(0), "{}", checked.output());
    for secret in [aad, client_secret, pin] {
        assert!(
            !checked.output().contains(secret),
            "-check printed a secret"
        );
    }
}

/// A log file named by a directory (`-log-file=<dir>/`) is `<dir>/agent.log`; with
/// `-log-rotate-bytes` the agent rotates it into `agent-<time>.log` files no larger than the
/// limit, keeping `-log-rotate-max-files` of them.
#[test]
fn log_file_in_a_directory_rotates_by_bytes() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("log-file");
    let d = dir.path();
    let login = Login::new(vault, d);
    let sink = d.join("token");
    let text = format!(
        "vault {{\n  address = \"{}\"\n}}\nexit_after_auth = true\n{}",
        vault.addr,
        login.auto_auth(&sink)
    );
    let path = write(d, "agent.hcl", &text);
    let logs = d.join("logs");
    std::fs::create_dir(&logs).unwrap();

    let log_file = format!("-log-file={}/", logs.display());
    let args = [
        log_file.as_str(),
        "-log-level=debug",
        "-log-rotate-bytes=1024",
        "-log-rotate-max-files=2",
    ];
    let mut agent = Agent::start(&path, &args).unwrap();
    assert!(
        agent.wait_exit(LOGIN).unwrap().success(),
        "{}",
        agent.logs()
    );
    let token = token_in(&sink);

    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.contains(&"agent.log".to_owned()), "{names:?}");
    let rotated: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("agent-") && n.ends_with(".log"))
        .collect();
    // The debug dump alone is several kilobytes: rotation happened more than twice, and
    // only the two newest rotated files were kept.
    assert_eq!(rotated.len(), 2, "{names:?}");
    assert_eq!(names.len(), 3, "{names:?}");

    let mut written = String::new();
    for name in &names {
        let text = std::fs::read_to_string(logs.join(name)).unwrap();
        assert!(text.len() <= 1024, "{name} has {} bytes", text.len());
        written.push_str(&text);
    }
    let stderr = agent.logs();
    let last = stderr.lines().last().unwrap();
    assert!(
        written.contains(last),
        "the file lacks the last line {last:?}"
    );
    for secret in [token.as_str(), &login.role.secret_id, &login.role.role_id] {
        assert!(!written.contains(secret), "a secret reached the log file");
    }
    agent.assert_no_secrets(&[&token, &login.role.secret_id, &login.role.role_id]);

    // A name without an extension gets `.log`.
    let named = format!("-log-file={}", logs.join("custom").display());
    let mut agent = Agent::start(&path, &[&named]).unwrap();
    assert!(
        agent.wait_exit(LOGIN).unwrap().success(),
        "{}",
        agent.logs()
    );
    let custom = std::fs::read_to_string(logs.join("custom.log")).unwrap();
    assert!(custom.contains("[INFO]"), "{custom}");
}

// --- Precedence -----------------------------------------------------------------------------

/// The Vault address comes from the flag, else the environment, else the file; `BAO_ADDR`
/// wins over `VAULT_ADDR`, even when empty. The `-check` dump shows the choice and a running
/// agent logs in against the address it names.
///
/// Where we differ from OpenBao: an empty `BAO_ADDR` there also hides the file's address and
/// the agent dials the built-in default (`https://127.0.0.1:8200`); here an empty variable
/// overrides nothing, so the file's address stays (it still hides `VAULT_ADDR`).
#[test]
fn vault_address_comes_from_flag_then_env_then_file() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("precedence");
    let d = dir.path();
    let login = Login::new(vault, d);
    let dead = dead_address();
    let other = dead_address();
    let real = vault.addr.as_str();

    let config = |name: &str, file_address: &str| {
        let sink = d.join(format!("{name}.token"));
        let text = format!(
            "vault {{\n  address = \"{file_address}\"\n}}\nexit_after_auth = true\n{}",
            login.auto_auth(&sink)
        );
        (write(d, &format!("{name}.hcl"), &text), sink)
    };

    // (file, environment, flag, expected)
    let cases: &[(&str, Env<'_>, Option<&str>, &str)] = &[
        (&dead, &[], None, &dead),
        (&dead, &[("VAULT_ADDR", real)], None, real),
        (
            &dead,
            &[("BAO_ADDR", real), ("VAULT_ADDR", &other)],
            None,
            real,
        ),
        (&dead, &[("VAULT_ADDR", &other)], Some(real), real),
        (&dead, &[("BAO_ADDR", &other)], Some(real), real),
        (real, &[("BAO_ADDR", ""), ("VAULT_ADDR", &dead)], None, real),
    ];
    for (n, (file_address, env, flag, expected)) in cases.iter().enumerate() {
        let (path, sink) = config(&format!("case{n}"), file_address);
        let mut args = vec![config_flag(&path), "-check".to_owned()];
        args.extend(flag.map(|a| format!("-address={a}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let checked = run_agent(&args, env).unwrap();
        assert_eq!(
            dumped_address(&checked),
            *expected,
            "case {n}: {env:?} {flag:?}"
        );

        if *expected != real {
            continue;
        }
        let flags: Vec<String> = flag.iter().map(|a| format!("-address={a}")).collect();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut agent = Agent::start_with_env(&path, &flags, env).unwrap();
        let status = agent.wait_exit(LOGIN).unwrap();
        assert!(
            status.success(),
            "case {n}: {env:?} {flag:?}\n{}",
            agent.logs()
        );
        let token = token_in(&sink);
        let [role_id, secret_id] = login.credentials();
        agent.assert_no_secrets(&[&token, role_id, secret_id]);
    }
}

// --- Lifecycle ------------------------------------------------------------------------------

/// A running agent with a pid file and a listener, in `dir`.
fn lifecycle_config(vault: &DevVault, login: &Login, dir: &Path, listener: &str) -> PathBuf {
    let text = format!(
        "vault {{\n  address = \"{}\"\n}}\npid_file = \"{}\"\n{}\n{listener}",
        vault.addr,
        dir.join("agent.pid").display(),
        login.auto_auth(&dir.join("token"))
    );
    write(dir, "agent.hcl", &text)
}

fn tcp_listener(port: u16, extra: &str) -> String {
    format!(
        "listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n{extra}}}\n"
    )
}

/// A start that fails on the agent's own files (a pid file in a missing directory, a sink
/// path that is a directory) fails before auto-auth reads any credential: the secret_id
/// file, removed after reading by default, is still there to start again with.
#[test]
fn a_start_refused_for_its_own_files_spends_no_secret_id() {
    let vault = e2e::vault_or_skip!();
    for case in ["pid file", "sink"] {
        let dir = e2e::work_dir("refused-start");
        let login = Login::new(vault, dir.path());
        let (pid_file, sink) = match case {
            "pid file" => (
                dir.path().join("missing/agent.pid"),
                dir.path().join("token"),
            ),
            _ => {
                let sink = dir.path().join("token");
                std::fs::create_dir(&sink).unwrap();
                (dir.path().join("agent.pid"), sink)
            }
        };
        let auth = login.auto_auth(&sink).replace(
            "remove_secret_id_file_after_reading = false",
            "remove_secret_id_file_after_reading = true",
        );
        let text = format!(
            "vault {{\n  address = \"{}\"\n}}\npid_file = \"{}\"\n{auth}",
            vault.addr,
            pid_file.display(),
        );
        let path = write(dir.path(), "agent.hcl", &text);

        let mut agent = Agent::start(&path, &[]).unwrap();
        let status = agent.wait_exit(Duration::from_secs(15)).unwrap();

        let logs = agent.logs();
        assert_eq!(status.code(), Some(1), "{case}:\n{logs}");
        let named = if case == "pid file" { &pid_file } else { &sink };
        assert!(
            logs.contains(&named.display().to_string()),
            "{case}:\n{logs}"
        );
        assert!(
            login.secret_id_file.exists(),
            "{case}: the secret_id was read:\n{logs}"
        );
        assert!(!logs.contains("authenticated"), "{case}:\n{logs}");
        assert!(!logs.contains("panicked"), "{case}:\n{logs}");
        let [role_id, secret_id] = login.credentials();
        agent.assert_no_secrets(&[role_id, secret_id]);
    }
}

/// SIGTERM and SIGINT drain and exit 0. While the agent runs its pid file holds its pid
/// (no newline) with mode 0600; after the exit the file is gone. SIGUSR1 and SIGUSR2 do
/// nothing.
#[test]
fn sigterm_and_sigint_exit_0_and_remove_the_pid_file() {
    let vault = e2e::vault_or_skip!();
    let signals = [Signal::SIGTERM, Signal::SIGINT];
    let runs: Vec<_> = signals
        .into_iter()
        .map(|signal| {
            std::thread::spawn(move || {
                let dir = e2e::work_dir("signals");
                let login = Login::new(vault, dir.path());
                let listener = tcp_listener(e2e::free_port(), "");
                let path = lifecycle_config(vault, &login, dir.path(), &listener);
                let pid_file = dir.path().join("agent.pid");

                let mut agent = Agent::start(&path, &[]).unwrap();
                agent.wait_for_log("agent started", LOGIN).unwrap();
                let token = token_in(&dir.path().join("token"));
                let pid = std::fs::read_to_string(&pid_file).unwrap();
                assert_eq!(pid, agent.pid().to_string(), "{signal}: pid file content");
                let mode = std::fs::metadata(&pid_file).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{signal}: pid file mode {mode:o}");

                // SIGUSR1 and SIGUSR2 are ignored, as by the reference agent.
                agent.signal(Signal::SIGUSR1).unwrap();
                agent.signal(Signal::SIGUSR2).unwrap();
                e2e::pause(Duration::from_millis(300));
                assert!(
                    e2e::auth::is_running(agent.pid()),
                    "{signal}: a SIGUSR killed it"
                );
                assert!(pid_file.exists(), "{signal}: pid file gone after SIGUSR");

                agent.signal(signal).unwrap();
                let status = agent.wait_exit(Duration::from_secs(15)).unwrap();
                assert_eq!(status.code(), Some(0), "{signal}:\n{}", agent.logs());
                assert!(!pid_file.exists(), "{signal}: the pid file is still there");
                let [role_id, secret_id] = login.credentials();
                agent.assert_no_secrets(&[&token, role_id, secret_id]);
            })
        })
        .collect();
    for run in runs {
        run.join().unwrap();
    }
}

/// SIGHUP re-reads the file: a new `log_level` applies at once (debug lines appear where
/// there were none); a file that no longer loads is reported as an error and changes
/// nothing, and the agent keeps serving.
#[tokio::test]
async fn sighup_applies_a_new_log_level_and_survives_a_broken_file() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("sighup");
    let d = dir.path();
    let login = Login::new(vault, d);
    let port = e2e::free_port();
    let path = lifecycle_config(vault, &login, d, &tcp_listener(port, ""));
    let original = std::fs::read_to_string(&path).unwrap();
    let health = format!("http://127.0.0.1:{port}/v1/sys/health");
    let http = reqwest::Client::new();

    let mut agent = Agent::start(&path, &[]).unwrap();
    agent.wait_for_log("agent started", LOGIN).unwrap();
    let token = token_in(&d.join("token"));
    assert_eq!(http.get(&health).send().await.unwrap().status(), 200);
    assert!(!agent.logs().contains("[DEBUG]"), "{}", agent.logs());

    std::fs::write(&path, format!("{original}\nlog_level = \"debug\"\n")).unwrap();
    agent.signal(Signal::SIGHUP).unwrap();
    agent.wait_for_log("log level applied", LOGIN).unwrap();
    assert_eq!(http.get(&health).send().await.unwrap().status(), 200);
    agent.wait_for_log("[DEBUG]", LOGIN).unwrap();

    std::fs::write(&path, format!("{original}\nvault {{\n")).unwrap();
    agent.signal(Signal::SIGHUP).unwrap();
    agent.wait_for_log("[ERROR]", LOGIN).unwrap();
    let logs = agent.logs();
    let error = logs.lines().find(|l| l.contains("[ERROR]")).unwrap();
    assert!(error.contains(&format!("{}:", path.display())), "{error}");
    // Still at debug level: a request adds debug lines.
    let before = logs.matches("[DEBUG]").count();
    assert_eq!(http.get(&health).send().await.unwrap().status(), 200);
    e2e::wait_for("debug lines after the failed reload", LOGIN, || {
        agent.logs().matches("[DEBUG]").count() > before
    })
    .unwrap();

    agent.signal(Signal::SIGTERM).unwrap();
    let status = agent.wait_exit(Duration::from_secs(15)).unwrap();
    assert_eq!(status.code(), Some(0), "{}", agent.logs());
    let [role_id, secret_id] = login.credentials();
    agent.assert_no_secrets(&[&token, role_id, secret_id]);
}

/// A SIGHUP that arrives while the agent is still starting does not kill it (the default
/// action of the signal): the reload happens once the agent runs. The config file is a FIFO,
/// which holds the agent at reading it for as long as the test likes.
#[test]
fn a_sighup_while_starting_is_a_reload_not_a_kill() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("sighup-starting");
    let d = dir.path();
    let login = Login::new(vault, d);
    let text = format!(
        "vault {{\n  address = \"{}\"\n}}\n{}\n{}",
        vault.addr,
        login.auto_auth(&d.join("token")),
        tcp_listener(e2e::free_port(), "")
    );
    let fifo = d.join("agent.hcl");
    nix::unistd::mkfifo(&fifo, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();

    let mut agent = Agent::start(&fifo, &[]).unwrap();
    // Time for the process to get as far as opening its config.
    e2e::pause(Duration::from_millis(500));
    agent.signal(Signal::SIGHUP).unwrap();
    feed(&fifo, &text, &mut agent);
    agent.wait_for_log("agent started", LOGIN).unwrap();

    // The reload that was asked for reads the config again.
    feed(&fifo, &text, &mut agent);
    agent.wait_for_log("log level applied", LOGIN).unwrap();
    let token = token_in(&d.join("token"));

    agent.signal(Signal::SIGTERM).unwrap();
    let status = agent.wait_exit(Duration::from_secs(15)).unwrap();
    assert_eq!(status.code(), Some(0), "{}", agent.logs());
    let [role_id, secret_id] = login.credentials();
    agent.assert_no_secrets(&[&token, role_id, secret_id]);
}

/// Writes `text` into the FIFO once the agent opens it for reading; fails if it never does.
fn feed(fifo: &Path, text: &str, agent: &mut Agent) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    // Non-blocking, so that a dead reader is a failed open rather than a hang.
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(OFlag::O_NONBLOCK.bits())
            .open(fifo)
    };
    let mut writer = None;
    let opened = e2e::wait_for("the agent to read its config", LOGIN, || {
        writer = open().ok();
        writer.is_some()
    });
    if let Err(error) = opened {
        let status = agent.wait_exit(Duration::from_millis(100));
        panic!("{error}; the agent: {status:?}\n{}", agent.logs());
    }
    // Closing the writer is the end of the file for the agent.
    writer.unwrap().write_all(text.as_bytes()).unwrap();
}

/// `POST /agent/v1/quit` stops the agent (exit 0, pid file removed) on a listener with
/// `agent_api { enable_quit = true }`, and is not served on a listener without it.
#[tokio::test]
async fn quit_endpoint_stops_the_agent_with_exit_0() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("quit");
    let d = dir.path();
    let login = Login::new(vault, d);
    let (closed, open) = (e2e::free_port(), e2e::free_port());
    let listeners = format!(
        "{}{}",
        tcp_listener(closed, ""),
        tcp_listener(open, "  agent_api {\n    enable_quit = true\n  }\n")
    );
    let path = lifecycle_config(vault, &login, d, &listeners);
    let http = reqwest::Client::new();

    let mut agent = Agent::start(&path, &[]).unwrap();
    agent.wait_for_log("agent started", LOGIN).unwrap();
    let token = token_in(&d.join("token"));

    let refused = http
        .post(format!("http://127.0.0.1:{closed}/agent/v1/quit"))
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error(), "{}", refused.status());
    e2e::pause(Duration::from_millis(300));
    assert!(
        d.join("agent.pid").exists(),
        "the agent stopped:\n{}",
        agent.logs()
    );

    let quit = http
        .post(format!("http://127.0.0.1:{open}/agent/v1/quit"))
        .send()
        .await
        .unwrap();
    assert!(quit.status().is_success(), "{}", quit.status());
    let status = agent.wait_exit(Duration::from_secs(15)).unwrap();
    assert_eq!(status.code(), Some(0), "{}", agent.logs());
    assert!(!d.join("agent.pid").exists(), "the pid file is still there");
    let [role_id, secret_id] = login.credentials();
    agent.assert_no_secrets(&[&token, role_id, secret_id]);
}

/// `-exit-after-auth` given on the command line wins over `exit_after_auth` in the file,
/// both ways.
#[test]
fn exit_after_auth_flag_overrides_the_file() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("exit-after-auth");
    let d = dir.path();
    let login = Login::new(vault, d);
    let [role_id, secret_id] = login.credentials();

    for (in_file, flag, exits) in [
        (false, "-exit-after-auth", true),
        (false, "-exit-after-auth=true", true),
        (true, "-exit-after-auth=false", false),
    ] {
        let sink = d.join("token");
        let _ = std::fs::remove_file(&sink);
        let text = format!(
            "vault {{\n  address = \"{}\"\n}}\nexit_after_auth = {in_file}\n{}",
            vault.addr,
            login.auto_auth(&sink)
        );
        let path = write(d, "agent.hcl", &text);
        let mut agent = Agent::start(&path, &[flag]).unwrap();
        let token = token_in(&sink);
        if exits {
            let status = agent.wait_exit(LOGIN).unwrap();
            assert_eq!(status.code(), Some(0), "{flag}:\n{}", agent.logs());
        } else {
            e2e::pause(Duration::from_secs(2));
            let still_running = agent.wait_exit(Duration::from_millis(100)).is_err();
            assert!(still_running, "{flag}: the agent exited:\n{}", agent.logs());
            agent.signal(Signal::SIGTERM).unwrap();
            agent.wait_exit(Duration::from_secs(15)).unwrap();
        }
        agent.assert_no_secrets(&[&token, role_id, secret_id]);
    }
}
