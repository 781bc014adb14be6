//! Whole-pipeline tests on in-memory files: front-ends, decoding, merging, layering, validation.

use std::sync::Arc;
use std::time::Duration;

use super::*;

/// Loads `files` (name, text) in order with the given environment and flags.
fn load_with(
    files: &[(&str, &str)],
    env: &[(&str, &str)],
    overrides: Overrides,
) -> Result<Loaded, ConfigError> {
    let sources: Vec<(Arc<str>, String)> = files
        .iter()
        .map(|(name, text)| (Arc::from(*name), (*text).to_owned()))
        .collect();
    let first = Location::new(&Arc::from(files.first().map_or("none", |f| f.0)), 0);
    let env = Environment::from_pairs(env.iter().copied());
    load_sources(&sources, &first, &env, &overrides)
}

fn load_one(name: &str, text: &str) -> Result<Loaded, ConfigError> {
    load_with(&[(name, text)], &[], Overrides::default())
}

fn config(text: &str) -> Config {
    match load_one("agent.hcl", text) {
        Ok(loaded) => loaded.config,
        Err(error) => panic!("{error}\n--- config:\n{text}"),
    }
}

fn json_config(text: &str) -> Config {
    match load_one("agent.json", text) {
        Ok(loaded) => loaded.config,
        Err(error) => panic!("{error}\n--- config:\n{text}"),
    }
}

/// Asserts that loading fails with exactly `expected` as the one-line message.
fn check_error(text: &str, expected: &str) {
    match load_one("agent.hcl", text) {
        Ok(_) => panic!("expected an error ({expected}) for:\n{text}"),
        Err(error) => assert_eq!(error.to_string(), expected, "config:\n{text}"),
    }
}

const AUTH: &str = r#"
auto_auth {
  method "approle" {
    config = { role_id_file_path = "/r" }
  }
  sink "file" { config = { path = "/tmp/token" } }
}
"#;

fn with_auth(extra: &str) -> String {
    format!("{AUTH}\n{extra}")
}

#[test]
fn label_forms_are_equivalent() {
    let forms = [
        "listener \"tcp\" {\n tls_disable = true\n}",
        "listener {\n type = \"tcp\"\n tls_disable = true\n}",
        "listener = {\n type = \"tcp\"\n tls_disable = true\n}",
        "listener \"TCP\" { tls_disable = true }",
    ];
    for form in forms {
        let config = config(&with_auth(form));
        assert_eq!(config.listeners.len(), 1, "{form}");
        assert_eq!(config.listeners[0].kind, ListenerKind::Tcp, "{form}");
        assert_eq!(
            config.listeners[0].address, DEFAULT_LISTENER_ADDRESS,
            "{form}"
        );
    }

    let methods = [
        "method \"AppRole\" { config = { role_id_file_path = \"/r\" } }",
        "method { type = \"approle\" \n config = { role_id_file_path = \"/r\" } }",
        "method = { type = \"approle\" \n config { role_id_file_path = \"/r\" } }",
    ];
    for method in methods {
        let text = format!(
            "auto_auth {{\n {method}\n sink \"file\" {{ config = {{ path = \"/t\" }} }}\n}}"
        );
        let config = config(&text);
        let method = &config.auto_auth.as_ref().unwrap().method;
        assert_eq!(method.kind, "approle", "{text}");
        assert_eq!(method.mount_path, "auth/approle", "{text}");
        assert_eq!(
            method
                .config
                .string("role_id_file_path")
                .unwrap()
                .as_deref(),
            Some("/r")
        );
    }

    let persists = [
        "persist \"Kubernetes\" { path = \"/c\" }",
        "persist { type = \"kubernetes\" \n path = \"/c\" }",
        "persist = { type = \"kubernetes\" \n path = \"/c\" }",
    ];
    for persist in persists {
        let text = with_auth(&format!(
            "cache {{\n {persist}\n}}\nlistener \"unix\" {{ address = \"/s\" \n tls_disable = true }}"
        ));
        let config = config(&text);
        let persist = config.cache.unwrap().persist.unwrap();
        assert_eq!(persist.kind, "kubernetes");
        assert_eq!(persist.path, std::path::Path::new("/c"));
        assert_eq!(
            persist.service_account_token_file.to_str(),
            Some(DEFAULT_SERVICE_ACCOUNT_TOKEN_FILE)
        );
    }
}

#[test]
fn a_block_written_once_or_twice_has_the_same_shape() {
    let template = "template {\n contents = \"x\"\n destination = \"/d\"\n}\n";
    assert_eq!(config(&with_auth(template)).templates.len(), 1);
    assert_eq!(config(&with_auth(&template.repeat(2))).templates.len(), 2);

    let sink = "sink \"file\" { config = { path = \"/t\" } }";
    for count in [1, 2, 3] {
        let text = format!(
            "auto_auth {{\n method \"approle\" {{ config = {{ role_id_file_path = \"/r\" }} }}\n{}\n}}",
            sink.repeat(count)
        );
        assert_eq!(config(&text).auto_auth.unwrap().sinks.len(), count);
    }
}

#[test]
fn sinks_may_be_wrapped_in_a_sinks_block() {
    let hcl = r#"
auto_auth {
  method "approle" { config = { role_id_file_path = "/r" } }
  sinks {
    sink { type = "file" config = { path = "/a" } }
    sink "file" { config = { path = "/b" } }
  }
  sink "file" { config = { path = "/c" } }
}"#;
    let sinks = config(hcl).auto_auth.unwrap().sinks;
    let paths: Vec<_> = sinks
        .iter()
        .map(|s| s.config.path.display().to_string())
        .collect();
    assert_eq!(paths, ["/c", "/a", "/b"]);

    let json_shapes = [
        r#"{"auto_auth": {"method": {"type": "approle", "config": {"role_id_file_path": "/r"}},
            "sinks": [{"sink": {"type": "file", "config": {"path": "/a"}}}]}}"#,
        r#"{"auto_auth": {"method": {"type": "approle", "config": {"role_id_file_path": "/r"}},
            "sink": [{"type": "file", "config": {"path": "/a"}}]}}"#,
        r#"{"auto_auth": {"method": [{"type": "approle", "config": {"role_id_file_path": "/r"}}],
            "sink": {"type": "file", "config": {"path": "/a"}}}}"#,
    ];
    for json in json_shapes {
        let sinks = json_config(json).auto_auth.unwrap().sinks;
        assert_eq!(sinks.len(), 1, "{json}");
        assert_eq!(sinks[0].config.path, std::path::Path::new("/a"), "{json}");
    }
}

