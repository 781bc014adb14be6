//! A stable, human-readable dump of everything the loader understood, secrets redacted.
//!
//! It reads like HCL but is meant for people (`-test-verify-only` style output, support
//! requests), not for loading back: defaults are spelled out and secrets print as `<redacted>`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::model::{
    ApiProxy, AutoAuth, Cache, Config, ConfigValue, Consistency, EnvTemplate, Exec, Listener,
    ListenerRole, Logging, RestartOnSecretChanges, Sink, Subsystems, Telemetry, Template,
    TemplateConfig, UseAutoAuthToken, Vault, WhenInconsistent,
};

const REDACTED: &str = "<redacted>";

impl Config {
    /// Every setting, defaults included, one per line; secrets appear as `<redacted>`.
    pub fn render_redacted(&self) -> String {
        let mut out = Out::default();
        vault(&mut out, &self.vault);
        if let Some(auto_auth) = &self.auto_auth {
            auto_auth_block(&mut out, auto_auth);
        }
        if let Some(cache) = &self.cache {
            cache_block(&mut out, cache);
        }
        if let Some(proxy) = &self.api_proxy {
            api_proxy(&mut out, proxy);
        }
        for listener in &self.listeners {
            listener_block(&mut out, listener);
        }
        template_config(&mut out, &self.template_config);
        for template in &self.templates {
            template_block(&mut out, template);
        }
        for env in &self.env_templates {
            env_template(&mut out, env);
        }
        if let Some(exec) = &self.exec {
            exec_block(&mut out, exec);
        }
        if let Some(telemetry) = &self.telemetry {
            telemetry_block(&mut out, telemetry);
        }
        top_level(&mut out, self);
        out.text
    }
}

#[derive(Default)]
struct Out {
    text: String,
    depth: usize,
}

impl Out {
    fn raw(&mut self, key: &str, value: impl std::fmt::Display) {
        let indent = "  ".repeat(self.depth);
        let _ = writeln!(self.text, "{indent}{key} = {value}");
    }

    fn str(&mut self, key: &str, value: &str) {
        self.raw(key, format_args!("{value:?}"));
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.str(key, value);
        }
    }

    fn opt_path(&mut self, key: &str, value: Option<&Path>) {
        if let Some(value) = value {
            self.str(key, &value.display().to_string());
        }
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.raw(key, value);
    }

    fn duration(&mut self, key: &str, value: Duration) {
        self.raw(key, format_args!("{:?}", go_duration(value)));
    }

    fn opt_duration(&mut self, key: &str, value: Option<Duration>) {
        if let Some(value) = value {
            self.duration(key, value);
        }
    }

    fn mode(&mut self, key: &str, value: u32) {
        self.raw(key, format_args!("0{value:o}"));
    }

    fn list(&mut self, key: &str, values: &[String]) {
        if !values.is_empty() {
            let items: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
            self.raw(key, format_args!("[{}]", items.join(", ")));
        }
    }

    fn open(&mut self, header: impl std::fmt::Display) {
        let indent = "  ".repeat(self.depth);
        let _ = writeln!(self.text, "{indent}{header} {{");
        self.depth += 1;
    }

    fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        let indent = "  ".repeat(self.depth);
        let _ = writeln!(self.text, "{indent}}}");
    }
}

