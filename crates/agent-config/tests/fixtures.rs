//! Conformance against the reference agent's verdicts on its own config fixtures.
//!
//! `expected.tsv` says, per file, whether `bao agent -test-verify-only` accepted it. Invalid
//! files must be refused with a message naming the offending setting; valid files must load
//! with the values they spell out.

// The spot-check helpers run only inside tests; a panic there is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_config::{
    Config, Environment, ListenerKind, ListenerRole, LoadOptions, RestartOnSecretChanges,
    Subsystems, UseAutoAuthToken, load,
};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/openbao-configs")
}

fn load_fixture(name: &str) -> Result<agent_config::Loaded, agent_config::ConfigError> {
    let env = Environment::from_pairs([("TEST_AAD_ENV", "aad-from-env")]);
    let opts = LoadOptions {
        paths: vec![fixtures_dir().join(name)],
        env,
        ..Default::default()
    };
    load(&opts)
}

/// Fragments the refusal of each invalid fixture must contain: the setting at fault.
fn expected_refusals() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        (
            "agent-bad-config-api_proxy-cache.hcl",
            &["cache.use_auto_auth_token", "api_proxy.use_auto_auth_token"][..],
        ),
        (
            "agent-bad-config-auto_auth-nosinks-nocache-notemplates.hcl",
            &["auto_auth:", "sink"][..],
        ),
        (
            "agent-bad-config-cache-auto_auth-method-wrapping.hcl",
            &["auto_auth.method.wrap_ttl", "cache.use_auto_auth_token"][..],
        ),
        (
            "agent-bad-config-cache-force-token-no-auth-method.hcl",
            &["cache.use_auto_auth_token", "no auto_auth"][..],
        ),
        (
            "agent-bad-config-cache-no-listeners.hcl",
            &["cache:", "listener"][..],
        ),
        (
            "agent-bad-config-disable-idle-connections.hcl",
            &["disable_idle_connections", "\"foo\""][..],
        ),
        (
            "agent-bad-config-env-templates-disalowed-fields.hcl",
            &["env_template[FOO_PASSWORD].destination", "not allowed"][..],
        ),
        (
            "agent-bad-config-env-templates-invalid-signal.hcl",
            &["exec.restart_stop_signal", "notasignal"][..],
        ),
        (
            "agent-bad-config-env-templates-no-name.hcl",
            &["env_template:", "environment variable name"][..],
        ),
        (
            "agent-bad-config-env-templates-with-file-templates.hcl",
            &["template:", "env_template"][..],
        ),
        (
            "agent-bad-config-method-wrapping-and-sink-wrapping.hcl",
            &["auto_auth.sink.wrap_ttl", "auto_auth.method.wrap_ttl"][..],
        ),
        (
            "agent-config-cache-persist-empty-type.hcl",
            &["cache.persist.type", "persist type"][..],
        ),
        ("agent-config-cache2.hcl", &["cache:", "listener"][..]),
        (
            "agent-config-template_config.hcl",
            &["no auto_auth, cache or listener"][..],
        ),
        (
            "agent-config1.hcl",
            &["no auto_auth, cache or listener"][..],
        ),
    ])
}