/// The shape the Kubernetes injector writes.
#[test]
fn injector_json_loads() {
    let json = r#"{
  "auto_auth": {
    "method": {"type": "kubernetes", "mount_path": "auth/kubernetes/",
               "config": {"role": "app", "token_path": "/var/run/secrets/token"}},
    "sink": [{"type": "file", "config": {"path": "/home/vault/.vault-token", "mode": 416}}]
  },
  "exit_after_auth": false,
  "pid_file": "/home/vault/.pid",
  "vault": {"address": "https://vault.vault.svc:8200", "tls_skip_verify": "true"},
  "template": [{"destination": "/vault/secrets/db", "contents": "{{ . }}", "left_delimiter": "{{",
                "right_delimiter": "}}", "perms": "0644", "error_on_missing_key": true}],
  "template_config": {"exit_on_retry_failure": true, "static_secret_render_interval": "30s"},
  "listener": [{"type": "tcp", "address": "127.0.0.1:8200", "tls_disable": true}],
  "cache": {"use_auto_auth_token": "force"}
}"#;
    let config = json_config(json);
    let auto_auth = config.auto_auth.as_ref().unwrap();
    assert_eq!(auto_auth.method.mount_path, "auth/kubernetes");
    assert_eq!(auto_auth.sinks[0].config.mode, 0o640);
    assert!(config.vault.tls_skip_verify);
    assert_eq!(config.templates[0].perms, Some(0o644));
    assert_eq!(
        config.template_config.static_secret_render_interval,
        Duration::from_secs(30)
    );
    assert_eq!(
        config.api_proxy.unwrap().use_auto_auth_token,
        UseAutoAuthToken::Force
    );
}

/// JSON writes a type label as a key holding the block, as HCL v1 reads JSON.
#[test]
fn json_label_forms_are_labels() {
    let json = r#"{
  "auto_auth": {
    "method": {"approle": {"config": {"role_id_file_path": "/r"}}},
    "sink": {"file": {"config": {"path": "/tmp/t"}}}
  },
  "cache": {"persist": {"kubernetes": {"path": "/p"}}},
  "listener": [
    {"tcp": {"address": "127.0.0.1:8101", "tls_disable": true, "agent_api": {"enable_quit": true}}},
    {"unix": {"address": "/tmp/a.sock", "tls_disable": true}}
  ]
}"#;
    let config = json_config(json);
    let auto_auth = config.auto_auth.unwrap();
    assert_eq!(auto_auth.method.kind, "approle");
    assert_eq!(auto_auth.sinks[0].kind, "file");
    assert_eq!(config.cache.unwrap().persist.unwrap().kind, "kubernetes");
    let kinds: Vec<_> = config.listeners.iter().map(|l| l.kind).collect();
    assert_eq!(kinds, [ListenerKind::Tcp, ListenerKind::Unix]);
    assert!(config.listeners[0].enable_quit);

    let one = json_config(r#"{"cache": {}, "listener": {"tcp": {"tls_disable": true}}}"#);
    assert_eq!(one.listeners[0].kind, ListenerKind::Tcp);

    // A block the listener holds itself is not taken for a label.
    let error = load_one(
        "agent.json",
        r#"{"cache": {}, "listener": {"agent_api": {}}}"#,
    );
    assert!(error.is_err(), "{:?}", error.map(|l| l.config.listeners));
}

/// HCL v1 forms that an HCL 2 parser rejects, as real configs write them.
#[test]
fn hcl1_only_forms_load() {
    let hcl = r#"
auto_auth = {
  method "kubernetes" { config = { role = "app" } }
  sink { type = "file" config = { path = "/t", mode = 0x1a0 } }
}
"vault" = { address = "http://127.0.0.1:8200" }
listener "tcp" { address = "127.0.0.1:8100" tls_disable = true }
"#;
    let config = config(hcl);
    assert_eq!(config.auto_auth.unwrap().sinks[0].config.mode, 0o640);
    assert_eq!(config.vault.address, "http://127.0.0.1:8200");
    assert_eq!(config.listeners[0].address, "127.0.0.1:8100");
}

/// Case B01, our rule: octal where the author clearly meant octal (HCL `0640`, any string),
/// decimal in JSON, and an error naming the field for a bare HCL `640` — never 0o1200.
#[test]
fn sink_mode_follows_one_documented_rule() {
    let sink = |mode: &str| {
        format!(
            "auto_auth {{\n method \"approle\" {{ config = {{ role_id_file_path = \"/r\" }} }}\n sink \"file\" {{\n  config = {{\n   path = \"/t\"\n   {mode}\n  }}\n }}\n}}"
        )
    };
    let cases = [
        ("mode = 0640", Ok(0o640)),
        ("mode = \"0640\"", Ok(0o640)),
        ("mode = \"640\"", Ok(0o640)),
        ("mode = 0600", Ok(0o600)),
        ("", Ok(DEFAULT_SINK_MODE)),
        (
            "mode = 640",
            Err(
                "agent.hcl:6: auto_auth.sink.config.mode: 640 is read as decimal (0o1200), which is not a file mode; write it in octal with a leading zero, e.g. 0640",
            ),
        ),
        (
            "mode = 04755",
            Err(
                "agent.hcl:6: auto_auth.sink.config.mode: mode 0o4755 has bits above 0o777; only permission bits (0 to 0777) are allowed",
            ),
        ),
    ];
    for (line, expected) in cases {
        let got = load_one("agent.hcl", &sink(line))
            .map(|l| l.config.auto_auth.unwrap().sinks[0].config.mode)
            .map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_owned), "{line}");
    }

    let json = |mode: &str| {
        format!(
            r#"{{"auto_auth": {{"method": {{"type": "approle"}}, "sink": {{"type": "file", "config": {{"path": "/t", "mode": {mode}}}}}}}}}"#
        )
    };
    let mode_of = |text: String| {
        load_one("agent.json", &text).map(|l| l.config.auto_auth.unwrap().sinks[0].config.mode)
    };
    assert_eq!(mode_of(json("416")).unwrap(), 0o640);
    assert_eq!(mode_of(json("\"0640\"")).unwrap(), 0o640);
    let error = mode_of(json("640")).unwrap_err().to_string();
    assert!(
        error.contains("auto_auth.sink.config.mode: mode 0o1200 has bits above 0o777"),
        "{error}"
    );
}

/// The same rule covers every mode-like field, not only the sink's.
#[test]
fn template_perms_follow_the_mode_rule() {
    let template = |perms: &str| {
        with_auth(&format!(
            "template {{\n contents = \"x\"\n destination = \"/d\"\n {perms}\n}}"
        ))
    };
    let perms_of = |text: String| load_one("agent.hcl", &text).map(|l| l.config.templates[0].perms);
    assert_eq!(perms_of(template("perms = 0655")).unwrap(), Some(0o655));
    assert_eq!(perms_of(template("perms = \"0644\"")).unwrap(), Some(0o644));
    assert_eq!(perms_of(template("")).unwrap(), None);
    let error = perms_of(template("perms = 644")).unwrap_err().to_string();
    assert!(
        error.starts_with("agent.hcl:12: template.perms: 644 is read as decimal"),
        "{error}"
    );
}