/// Durations the way operators write them (`1h30m0s`, `300ms`).
fn go_duration(value: Duration) -> String {
    if value.is_zero() {
        return "0s".to_owned();
    }
    if value.as_secs() == 0 {
        return format!("{}ms", value.as_millis());
    }
    let seconds = value.as_secs();
    let (hours, minutes, rest) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    let millis = value.subsec_millis();
    let seconds = if millis == 0 {
        format!("{rest}s")
    } else {
        format!("{rest}.{millis:03}s")
    };
    match (hours, minutes) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// The address with the password of its user info (`scheme://user:password@host`) redacted.
fn without_password(address: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = address.split_once("://") else {
        return address.into();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((user_info, host)) = authority.rsplit_once('@') else {
        return address.into();
    };
    let Some((user, _password)) = user_info.split_once(':') else {
        return address.into();
    };
    format!("{scheme}://{user}:{REDACTED}@{host}{path}").into()
}

fn vault(out: &mut Out, vault: &Vault) {
    out.open("vault");
    out.str("address", &without_password(&vault.address));
    out.opt_path("ca_cert", vault.ca_cert.as_deref());
    out.opt_path("ca_path", vault.ca_path.as_deref());
    out.opt_path("client_cert", vault.client_cert.as_deref());
    out.opt_path("client_key", vault.client_key.as_deref());
    out.bool("tls_skip_verify", vault.tls_skip_verify);
    out.opt_str("tls_server_name", vault.tls_server_name.as_deref());
    out.opt_str("namespace", vault.namespace.as_deref());
    out.open("retry");
    out.raw("num_retries", vault.retry.num_retries);
    out.raw("# attempts", vault.retry.attempts());
    out.close();
    if let Some(timeout) = vault.client_timeout {
        // Only the environment sets it, so it is shown as a comment the file cannot take.
        out.raw(
            "# client_timeout",
            format_args!("{:?}", go_duration(timeout)),
        );
    }
    out.close();
}

fn auto_auth_block(out: &mut Out, auto_auth: &AutoAuth) {
    let method = &auto_auth.method;
    out.open("auto_auth");
    out.open(format_args!("method {:?}", method.kind));
    out.str("mount_path", &method.mount_path);
    out.opt_str("namespace", method.namespace.as_deref());
    out.opt_duration("wrap_ttl", method.wrap_ttl);
    out.duration("min_backoff", method.effective_min_backoff());
    out.duration("max_backoff", method.effective_max_backoff());
    out.bool("exit_on_err", method.exit_on_err);
    out.open("config");
    for (key, value) in &method.config.values {
        out.raw(key, config_value(value));
    }
    out.close();
    out.close();
    for sink in &auto_auth.sinks {
        sink_block(out, sink);
    }
    if auto_auth.enable_reauth_on_new_credentials {
        out.bool("enable_reauth_on_new_credentials", true);
    }
    out.close();
}

fn config_value(value: &ConfigValue) -> String {
    match value {
        ConfigValue::Bool(b) => b.to_string(),
        ConfigValue::Int(i) => i.to_string(),
        ConfigValue::Float(f) => f.to_string(),
        ConfigValue::String(s) => format!("{s:?}"),
        ConfigValue::Secret(_) => REDACTED.to_owned(),
        ConfigValue::List(items) => {
            let items: Vec<String> = items.iter().map(config_value).collect();
            format!("[{}]", items.join(", "))
        }
        ConfigValue::Map(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k} = {}", config_value(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
    }
}

fn sink_block(out: &mut Out, sink: &Sink) {
    out.open(format_args!("sink {:?}", sink.kind));
    out.opt_duration("wrap_ttl", sink.wrap_ttl);
    out.opt_str("dh_type", sink.dh_type.as_deref());
    out.opt_path("dh_path", sink.dh_path.as_deref());
    out.bool("derive_key", sink.derive_key);
    if sink.aad.is_some() {
        out.raw("aad", REDACTED);
    }
    out.opt_str("aad_env_var", sink.aad_env_var.as_deref());
    out.open("config");
    out.str("path", &sink.config.path.display().to_string());
    out.mode("mode", sink.config.mode);
    if let Some(uid) = sink.config.uid {
        out.raw("uid", uid);
    }
    if let Some(gid) = sink.config.gid {
        out.raw("gid", gid);
    }
    out.close();
    out.close();
}

fn cache_block(out: &mut Out, cache: &Cache) {
    out.open("cache");
    out.raw("max_entries", cache.max_entries);
    if let Some(persist) = &cache.persist {
        out.open(format_args!("persist {:?}", persist.kind));
        out.str("path", &persist.path.display().to_string());
        out.bool("keep_after_import", persist.keep_after_import);
        out.bool("exit_on_err", persist.exit_on_err);
        out.opt_path(
            "service_account_token_file",
            Some(&persist.service_account_token_file),
        );
        out.close();
    }
    out.close();
}

fn api_proxy(out: &mut Out, proxy: &ApiProxy) {
    out.open("api_proxy");
    // Each value as a config file spells it, so that the dump reads back as written.
    let use_token = match proxy.use_auto_auth_token {
        UseAutoAuthToken::Disabled => "false",
        UseAutoAuthToken::Enabled => "true",
        UseAutoAuthToken::Force => "\"force\"",
    };
    out.raw("use_auto_auth_token", use_token);
    let consistency = match proxy.enforce_consistency {
        Consistency::Never => "never",
        Consistency::Always => "always",
    };
    out.str("enforce_consistency", consistency);
    let inconsistent = match proxy.when_inconsistent {
        WhenInconsistent::Fail => "fail",
        WhenInconsistent::Retry => "retry",
        WhenInconsistent::Forward => "forward",
    };
    out.str("when_inconsistent", inconsistent);
    out.bool(
        "prepend_configured_namespace",
        proxy.prepend_configured_namespace,
    );
    out.close();
}

fn listener_block(out: &mut Out, listener: &Listener) {
    out.open(format_args!(
        "listener {:?}",
        format!("{:?}", listener.kind).to_lowercase()
    ));
    out.str("address", &listener.address);
    let role = match listener.role {
        ListenerRole::Default => "default",
        ListenerRole::MetricsOnly => "metrics_only",
    };
    out.str("role", role);
    out.bool("tls_disable", listener.tls_disable);
    out.opt_path("tls_cert_file", listener.tls_cert_file.as_deref());
    out.opt_path("tls_key_file", listener.tls_key_file.as_deref());
    out.str("tls_min_version", &listener.tls_min_version);
    out.str("tls_max_version", &listener.tls_max_version);
    out.list("tls_cipher_suites", &listener.tls_cipher_suites);
    out.bool(
        "tls_require_and_verify_client_cert",
        listener.tls_require_and_verify_client_cert,
    );
    out.opt_path("tls_client_ca_file", listener.tls_client_ca_file.as_deref());
    out.bool(
        "tls_disable_client_certs",
        listener.tls_disable_client_certs,
    );
    out.opt_str("socket_mode", listener.socket_mode.as_deref());
    out.opt_str("socket_user", listener.socket_user.as_deref());
    out.opt_str("socket_group", listener.socket_group.as_deref());
    out.bool("require_request_header", listener.require_request_header);
    out.raw("max_request_size", listener.max_request_size);
    out.open("agent_api");
    out.bool("enable_quit", listener.enable_quit);
    out.close();
    out.close();
}

fn template_config(out: &mut Out, config: &TemplateConfig) {
    out.open("template_config");
    out.bool("exit_on_retry_failure", config.exit_on_retry_failure);
    out.duration(
        "static_secret_render_interval",
        config.static_secret_render_interval,
    );
    out.raw("max_connections_per_host", config.max_connections_per_host);
    out.raw("lease_renewal_threshold", config.lease_renewal_threshold);
    out.close();
}

fn template_block(out: &mut Out, template: &Template) {
    out.open("template");
    out.opt_path("source", template.source.as_deref());
    out.opt_str("contents", template.contents.as_deref());
    out.str("destination", &template.destination.display().to_string());
    out.bool("create_dest_dirs", template.create_dest_dirs);
    if let Some(perms) = template.perms {
        out.mode("perms", perms);
    }
    out.opt_str("user", template.user.as_deref());
    if let Some(uid) = template.uid {
        out.raw("uid", uid);
    }
    out.opt_str("group", template.group.as_deref());
    if let Some(gid) = template.gid {
        out.raw("gid", gid);
    }
    out.bool("backup", template.backup);
    out.list("command", &template.command);
    out.duration("command_timeout", template.command_timeout);
    if let Some(wait) = template.wait {
        out.open("wait");
        out.duration("min", wait.min);
        out.duration("max", wait.max);
        out.close();
    }
    out.bool("error_on_missing_key", template.error_on_missing_key);
    out.bool("error_fatal", template.error_fatal);
    out.opt_str("left_delimiter", template.left_delimiter.as_deref());
    out.opt_str("right_delimiter", template.right_delimiter.as_deref());
    out.list("function_denylist", &template.function_denylist);
    out.opt_path("sandbox_path", template.sandbox_path.as_deref());
    out.close();
}

fn env_template(out: &mut Out, env: &EnvTemplate) {
    out.open(format_args!("env_template {:?}", env.name));
    out.opt_path("source", env.source.as_deref());
    out.opt_str("contents", env.contents.as_deref());
    out.bool("error_on_missing_key", env.error_on_missing_key);
    out.bool("error_fatal", env.error_fatal);
    out.opt_str("left_delimiter", env.left_delimiter.as_deref());
    out.opt_str("right_delimiter", env.right_delimiter.as_deref());
    out.list("function_denylist", &env.function_denylist);
    out.close();
}

fn exec_block(out: &mut Out, exec: &Exec) {
    out.open("exec");
    out.list("command", &exec.command);
    let restart = match exec.restart_on_secret_changes {
        RestartOnSecretChanges::Always => "always",
        RestartOnSecretChanges::Never => "never",
    };
    out.str("restart_on_secret_changes", restart);
    out.str("restart_stop_signal", &exec.restart_stop_signal);
    out.opt_path("child_process_stdout", exec.child_process_stdout.as_deref());
    out.opt_path("child_process_stderr", exec.child_process_stderr.as_deref());
    out.close();
}

fn telemetry_block(out: &mut Out, telemetry: &Telemetry) {
    out.open("telemetry");
    out.duration(
        "prometheus_retention_time",
        telemetry.prometheus_retention_time,
    );
    out.opt_str("metrics_prefix", telemetry.metrics_prefix.as_deref());
    out.bool("disable_hostname", telemetry.disable_hostname);
    out.bool("enable_hostname_label", telemetry.enable_hostname_label);
    out.opt_str("statsite_address", telemetry.statsite_address.as_deref());
    out.opt_str("statsd_address", telemetry.statsd_address.as_deref());
    out.opt_str("dogstatsd_addr", telemetry.dogstatsd_addr.as_deref());
    out.list("dogstatsd_tags", &telemetry.dogstatsd_tags);
    out.duration("usage_gauge_period", telemetry.usage_gauge_period);
    out.raw(
        "maximum_gauge_cardinality",
        telemetry.maximum_gauge_cardinality,
    );
    out.bool("filter_default", telemetry.filter_default);
    out.list("prefix_filter", &telemetry.prefix_filter);
    out.close();
}

fn top_level(out: &mut Out, config: &Config) {
    out.opt_path("pid_file", config.pid_file.as_deref());
    out.bool("exit_after_auth", config.exit_after_auth);
    out.list(
        "disable_idle_connections",
        &subsystem_names(config.disable_idle_connections),
    );
    out.list(
        "disable_keep_alives",
        &subsystem_names(config.disable_keep_alives),
    );
    logging(out, &config.log);
    out.opt_str("cluster_name", config.cluster_name.as_deref());
}

fn subsystem_names(subsystems: Subsystems) -> Vec<String> {
    let names = [
        (subsystems.auto_auth, "auto-auth"),
        (subsystems.proxying, "proxying"),
        (subsystems.templating, "templating"),
    ];
    names
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| (*name).to_owned())
        .collect()
}

fn logging(out: &mut Out, log: &Logging) {
    out.raw(
        "log_level",
        format_args!("{:?}", format!("{:?}", log.level).to_lowercase()),
    );
    out.raw(
        "log_format",
        format_args!("{:?}", format!("{:?}", log.format).to_lowercase()),
    );
    out.opt_str("log_file", log.file.as_deref());
    if let Some(bytes) = log.rotate_bytes {
        out.raw("log_rotate_bytes", bytes);
    }
    out.opt_duration("log_rotate_duration", log.rotate_duration);
    if let Some(files) = log.rotate_max_files {
        out.raw("log_rotate_max_files", files);
    }
}