/// Spot checks of what each valid fixture spells out.
fn spot_check(name: &str, c: &Config) {
    let auto_auth = c.auto_auth.as_ref();
    let method = auto_auth.map(|a| &a.method);
    let sinks = auto_auth.map_or(&[][..], |a| &a.sinks[..]);
    match name {
        "agent-config-api_proxy-auto_auth-all-api_proxy-config.hcl" => {
            assert_eq!(
                c.api_proxy.as_ref().unwrap().use_auto_auth_token,
                UseAutoAuthToken::Force
            );
            assert_eq!(method.unwrap().kind, "aws");
            assert_eq!(
                method.unwrap().config.string("role").unwrap().as_deref(),
                Some("foobar")
            );
        }
        "agent-config-cache-auto_auth-force.hcl" => {
            assert_eq!(
                c.api_proxy.as_ref().unwrap().use_auto_auth_token,
                UseAutoAuthToken::Force
            );
            assert!(c.cache.is_some());
        }
        "agent-config-cache-auto_auth-no-sink.hcl" => {
            assert_eq!(
                c.api_proxy.as_ref().unwrap().use_auto_auth_token,
                UseAutoAuthToken::Enabled
            );
            assert!(sinks.is_empty());
        }
        "agent-config-cache-embedded-type.hcl" | "proxy-config-cache-embedded-type.hcl" => {
            assert_eq!(c.listeners.len(), 4);
            assert_eq!(c.listeners[0].kind, ListenerKind::Unix);
            assert_eq!(c.listeners[0].socket_mode.as_deref(), Some("configmode"));
            assert!(c.listeners[0].socket_mode_bits().is_err());
            assert_eq!(c.listeners[2].role, ListenerRole::MetricsOnly);
            assert!(!c.listeners[3].tls_disable);
            assert_eq!(c.listeners[3].address, "127.0.0.1:8400");
            let persist = c.cache.as_ref().unwrap().persist.as_ref().unwrap();
            assert!(persist.keep_after_import && persist.exit_on_err);
            assert!(c.vault.tls_skip_verify);
            assert_eq!(c.vault.address, "http://127.0.0.1:1111");
            assert_eq!(sinks[0].aad.as_ref().map(|a| a.expose()), Some("foobar"));
            assert_eq!(sinks[0].config.mode, 0o640);
        }
        "agent-config-cache-no-auto_auth.hcl" => {
            assert!(c.auto_auth.is_none() && c.cache.is_some() && c.api_proxy.is_none());
            assert!(c.listeners[0].tls_disable);
        }
        "agent-config-cache-persist-false.hcl" => {
            let persist = c.cache.as_ref().unwrap().persist.as_ref().unwrap();
            assert!(!persist.keep_after_import && !persist.exit_on_err);
            assert_eq!(persist.path, Path::new("/vault/agent-cache/"));
        }
        "agent-config-disable-idle-connections-all.hcl" => {
            let all = Subsystems {
                auto_auth: true,
                proxying: true,
                templating: true,
            };
            assert_eq!(c.disable_idle_connections, all);
            assert_eq!(c.disable_keep_alives, Subsystems::default());
        }
        "agent-config-disable-keep-alives-all.hcl" => {
            let all = Subsystems {
                auto_auth: true,
                proxying: true,
                templating: true,
            };
            assert_eq!(c.disable_keep_alives, all);
        }
        "agent-config-disable-idle-connections-auto-auth.hcl" => {
            let only = Subsystems {
                auto_auth: true,
                ..Subsystems::default()
            };
            assert_eq!(c.disable_idle_connections, only);
        }
        "agent-config-disable-keep-alives-auto-auth.hcl" => {
            let only = Subsystems {
                auto_auth: true,
                ..Subsystems::default()
            };
            assert_eq!(c.disable_keep_alives, only);
        }
        "agent-config-disable-idle-connections-proxying.hcl" => {
            let only = Subsystems {
                proxying: true,
                ..Subsystems::default()
            };
            assert_eq!(c.disable_idle_connections, only);
            assert_eq!(method.unwrap().namespace.as_deref(), Some("my-namespace/"));
        }
        "agent-config-disable-keep-alives-proxying.hcl" => {
            let only = Subsystems {
                proxying: true,
                ..Subsystems::default()
            };
            assert_eq!(c.disable_keep_alives, only);
        }
        "agent-config-disable-idle-connections-empty.hcl"
        | "agent-config-disable-keep-alives-empty.hcl" => {
            assert_eq!(c.disable_idle_connections, Subsystems::default());
            assert_eq!(c.disable_keep_alives, Subsystems::default());
            assert_eq!(sinks[0].dh_type.as_deref(), Some("curve25519"));
        }
        "agent-config-embedded-type.hcl" | "agent-config.hcl" => {
            assert_eq!(
                c.log.file.as_deref(),
                Some("/var/log/vault/vault-agent.log")
            );
            assert_eq!(c.pid_file.as_deref(), Some(Path::new("./pidfile")));
            assert_eq!(method.unwrap().namespace.as_deref(), Some("my-namespace/"));
            assert_eq!(method.unwrap().mount_path, "auth/aws");
            assert_eq!(sinks.len(), 2);
            assert_eq!(sinks[1].wrap_ttl, Some(Duration::from_secs(300)));
            assert!(sinks[1].derive_key && !sinks[0].derive_key);
            assert_eq!(sinks[1].aad_env_var.as_deref(), Some("TEST_AAD_ENV"));
            assert_eq!(
                sinks[1].aad.as_ref().map(|a| a.expose()),
                Some("aad-from-env")
            );
            assert_eq!(
                sinks[1].dh_path.as_deref(),
                Some(Path::new("/tmp/file-foo-dhpath2"))
            );
        }
        "agent-config-env-templates-complex.hcl" => {
            let names: Vec<&str> = c.env_templates.iter().map(|e| e.name.as_str()).collect();
            assert_eq!(names, ["FOO_PASSWORD", "FOO_USER"]);
            let exec = c.exec.as_ref().unwrap();
            assert_eq!(exec.command, ["env"]);
            assert_eq!(
                exec.restart_on_secret_changes,
                RestartOnSecretChanges::Never
            );
            assert_eq!(exec.restart_stop_signal, "SIGINT");
            assert!(c.template_config.exit_on_retry_failure);
            assert_eq!(
                c.template_config.static_secret_render_interval,
                Duration::from_secs(300)
            );
            assert_eq!(method.unwrap().kind, "token_file");
        }
        "agent-config-env-templates-with-source.hcl" => {
            assert_eq!(
                c.env_templates[0].source.as_deref(),
                Some(Path::new("/path/on/disk/to/template.ctmpl"))
            );
            assert_eq!(c.exec.as_ref().unwrap().restart_stop_signal, "SIGTERM");
        }
        "agent-config-method-exit-on-err.hcl" => {
            let method = method.unwrap();
            assert!(method.exit_on_err);
            assert_eq!(method.wrap_ttl, Some(Duration::from_secs(300)));
            assert_eq!(method.min_backoff, Some(Duration::from_secs(5)));
            assert_eq!(method.max_backoff, Some(Duration::from_secs(120)));
        }
        "agent-config-method-wrapping.hcl" => {
            let method = method.unwrap();
            assert_eq!(method.wrap_ttl, Some(Duration::from_secs(300)));
            assert_eq!(method.effective_min_backoff(), Duration::from_secs(1));
            assert_eq!(sinks.len(), 1);
        }
        "agent-config-template-full-nosink.hcl" => {
            let t = &c.templates[0];
            assert_eq!(t.perms, Some(0o655));
            assert_eq!(t.command, ["restart service foo"]);
            assert_eq!(t.command_timeout, Duration::from_secs(60));
            assert!(t.backup && t.error_on_missing_key && t.create_dest_dirs);
            assert_eq!(t.left_delimiter.as_deref(), Some("<<"));
            assert_eq!(
                t.sandbox_path.as_deref(),
                Some(Path::new("/path/on/disk/where"))
            );
            let wait = t.wait.unwrap();
            assert_eq!(
                (wait.min, wait.max),
                (Duration::from_secs(10), Duration::from_secs(40))
            );
            assert_eq!(method.unwrap().namespace.as_deref(), Some("my-namespace/"));
        }
        "agent-config-template-many-nosink.hcl" | "agent-config-template-many.hcl" => {
            assert_eq!(c.templates.len(), 2);
            assert_eq!(c.templates[0].perms, Some(0o600));
            assert_eq!(c.templates[1].perms, Some(0o755));
            assert!(c.templates[1].backup && !c.templates[0].backup);
            let wait = c.templates[1].wait.unwrap();
            assert_eq!(
                (wait.min, wait.max),
                (Duration::from_secs(2), Duration::from_secs(10))
            );
        }
        "agent-config-template-min.hcl" => {
            assert_eq!(c.templates.len(), 1);
            assert_eq!(c.templates[0].perms, None);
            assert!(c.templates[0].create_dest_dirs && c.templates[0].error_fatal);
        }
        "agent-config-template-with-cache.hcl" => {
            assert_eq!(c.templates.len(), 1);
            assert!(c.cache.is_some() && c.listeners.is_empty());
        }
        "agent-config-vault-retry-empty.hcl" => {
            assert_eq!(c.vault.retry.num_retries, 0);
            assert_eq!(c.vault.retry.attempts(), 12);
        }
        "agent-config2.hcl" => {
            assert_eq!(c.listeners.len(), 1);
            assert_eq!(c.listeners[0].address, "127.0.0.1:8300");
            assert!(c.auto_auth.is_none() && c.cache.is_none());
        }
        other => panic!("no spot check written for valid fixture {other}"),
    }
}