#[test]
fn durations_booleans_and_auto_auth_token_values() {
    let text = |value: &str| {
        with_auth(&format!(
            "cache {{ use_auto_auth_token = {value} }}\nlistener \"tcp\" {{ tls_disable = \"1\" }}"
        ))
    };
    let cases = [
        ("true", Ok(UseAutoAuthToken::Enabled)),
        ("\"true\"", Ok(UseAutoAuthToken::Enabled)),
        ("false", Ok(UseAutoAuthToken::Disabled)),
        ("\"f\"", Ok(UseAutoAuthToken::Disabled)),
        ("\"force\"", Ok(UseAutoAuthToken::Force)),
        ("\"FoRcE\"", Ok(UseAutoAuthToken::Force)),
        (
            "\"always\"",
            Err("agent.hcl:9: cache.use_auto_auth_token: expected true, false or \"force\""),
        ),
    ];
    for (value, expected) in cases {
        let got = load_one("agent.hcl", &text(value))
            .map(|l| l.config.api_proxy.unwrap().use_auto_auth_token)
            .map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_owned), "{value}");
    }

    let method = |extra: &str| {
        format!(
            "auto_auth {{\n method \"approle\" {{\n {extra}\n }}\n sink \"file\" {{ config = {{ path = \"/t\" }} }}\n}}"
        )
    };
    let loaded = config(&method(
        "min_backoff = 2\n max_backoff = \"1h30m\"\n exit_on_err = \"t\"",
    ));
    let method_config = loaded.auto_auth.unwrap().method;
    assert_eq!(method_config.min_backoff, Some(Duration::from_secs(2)));
    assert_eq!(
        method_config.effective_max_backoff(),
        Duration::from_secs(5400)
    );
    assert!(method_config.exit_on_err);
    check_error(
        &method("min_backoff = \"2x\""),
        "agent.hcl:3: auto_auth.method.min_backoff: invalid duration \"2x\"; use seconds (300) or units (\"5m\", \"1h30m\", \"2d\")",
    );
}

#[test]
fn singletons_and_method_count() {
    check_error(
        &format!("{AUTH}\nvault {{}}\nvault {{}}"),
        "agent.hcl:10: vault: at most one \"vault\" block is allowed here",
    );
    check_error(
        &format!("{AUTH}\n{AUTH}"),
        "agent.hcl:10: auto_auth: at most one \"auto_auth\" block is allowed here",
    );
    check_error(
        "auto_auth {\n method \"a\" {}\n method \"b\" {}\n}",
        "agent.hcl:3: auto_auth.method: exactly one method block is allowed, found more",
    );
    check_error(
        "auto_auth {\n sink \"file\" { config = { path = \"/t\" } }\n}",
        "agent.hcl:1: auto_auth.method: exactly one method block is required, found none",
    );
    check_error(
        &with_auth(
            "cache {\n persist \"kubernetes\" { path = \"/a\" }\n persist \"kubernetes\" { path = \"/b\" }\n}",
        ),
        "agent.hcl:11: cache.persist: at most one \"persist\" block is allowed here",
    );
}

#[test]
fn unknown_keys_warn_with_the_closest_known_key() {
    let text = "vault {\n  adress = \"http://x\"\n}\nauto_auht {}\nlistener \"tcp\" {\n tls_disable = true\n max_request_duration = \"90s\"\n}";
    let loaded = load_one("agent.hcl", text).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "agent.hcl:2: unknown key \"vault.adress\" (did you mean \"address\"?)",
            "agent.hcl:7: key \"listener.max_request_duration\" is accepted for compatibility but has no effect",
            "agent.hcl:4: unknown key \"auto_auht\" (did you mean \"auto_auth\"?)",
        ]
    );
    assert_eq!(loaded.warnings[0].key, "vault.adress");
}

#[test]
fn a_socket_mode_that_cannot_apply_warns_at_its_line() {
    let text = "cache {}\nlistener \"unix\" {\n  address = \"/tmp/a.sock\"\n  tls_disable = true\n  socket_mode = \"rw\"\n}";
    let loaded = load_one("agent.hcl", text).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "agent.hcl:5: listener.socket_mode: \"rw\" is not an octal mode between 0 and 0777; the socket cannot be created"
        ]
    );
}

/// In template, env_template and exec blocks an unknown key is an error, as in Vault.
#[test]
fn unknown_keys_in_template_exec_blocks_are_errors() {
    check_error(
        &with_auth("template {\n contents = \"x\"\n destinaton = \"/d\"\n}"),
        "agent.hcl:11: template.destinaton: unknown key (did you mean \"destination\"?)",
    );
    check_error(
        &with_auth("template {\n contents = \"x\"\n destination = \"/d\"\n bakup = true\n}"),
        "agent.hcl:12: template.bakup: unknown key (did you mean \"backup\"?); allowed keys: source, contents, destination, command, command_timeout, exec, wait, function_denylist, function_blacklist, create_dest_dirs, perms, user, uid, group, gid, backup, error_on_missing_key, error_fatal, left_delimiter, right_delimiter, sandbox_path",
    );
    let env_exec = "env_template \"A\" {\n contents = \"x\"\n}\nexec {\n command = [\"env\"]\n restart = \"never\"\n}";
    let error = load_one("agent.hcl", &with_auth(env_exec))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("agent.hcl:14: exec.restart: unknown key"),
        "{error}"
    );
}

#[test]
fn env_template_rules() {
    let ok = config(&with_auth(
        "env_template \"DB_PASS\" {\n contents = \"x\"\n}\nexec {\n command = \"./app --flag\"\n restart_stop_signal = \"int\"\n}",
    ));
    assert_eq!(ok.env_templates[0].name, "DB_PASS");
    let exec = ok.exec.unwrap();
    assert_eq!(exec.command, ["./app --flag"]);
    assert_eq!(exec.restart_stop_signal, "SIGINT");
    assert_eq!(
        exec.restart_on_secret_changes,
        RestartOnSecretChanges::Always
    );

    let cases = [
        (
            "env_template {\n contents = \"x\"\n}\nexec { command = [\"env\"] }",
            "agent.hcl:9: env_template: needs exactly one environment variable name: env_template \"NAME\" { ... }",
        ),
        (
            "env_template \"A\" {\n contents = \"x\"\n perms = 0600\n}\nexec { command = [\"env\"] }",
            "agent.hcl:11: env_template[A].perms: 'perms' is not allowed: an env_template only renders a variable's value",
        ),
        (
            "env_template \"A\" {\n contents = \"x\"\n}",
            "agent.hcl:9: env_template[A]: env_template entries need a top-level exec block to run the program",
        ),
        (
            "exec { command = [\"env\"] }",
            "agent.hcl:9: exec: an exec block needs at least one env_template to supply its environment",
        ),
        (
            "env_template \"A\" { contents = \"x\" }\nenv_template \"A\" { source = \"/s\" }\nexec { command = [\"env\"] }",
            "agent.hcl:10: env_template[A]: duplicate environment variable name (first defined at agent.hcl:9)",
        ),
        (
            "env_template \"A\" {\n contents = \"x\"\n source = \"/s\"\n}\nexec { command = [\"env\"] }",
            "agent.hcl:9: env_template[A].contents: 'contents' and 'source' cannot be specified together",
        ),
        (
            "env_template \"A\" { error_fatal = true }\nexec { command = [\"env\"] }",
            "agent.hcl:9: env_template[A].source: either 'contents' or 'source' must be specified",
        ),
        (
            "env_template \"A\" { contents = \"x\" }\nexec {\n command = []\n}",
            "agent.hcl:11: exec.command: needs a non-empty command, e.g. [\"./my-app\", \"arg\"]",
        ),
        (
            "env_template \"A\" { contents = \"x\" }\nexec {\n command = [\"env\"]\n restart_on_secret_changes = \"sometimes\"\n}",
            "agent.hcl:12: exec.restart_on_secret_changes: unexpected value \"sometimes\"; allowed: always, never",
        ),
        (
            "env_template \"A\" { contents = \"x\" }\nexec {\n command = [\"env\"]\n restart_stop_signal = \"SIGNOPE\"\n}",
            "agent.hcl:12: exec.restart_stop_signal: invalid signal \"SIGNOPE\"; use a signal name such as SIGTERM, SIGINT or SIGHUP",
        ),
        (
            "env_template \"A\" { contents = \"x\" }\nexec { command = [\"env\"] }\ntemplate {\n contents = \"x\"\n destination = \"/d\"\n}",
            "agent.hcl:11: template: cannot be used together with env_template entries (agent.hcl:9); use one or the other",
        ),
        (
            "env_template \"A\" { contents = \"x\" }\nexec { command = [\"env\"] }\napi_proxy {}\nlistener \"tcp\" { tls_disable = true }",
            "agent.hcl:11: api_proxy: cannot be used together with env_template entries (agent.hcl:9)",
        ),
    ];
    for (extra, expected) in cases {
        check_error(&with_auth(extra), expected);
    }

    let json = r#"{"auto_auth": {"method": {"type": "token_file"}},
        "env_template": {"A": {"contents": "x"}, "B": {"source": "/s"}}, "exec": {"command": ["env"]}}"#;
    let names: Vec<String> = json_config(json)
        .env_templates
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["A", "B"]);
}

/// Each rule of the post-merge validation, with the file, line and key it names.
#[test]
fn validation_rules_name_file_line_and_key() {
    let method = |extra: &str| format!("auto_auth {{\n method \"approle\" {{\n  {extra}\n }}");
    let cases: Vec<(String, &str)> = vec![
        (
            "pid_file = \"/p\"".to_owned(),
            "agent.hcl: no auto_auth, cache or listener block found; the agent would have nothing to do",
        ),
        (
            "cache {}".to_owned(),
            "agent.hcl:1: cache: the cache serves listeners and templates; define at least one listener or template",
        ),
        (
            "api_proxy {}\ncache {}\ntemplate {\n contents = \"x\"\n destination = \"/d\"\n}".to_owned(),
            "agent.hcl:1: api_proxy: the API proxy answers on listeners; define at least one listener",
        ),
        (
            "cache { use_auto_auth_token = true }\nlistener \"tcp\" { tls_disable = true }".to_owned(),
            "agent.hcl:1: cache.use_auto_auth_token: is true but there is no auto_auth block to get a token from",
        ),
        (
            "api_proxy { use_auto_auth_token = \"force\" }\nlistener \"tcp\" { tls_disable = true }".to_owned(),
            "agent.hcl:1: api_proxy.use_auto_auth_token: is \"force\" but there is no auto_auth block to get a token from",
        ),
        (
            "cache { use_auto_auth_token = true }\napi_proxy {\n use_auto_auth_token = true\n}\nlistener \"tcp\" { tls_disable = true }".to_owned(),
            "agent.hcl:1: cache.use_auto_auth_token: is also set as api_proxy.use_auto_auth_token (agent.hcl:3); keep only the api_proxy one",
        ),
        (
            format!("{}\n}}", method("config = { role_id_file_path = \"/r\" }")),
            "agent.hcl:1: auto_auth: the token would go nowhere: add a sink, a template or an env_template, or set api_proxy.use_auto_auth_token = true",
        ),
        (
            format!("{}\n sink \"file\" {{ config = {{ path = \"/a\" }} }}\n sink \"file\" {{ config = {{ path = \"/b\" }} }}\n}}", method("wrap_ttl = \"5m\"")),
            "agent.hcl:3: auto_auth.method.wrap_ttl: a wrapped login needs exactly one sink to hold the wrapped response, found 2",
        ),
        (
            format!("{}\n sink \"file\" {{\n  wrap_ttl = 300\n  config = {{ path = \"/a\" }}\n }}\n}}", method("wrap_ttl = \"5m\"")),
            "agent.hcl:6: auto_auth.sink.wrap_ttl: cannot wrap again: auto_auth.method.wrap_ttl (agent.hcl:3) already wraps the login; set wrap_ttl in one place",
        ),
        (
            format!("{}\n sink \"file\" {{\n  dh_type = \"p256\"\n  dh_path = \"/k\"\n  config = {{ path = \"/a\" }}\n }}\n}}", method("")),
            "agent.hcl:6: auto_auth.sink.dh_type: unknown value \"p256\"; only \"curve25519\" is supported",
        ),
        (
            format!("{}\n sink \"file\" {{\n  dh_type = \"curve25519\"\n  config = {{ path = \"/a\" }}\n }}\n}}", method("")),
            "agent.hcl:6: auto_auth.sink.dh_type: needs dh_path: set both or neither",
        ),
        (
            format!("{}\n sink \"file\" {{\n  dh_path = \"/k\"\n  config = {{ path = \"/a\" }}\n }}\n}}", method("")),
            "agent.hcl:6: auto_auth.sink.dh_path: needs dh_type: set both or neither",
        ),
        (
            format!("{}\n sink \"file\" {{\n  aad = \"x\"\n  config = {{ path = \"/a\" }}\n }}\n}}", method("")),
            "agent.hcl:6: auto_auth.sink.aad: additional authenticated data only applies with dh_type",
        ),
        (
            format!("{}\n sink \"file\" {{\n  derive_key = true\n  config = {{ path = \"/a\" }}\n }}\n}}", method("")),
            "agent.hcl:6: auto_auth.sink.derive_key: only applies with dh_type",
        ),
        (
            format!("{}\n sink \"file\" {{ config = {{ path = \"/a\" }} }}\n}}", method("min_backoff = \"5m\"")),
            "agent.hcl:3: auto_auth.method.min_backoff: 300s must be less than max_backoff (300s)",
        ),
        (
            format!("{}\n sink \"file\" {{ config = {{ path = \"/a\" }} }}\n}}", method("min_backoff = 10\n max_backoff = 5")),
            "agent.hcl:3: auto_auth.method.min_backoff: 10s must be less than max_backoff (5s)",
        ),
        (
            format!("{}\n sink \"file\" {{ mode = 1 }}\n}}", method("")),
            "agent.hcl:5: auto_auth.sink.config: a file sink needs config = { path = \"...\" }",
        ),
        (
            format!("{}\n sink \"s3\" {{ config = {{ path = \"/a\" }} }}\n}}", method("")),
            "agent.hcl:5: auto_auth.sink.type: unknown sink type \"s3\"; only \"file\" is supported",
        ),
        (
            format!("{AUTH}\nlistener \"http\" {{}}"),
            "agent.hcl:9: listener.type: unknown listener type \"http\"; allowed: tcp, unix",
        ),
        (
            format!("{AUTH}\nlistener \"tcp\" {{\n role = \"admin\"\n}}"),
            "agent.hcl:10: listener.role: unknown role \"admin\"; allowed: default, metrics_only",
        ),
        (
            format!("{AUTH}\nlistener \"tcp\" {{\n tls_cert_file = \"/c\"\n}}"),
            "agent.hcl:9: listener.tls_key_file: is required while TLS is on; set tls_cert_file and tls_key_file, or tls_disable = true for plain HTTP (listener at 127.0.0.1:8200)",
        ),
        (
            format!("{AUTH}\nlistener \"unix\" {{ tls_disable = true }}"),
            "agent.hcl:9: listener.address: a unix listener needs the socket path as address",
        ),
        (
            format!("{AUTH}\ncache {{\n max_entries = 0\n}}\nlistener \"tcp\" {{ tls_disable = true }}"),
            "agent.hcl:10: cache.max_entries: 0 is not allowed; the cache needs room for at least 1 entry",
        ),
        (
            format!("{AUTH}\ncache {{\n persist = {{ path = \"/c\" }}\n}}\nlistener \"tcp\" {{ tls_disable = true }}"),
            "agent.hcl:10: cache.persist.type: a persist type must be given: persist \"kubernetes\" { ... }",
        ),
        (
            format!("{AUTH}\ndisable_idle_connections = [\"auto-auth\", \"foo\"]"),
            "agent.hcl:9: disable_idle_connections: unknown value \"foo\"; allowed: auto-auth, caching, proxying, templating",
        ),
        (
            format!("{AUTH}\nvault {{\n client_cert = \"/c\"\n}}"),
            "agent.hcl:10: vault.client_cert: needs vault.client_key as well: set both or neither",
        ),
        (
            format!("{AUTH}\nlog_level = \"loud\""),
            "agent.hcl:9: log_level: unknown level \"loud\"; allowed: trace, debug, info, warn, error",
        ),
    ];
    for (text, expected) in cases {
        check_error(&text, expected);
    }
}