#[test]
fn fixtures_match_the_reference_verdicts() {
    let tsv = std::fs::read_to_string(fixtures_dir().join("expected.tsv"))
        .expect("the shared fixtures must be present next to the checkout");
    let refusals = expected_refusals();
    let (mut valid, mut invalid) = (0, 0);

    for row in tsv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut columns = row.split('\t');
        let (Some(name), Some(verdict)) = (columns.next(), columns.next()) else {
            panic!("malformed row {row:?}");
        };
        match verdict {
            "valid" => {
                let loaded = load_fixture(name).unwrap_or_else(|e| panic!("{name}: {e}"));
                spot_check(name, &loaded.config);
                valid += 1;
            }
            "invalid" => {
                let error = match load_fixture(name) {
                    Ok(_) => panic!("{name}: the reference refuses it, we loaded it"),
                    Err(error) => error.to_string(),
                };
                let fragments = refusals
                    .get(name)
                    .unwrap_or_else(|| panic!("{name}: no fragments"));
                for fragment in *fragments {
                    assert!(
                        error.contains(fragment),
                        "{name}: {error:?} lacks {fragment:?}"
                    );
                }
                assert!(
                    error.contains(name),
                    "{name}: {error:?} does not name the file"
                );
                invalid += 1;
            }
            other => panic!("{name}: unknown verdict {other}"),
        }
    }

    assert_eq!((valid, invalid), (28, 15), "every fixture must be judged");
}