/// Case B06: a method-level wrap_ttl with the proxy's auto-auth token is refused, naming both
/// settings with their lines; the same for templates (our rule), which also need the raw token.
#[test]
fn method_wrapping_is_refused_with_auto_auth_token_or_templates() {
    let text = r#"
auto_auth {
  method "approle" {
    wrap_ttl = "5m"
    config = { role_id_file_path = "/r" }
  }
  sink "file" { config = { path = "/tmp/agent/token" } }
}
cache {
  use_auto_auth_token = true
}
listener "tcp" {
  address     = "127.0.0.1:8100"
  tls_disable = true
}"#;
    check_error(
        text,
        "agent.hcl:4: auto_auth.method.wrap_ttl: cannot be used together with cache.use_auto_auth_token (agent.hcl:10); the proxy needs the raw token — move wrap_ttl to the sink",
    );

    let with_template = text.replace("use_auto_auth_token = true", "")
        + "\ntemplate {\n contents = \"x\"\n destination = \"/d\"\n}";
    check_error(
        &with_template,
        "agent.hcl:4: auto_auth.method.wrap_ttl: cannot be used together with template (agent.hcl:16); templates need the raw token — move wrap_ttl to the sink",
    );

    // Wrapping at the sink is fine: the proxy keeps the raw token.
    let sink_wrapped = text
        .replace("    wrap_ttl = \"5m\"\n", "")
        .replace("sink \"file\" {", "sink \"file\" { wrap_ttl = \"5m\"");
    let config = config(&sink_wrapped);
    assert_eq!(
        config.auto_auth.unwrap().sinks[0].wrap_ttl,
        Some(Duration::from_secs(300))
    );
}

#[test]
fn two_files_merge_the_vault_way() {
    let first = r#"
vault { address = "http://first:8200" }
pid_file = "/first.pid"
exit_after_auth = true
disable_keep_alives = ["auto-auth"]
auto_auth {
  method "approle" { config = { role_id_file_path = "/first" } }
  sink "file" { config = { path = "/t1" } }
}
template {
  contents = "one"
  destination = "/one"
}
listener "tcp" { tls_disable = true }
log_level = "debug"
"#;
    let second = r#"
vault { tls_skip_verify = true }
exit_after_auth = false
disable_keep_alives = ["templating"]
auto_auth {
  method "kubernetes" { config = { role = "r" } }
}
template {
  contents = "two"
  destination = "/two"
}
listener "unix" {
  address = "/s"
  tls_disable = true
}
"#;
    let loaded = load_with(
        &[("a.hcl", first), ("b.hcl", second)],
        &[],
        Overrides::default(),
    );
    let config = loaded.unwrap().config;

    // Replaced whole: the second vault block has no address, so the default applies.
    assert_eq!(config.vault.address, DEFAULT_VAULT_ADDRESS);
    assert!(config.vault.tls_skip_verify);
    let auto_auth = config.auto_auth.unwrap();
    assert_eq!(auto_auth.method.kind, "kubernetes");
    assert!(auto_auth.sinks.is_empty());
    // Kept when the later file does not set it.
    assert_eq!(config.pid_file.unwrap().to_str(), Some("/first.pid"));
    assert_eq!(config.log.level, LogLevel::Debug);
    // OR-ed.
    assert!(config.exit_after_auth);
    assert_eq!(
        config.disable_keep_alives,
        Subsystems {
            auto_auth: true,
            proxying: false,
            templating: true
        }
    );
    // Appended.
    let destinations: Vec<_> = config
        .templates
        .iter()
        .map(|t| t.destination.display().to_string())
        .collect();
    assert_eq!(destinations, ["/one", "/two"]);
    assert_eq!(config.listeners.len(), 2);
    assert_eq!(config.listeners[1].location.to_string(), "b.hcl:12");
}

/// A load that fails keeps the warnings noticed before the error: a misspelt
/// `tls_disable` is why TLS settings are demanded, and the error alone would not say so.
#[test]
fn a_failed_load_keeps_the_warnings_that_explain_it() {
    let text = format!(
        "{AUTH}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:8100\"\n  tls_disabel = true\n}}\n"
    );
    let error = load_with(&[("agent.hcl", &text)], &[], Overrides::default()).unwrap_err();
    let warnings: Vec<String> = error.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .contains("unknown key \"listener.tls_disabel\" (did you mean \"tls_disable\"?)"),
        "{warnings:?}"
    );
    assert!(error.to_string().contains("tls_cert_file"), "{error}");
}

/// A config file is read up to 16 MiB: `-config=/dev/zero` or a runaway generated file is
/// an error naming it, not a process that eats all memory.
#[test]
fn a_config_file_past_16_mib_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = AUTH.to_owned();
    text.push_str(&"#".repeat(16 * 1024 * 1024));
    let path = dir.path().join("huge.hcl");
    std::fs::write(&path, &text).unwrap();

    for path in [path, "/dev/zero".into()] {
        let opts = LoadOptions {
            paths: vec![path.clone()],
            ..LoadOptions::default()
        };
        let error = load(&opts).unwrap_err();
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        let shown = format!("{error}: {}", cause.unwrap_or_default());
        let expected = format!(
            "{}: cannot read the config file: larger than 16 MiB",
            path.display()
        );
        assert_eq!(shown, expected);
    }
}

/// A config file in a directory that cannot be followed (a dangling link, a loop of links) or
/// is no regular file is an error naming it: skipping it would drop its settings unsaid.
#[test]
fn a_directory_entry_that_cannot_be_read_as_a_file_is_named() {
    fn check(name: &str, make: impl FnOnce(&std::path::Path), expected: &str) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00-auth.hcl"), AUTH).unwrap();
        let path = dir.path().join(name);
        make(&path);

        let opts = LoadOptions {
            paths: vec![dir.path().to_path_buf()],
            ..LoadOptions::default()
        };
        let error = load(&opts).unwrap_err();
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        let named = format!("{}: {expected}", path.display());
        assert!(text.starts_with(&named), "{name}: {text}");
    }

    use std::os::unix::fs::symlink;
    check(
        "10-gone.hcl",
        |path| symlink("/nonexistent/agent.hcl", path).unwrap(),
        "cannot read the config file: No such file or directory",
    );
    check(
        "20-loop.json",
        |path| symlink(path, path).unwrap(),
        "cannot read the config file: Too many levels of symbolic links",
    );
    check(
        "30-socket.hcl",
        |path| drop(std::os::unix::net::UnixListener::bind(path).unwrap()),
        "cannot read the config file: not a regular file",
    );
}

#[test]
fn a_directory_is_read_in_name_order_skipping_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("20-vault.hcl", "vault { address = \"http://second:8200\" }");
    write(
        "10-vault.json",
        r#"{"vault": {"address": "http://first:8200"}}"#,
    );
    write("00-auth.hcl", AUTH);
    write("30-broken.hcl~", "this is { not valid");
    write(".#40-lock.hcl", "neither {");
    write("#50-autosave.hcl#", "nor {");
    write("notes.txt", "ignored");
    std::fs::create_dir(dir.path().join("60-sub.hcl")).unwrap();

    let opts = LoadOptions {
        paths: vec![dir.path().to_path_buf()],
        ..LoadOptions::default()
    };
    let config = load(&opts).unwrap().config;
    assert_eq!(config.vault.address, "http://second:8200");
    assert!(
        config
            .vault
            .location
            .to_string()
            .ends_with("20-vault.hcl:1")
    );

    let empty = tempfile::tempdir().unwrap();
    let opts = LoadOptions {
        paths: vec![empty.path().to_path_buf()],
        ..LoadOptions::default()
    };
    let error = load(&opts).unwrap_err().to_string();
    assert!(
        error.ends_with("the directory holds no *.hcl or *.json config file"),
        "{error}"
    );

    let opts = LoadOptions {
        paths: vec![dir.path().join("missing.hcl")],
        ..LoadOptions::default()
    };
    let error = load(&opts).unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("missing.hcl: cannot read the config path"),
        "{error}"
    );
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn environment_and_flags_override_the_file() {
    let file = format!(
        "{AUTH}\nvault {{\n address = \"http://file:8200\"\n namespace = \"file-ns\"\n retry {{ num_retries = 3 }}\n}}\nlog_level = \"warn\""
    );
    let flag_address = Overrides {
        address: Some("http://flag:8200".to_owned()),
        ..Overrides::default()
    };
    type Case<'a> = (&'a [(&'a str, &'a str)], Overrides, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (&[], Overrides::default(), "http://file:8200"),
        (
            &[("VAULT_ADDR", "http://vault-env:8200")],
            Overrides::default(),
            "http://vault-env:8200",
        ),
        (
            &[
                ("VAULT_ADDR", "http://v:8200"),
                ("BAO_ADDR", "http://bao:8200"),
            ],
            Overrides::default(),
            "http://bao:8200",
        ),
        // A present but empty BAO_ADDR still hides VAULT_ADDR; the file's value stays.
        (
            &[("VAULT_ADDR", "http://v:8200"), ("BAO_ADDR", "")],
            Overrides::default(),
            "http://file:8200",
        ),
        (
            &[("VAULT_ADDR", "http://v:8200")],
            flag_address,
            "http://flag:8200",
        ),
    ];
    for (env, overrides, expected) in cases {
        let config = load_with(&[("agent.hcl", &file)], env, overrides)
            .unwrap()
            .config;
        assert_eq!(config.vault.address, expected, "{env:?}");
    }

    let env = [
        ("VAULT_MAX_RETRIES", "-1"),
        ("BAO_LOG_LEVEL", "trace"),
        ("VAULT_CACERT", "/env/ca.pem"),
    ];
    let flags = Overrides {
        log_format: Some("json".to_owned()),
        exit_after_auth: Some(true),
        ..Overrides::default()
    };
    let config = load_with(&[("agent.hcl", &file)], &env, flags)
        .unwrap()
        .config;
    assert_eq!(config.vault.retry.num_retries, -1);
    assert_eq!(config.vault.retry.attempts(), 0);
    assert_eq!(config.log.level, LogLevel::Trace);
    assert_eq!(config.log.format, LogFormat::Json);
    assert!(config.exit_after_auth);
    assert_eq!(
        config.vault.ca_cert.as_deref().and_then(|p| p.to_str()),
        Some("/env/ca.pem")
    );
    assert_eq!(
        config.vault.location_of("ca_cert").to_string(),
        "environment variable VAULT_CACERT"
    );

    let error = load_with(
        &[("agent.hcl", &file)],
        &[("VAULT_LOG_LEVEL", "chatty")],
        Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "environment variable VAULT_LOG_LEVEL: log_level: unknown level \"chatty\"; allowed: trace, debug, info, warn, error"
    );
    let error = load_with(
        &[("agent.hcl", &file)],
        &[("BAO_MAX_RETRIES", "many")],
        Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "environment variable BAO_MAX_RETRIES: vault.retry.num_retries: \"many\" is not a whole number of retries"
    );
}

/// `VAULT_CLIENT_TIMEOUT` / `BAO_CLIENT_TIMEOUT` are read as Vault reads them (seconds or a
/// duration with units; BAO wins); there is no file key, so without them the client's
/// default stands.
#[test]
fn client_timeout_comes_from_the_environment_as_seconds_or_units() {
    let file = AUTH.to_owned();
    let timeout = |env: &[(&str, &str)]| {
        load_with(&[("agent.hcl", &file)], env, Overrides::default())
            .unwrap()
            .config
            .vault
            .client_timeout
    };
    assert_eq!(timeout(&[]), None);
    assert_eq!(
        timeout(&[("VAULT_CLIENT_TIMEOUT", "5")]),
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        timeout(&[
            ("VAULT_CLIENT_TIMEOUT", "5"),
            ("BAO_CLIENT_TIMEOUT", "1m30s")
        ]),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        timeout(&[("BAO_CLIENT_TIMEOUT", "0")]),
        Some(Duration::ZERO)
    );

    let error = load_with(
        &[("agent.hcl", &file)],
        &[("VAULT_CLIENT_TIMEOUT", "soon")],
        Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with(
            "environment variable VAULT_CLIENT_TIMEOUT: vault.client_timeout: invalid duration \"soon\""
        ),
        "{error}"
    );
}

#[test]
fn retries_resolve_zero_to_twelve_and_negative_to_disabled() {
    for (written, attempts) in [(0, 12), (5, 5), (-1, 0), (-7, 0)] {
        assert_eq!(
            Retry {
                num_retries: written
            }
            .attempts(),
            attempts,
            "{written}"
        );
    }
    let config = config(&format!("{AUTH}\nvault {{ retry {{}} }}"));
    assert_eq!(config.vault.retry.attempts(), 12);
}