/// Every error from a fixture points at a line of the file, except whole-config rules.
#[test]
fn refusals_point_at_a_line() {
    for name in expected_refusals().keys() {
        let error = load_fixture(name).unwrap_err();
        let whole_config = error.message.contains("nothing to do");
        assert_eq!(error.line() == 0, whole_config, "{name}: {error}");
    }
}

/// Loading valid fixtures together exercises the merge on real files, and rules that only
/// break once merged (case B06 across files) name both files.
#[test]
fn valid_fixtures_merge_in_order() {
    let load_all = |names: &[&str]| {
        let paths = names.iter().map(|n| fixtures_dir().join(n)).collect();
        load(&LoadOptions {
            paths,
            ..Default::default()
        })
    };

    let names = [
        "agent-config2.hcl",
        "agent-config-template-min.hcl",
        "agent-config-cache-persist-false.hcl",
    ];
    let c = load_all(&names).unwrap().config;
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.templates.len(), 1);
    assert_eq!(
        c.auto_auth.as_ref().unwrap().method.namespace.as_deref(),
        Some("my-namespace/")
    );
    assert!(c.cache.as_ref().unwrap().persist.is_some());

    // The last auto_auth wins whole: the wrapping one, which templates cannot use.
    let names = [
        "agent-config-template-min.hcl",
        "agent-config-method-wrapping.hcl",
    ];
    let error = load_all(&names).unwrap_err().to_string();
    assert!(
        error.contains("agent-config-method-wrapping.hcl:9: auto_auth.method.wrap_ttl"),
        "{error}"
    );
    assert!(
        error.contains("agent-config-template-min.hcl:29)"),
        "{error}"
    );
}