/// Our rule for VAULT_SKIP_VERIFY / BAO_SKIP_VERIFY: parsed as a boolean, so "false" means
/// verify (OpenBao treats any non-empty value, even "false", as skip); a value that is not a
/// boolean at all still means skip, erring on the side of what the operator likely wanted, and
/// a warning says so.
#[test]
fn skip_verify_from_the_environment_is_parsed_as_a_boolean() {
    let file = format!("{AUTH}\nvault {{ tls_skip_verify = true }}");
    let cases = [
        (vec![("VAULT_SKIP_VERIFY", "false")], false),
        (vec![("VAULT_SKIP_VERIFY", "0")], false),
        (vec![("VAULT_SKIP_VERIFY", "1")], true),
        (vec![("VAULT_SKIP_VERIFY", "yes")], true),
        (vec![("VAULT_SKIP_VERIFY", "")], true),
        (
            vec![("VAULT_SKIP_VERIFY", "true"), ("BAO_SKIP_VERIFY", "false")],
            false,
        ),
    ];
    for (env, expected) in cases {
        let config = load_with(&[("agent.hcl", &file)], &env, Overrides::default())
            .unwrap()
            .config;
        assert_eq!(config.vault.tls_skip_verify, expected, "{env:?}");
    }

    // A value that is no boolean turns verification off, so it is said, never silent.
    for (value, warned) in [
        ("yes", true),
        ("flase", true),
        ("false", false),
        ("1", false),
    ] {
        let env = [("VAULT_SKIP_VERIFY", value)];
        let loaded = load_with(&[("agent.hcl", AUTH)], &env, Overrides::default()).unwrap();
        let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
        let expected = format!(
            "environment variable VAULT_SKIP_VERIFY: {value:?} is not a boolean; read as \
             true, so Vault's TLS certificate is not verified"
        );
        assert_eq!(
            warnings.contains(&expected),
            warned,
            "{value}: {warnings:?}"
        );
    }

    let flags = Overrides {
        tls_skip_verify: Some(false),
        ..Overrides::default()
    };
    let config = load_with(
        &[("agent.hcl", &file)],
        &[("VAULT_SKIP_VERIFY", "1")],
        flags,
    )
    .unwrap()
    .config;
    assert!(!config.vault.tls_skip_verify);
}

#[test]
fn disable_lists_from_the_environment_replace_the_files() {
    let file = format!("{AUTH}\ndisable_idle_connections = [\"auto-auth\"]");
    let cases = [
        (
            vec![],
            Subsystems {
                auto_auth: true,
                ..Subsystems::default()
            },
        ),
        (
            vec![(
                "VAULT_AGENT_DISABLE_IDLE_CONNECTIONS",
                "caching, templating",
            )],
            Subsystems {
                auto_auth: false,
                proxying: true,
                templating: true,
            },
        ),
        (
            vec![
                ("VAULT_AGENT_DISABLE_IDLE_CONNECTIONS", "caching"),
                ("BAO_AGENT_DISABLE_IDLE_CONNECTIONS", "templating"),
            ],
            Subsystems {
                templating: true,
                ..Subsystems::default()
            },
        ),
    ];
    for (env, expected) in cases {
        let config = load_with(&[("agent.hcl", &file)], &env, Overrides::default())
            .unwrap()
            .config;
        assert_eq!(config.disable_idle_connections, expected, "{env:?}");
    }
    let error = load_with(
        &[("agent.hcl", &file)],
        &[("VAULT_AGENT_DISABLE_KEEP_ALIVES", "proxying,bogus")],
        Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "environment variable VAULT_AGENT_DISABLE_KEEP_ALIVES: disable_keep_alives: unknown value \"bogus\"; allowed: auto-auth, caching, proxying, templating"
    );
}

/// Case B16, our rule: `vault.namespace` and `auto_auth.method.namespace` stay separate. The
/// environment or `-namespace` flag replaces `vault.namespace` only. The binary logs in with
/// the method namespace when one is set, else with `vault.namespace`; proxied and template
/// requests always use `vault.namespace`. A namespace is never joined with itself.
#[test]
fn namespaces_stay_separate() {
    let text = |vault_ns: &str| {
        format!(
            "auto_auth {{\n method \"approle\" {{\n  namespace = \"ns1\"\n  config = {{ role_id_file_path = \"/r\" }}\n }}\n sink \"file\" {{ config = {{ path = \"/t\" }} }}\n}}\nvault {{ {vault_ns} }}"
        )
    };
    type Case<'a> = (String, &'a [(&'a str, &'a str)], Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        (text(""), &[], None),
        (text(""), &[("VAULT_NAMESPACE", "ns1")], Some("ns1/")),
        (text("namespace = \"ns1/child\""), &[], Some("ns1/child/")),
        (
            text("namespace = \"/ns1/child/\""),
            &[("BAO_NAMESPACE", "other")],
            Some("other/"),
        ),
    ];
    for (config_text, env, vault_ns) in cases {
        let config = load_with(&[("agent.hcl", &config_text)], env, Overrides::default())
            .unwrap()
            .config;
        assert_eq!(
            config.auto_auth.unwrap().method.namespace.as_deref(),
            Some("ns1/")
        );
        assert_eq!(config.vault.namespace.as_deref(), vault_ns, "{env:?}");
    }
    let flags = Overrides {
        namespace: Some("flag-ns".to_owned()),
        ..Overrides::default()
    };
    let config = load_with(
        &[("agent.hcl", &text(""))],
        &[("VAULT_NAMESPACE", "env-ns")],
        flags,
    )
    .unwrap()
    .config;
    assert_eq!(config.vault.namespace.as_deref(), Some("flag-ns/"));
}

#[test]
fn secrets_never_show() {
    let text = r#"
auto_auth {
  method "aws" {
    config = {
      role = "r"
      secret_key = "AWS-SECRET-KEY-VALUE"
      session_token = "AWS-SESSION-TOKEN"
      secret_pin = 271828182845
      role_id_file_path = "/not/secret"
    }
  }
  sink "file" {
    dh_type = "curve25519"
    dh_path = "/k"
    aad_env_var = "MY_AAD"
    config = { path = "/t" }
  }
}"#;
    let env = [("MY_AAD", "AAD-FROM-ENV")];
    let config = load_with(&[("agent.hcl", text)], &env, Overrides::default())
        .unwrap()
        .config;
    let auto_auth = config.auto_auth.as_ref().unwrap();
    let method_config = &auto_auth.method.config;

    assert_eq!(
        method_config
            .secret("secret_key")
            .unwrap()
            .unwrap()
            .expose(),
        "AWS-SECRET-KEY-VALUE"
    );
    assert!(matches!(
        method_config.get("session_token"),
        Some(ConfigValue::Secret(_))
    ));
    assert_eq!(
        method_config
            .secret("secret_pin")
            .unwrap()
            .unwrap()
            .expose(),
        "271828182845"
    );
    assert_eq!(
        method_config
            .string("role_id_file_path")
            .unwrap()
            .as_deref(),
        Some("/not/secret")
    );
    assert_eq!(
        auto_auth.sinks[0].aad.as_ref().map(Secret::expose),
        Some("AAD-FROM-ENV")
    );
    let error = method_config.string("secret_key").unwrap_err().to_string();
    assert_eq!(
        error,
        "agent.hcl:6: auto_auth.method.config.secret_key: holds a secret; read it as one"
    );

    let shown = format!("{config:?}\n{}", config.render_redacted());
    for secret in [
        "AWS-SECRET-KEY-VALUE",
        "AWS-SESSION-TOKEN",
        "AAD-FROM-ENV",
        "271828182845",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked");
    }
}

#[test]
fn looks_secret_rule() {
    let cases = [
        ("secret_id", true),
        ("password", true),
        ("access_key", true),
        ("session_token", true),
        ("token_file_path", false),
        ("secret_id_file_path", false),
        ("password_file", false),
        ("client_key", false),
        ("role", false),
    ];
    for (key, expected) in cases {
        assert_eq!(decode::looks_secret(key), expected, "{key}");
    }
}

#[test]
fn defaults_and_extensions() {
    let config = config(&format!(
        "{AUTH}\ncache {{}}\nlistener \"tcp\" {{\n tls_disable = true\n max_request_size = 1024\n agent_api {{ enable_quit = true }}\n}}"
    ));
    assert_eq!(config.cache.unwrap().max_entries, DEFAULT_CACHE_MAX_ENTRIES);
    assert_eq!(config.listeners[0].max_request_size, 1024);
    assert!(config.listeners[0].enable_quit);
    assert_eq!(config.vault.address, DEFAULT_VAULT_ADDRESS);
    assert_eq!(config.template_config, TemplateConfig::default());
    assert!(config.api_proxy.is_none());

    let loaded = load_one("agent.hcl", &format!("{AUTH}\ndisable_mlock = false")).unwrap();
    assert_eq!(
        loaded
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["agent.hcl:9: disable_mlock = false is ignored: this agent never locks memory"]
    );
}

#[test]
fn syntax_errors_name_file_and_line() {
    let cases = [
        (
            "agent.hcl",
            "vault {\n address = \n}",
            "agent.hcl:3: syntax error: expected a value, found '}'",
        ),
        (
            "agent.json",
            "{\"vault\": {\n\"address\": }",
            "agent.json:2: syntax error: expected a JSON value",
        ),
        (
            "agent.hcl",
            "{\"vault\": [}",
            "agent.hcl:1: syntax error: expected a JSON value",
        ),
        (
            "agent.hcl",
            "vault = \"x\"",
            "agent.hcl:1: vault: expected a block, found a string",
        ),
    ];
    for (name, text, expected) in cases {
        assert_eq!(
            load_one(name, text).unwrap_err().to_string(),
            expected,
            "{text}"
        );
    }
}

/// A password in the Vault address (`https://user:password@host`) is a credential: the dump
/// (debug logs, `-check`) shows who and where, never the password.
#[test]
fn a_password_in_the_vault_address_is_not_dumped() {
    fn check(address: &str, shown: &str) {
        let text = format!("vault {{ address = \"{address}\" }}\n{AUTH}");
        let rendered = config(&text).render_redacted();
        let line = format!("  address = \"{shown}\"\n");
        assert!(rendered.contains(&line), "{address}:\n{rendered}");
    }

    check(
        "https://agent:S3CRET@vault.example:8200/",
        "https://agent:<redacted>@vault.example:8200/",
    );
    check(
        "http://:S3CRET@127.0.0.1:8200",
        "http://:<redacted>@127.0.0.1:8200",
    );
    check("http://a:b:c@vault@host", "http://a:<redacted>@host");
    check("https://agent@vault.example", "https://agent@vault.example");
    check("https://vault.example/a:b@c", "https://vault.example/a:b@c");
    check(
        "https://vault.example?x=a:b@c",
        "https://vault.example?x=a:b@c",
    );
    check("unix:///run/vault.sock", "unix:///run/vault.sock");
}

#[test]
fn render_redacted_is_stable_and_complete() {
    let text = r#"
pid_file = "/run/agent.pid"
exit_after_auth = false
disable_keep_alives = ["proxying"]
log_file = "/var/log/agent/"
vault {
  address = "https://vault:8200"
  ca_cert = "/etc/ca.pem"
  namespace = "team"
  retry { num_retries = 5 }
}
auto_auth {
  method "approle" {
    mount_path = "auth/approle/"
    min_backoff = "2s"
    config = {
      role_id_file_path = "/etc/role"
      secret_id = "SECRET-ID-VALUE"
      remove_secret_id_file_after_reading = false
    }
  }
  sink "file" {
    dh_type = "curve25519"
    dh_path = "/k"
    aad = "AAD-VALUE"
    derive_key = true
    config = { path = "/run/token", mode = 0600, uid = 1000 }
  }
}
cache {
  use_auto_auth_token = "force"
  persist "kubernetes" { path = "/cache" }
}
listener "tcp" {
  address = "127.0.0.1:8100"
  tls_disable = true
  role = "metrics_only"
}
template_config { static_secret_render_interval = "10m" }
template {
  source = "/t.tmpl"
  destination = "/out"
  perms = 0640
  wait = "2s:10s"
}
telemetry { metrics_prefix = "agent" }
"#;
    let rendered = config(text).render_redacted();
    let expected = r#"vault {
  address = "https://vault:8200"
  ca_cert = "/etc/ca.pem"
  tls_skip_verify = false
  namespace = "team/"
  retry {
    num_retries = 5
    # attempts = 5
  }
}
auto_auth {
  method "approle" {
    mount_path = "auth/approle"
    min_backoff = "2s"
    max_backoff = "5m0s"
    exit_on_err = false
    config {
      remove_secret_id_file_after_reading = false
      role_id_file_path = "/etc/role"
      secret_id = <redacted>
    }
  }
  sink "file" {
    dh_type = "curve25519"
    dh_path = "/k"
    derive_key = true
    aad = <redacted>
    config {
      path = "/run/token"
      mode = 0600
      uid = 1000
    }
  }
}
cache {
  max_entries = 100000
  persist "kubernetes" {
    path = "/cache"
    keep_after_import = false
    exit_on_err = false
    service_account_token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token"
  }
}
api_proxy {
  use_auto_auth_token = "force"
  enforce_consistency = "never"
  when_inconsistent = "fail"
  prepend_configured_namespace = false
}
listener "tcp" {
  address = "127.0.0.1:8100"
  role = "metrics_only"
  tls_disable = true
  tls_min_version = "tls12"
  tls_max_version = "tls13"
  tls_require_and_verify_client_cert = false
  tls_disable_client_certs = false
  require_request_header = false
  max_request_size = 33554432
  agent_api {
    enable_quit = false
  }
}
template_config {
  exit_on_retry_failure = false
  static_secret_render_interval = "10m0s"
  max_connections_per_host = 10
  lease_renewal_threshold = 0.9
}
template {
  source = "/t.tmpl"
  destination = "/out"
  create_dest_dirs = true
  perms = 0640
  backup = false
  command_timeout = "30s"
  wait {
    min = "2s"
    max = "10s"
  }
  error_on_missing_key = false
  error_fatal = true
}
telemetry {
  prometheus_retention_time = "24h0m0s"
  metrics_prefix = "agent"
  disable_hostname = false
  enable_hostname_label = false
  usage_gauge_period = "10m0s"
  maximum_gauge_cardinality = 500
  filter_default = true
}
pid_file = "/run/agent.pid"
exit_after_auth = false
disable_keep_alives = ["proxying"]
log_level = "info"
log_format = "standard"
log_file = "/var/log/agent/"
log_rotate_duration = "24h0m0s"
"#;
    assert_eq!(rendered, expected);
    assert!(!rendered.contains("SECRET-ID-VALUE") && !rendered.contains("AAD-VALUE"));
}

#[test]
fn parse_duration_for_flags_uses_the_config_rule() {
    let cases = [
        ("300", Ok(300)),
        ("2d", Ok(172_800)),
        ("1h30m", Ok(5400)),
        ("", Ok(0)),
    ];
    for (text, expected) in cases {
        assert_eq!(
            parse_duration(text).map(|d| d.as_secs()),
            expected,
            "{text}"
        );
    }
    assert!(
        parse_duration("soon")
            .unwrap_err()
            .contains("invalid duration \"soon\"")
    );
}
