//! Vault's merge of several files, stanza by stanza, on typed values.
//!
//! A generic deep merge gets this wrong (a later file's `template` would replace or blend with
//! an earlier one), so each rule is spelled out: singletons are replaced whole, repeatable
//! blocks are appended, flags are OR-ed.

use crate::decode::FileConfig;

/// Folds the files in order; a later file wins where the rules say "replace".
pub(crate) fn merge(files: Vec<FileConfig>) -> FileConfig {
    let mut out = FileConfig::default();
    for file in files {
        replace(&mut out.vault, file.vault);
        replace(&mut out.auto_auth, file.auto_auth);
        replace(&mut out.cache, file.cache);
        replace(&mut out.api_proxy, file.api_proxy);
        replace(&mut out.template_config, file.template_config);
        replace(&mut out.exec, file.exec);
        replace(&mut out.telemetry, file.telemetry);
        replace(&mut out.pid_file, file.pid_file);
        replace(&mut out.log_level, file.log_level);
        replace(&mut out.log_format, file.log_format);
        replace(&mut out.log_file, file.log_file);
        replace(&mut out.log_rotate_bytes, file.log_rotate_bytes);
        replace(&mut out.log_rotate_duration, file.log_rotate_duration);
        replace(&mut out.log_rotate_max_files, file.log_rotate_max_files);
        replace(&mut out.cluster_name, file.cluster_name);

        out.listeners.extend(file.listeners);
        out.templates.extend(file.templates);
        out.env_templates.extend(file.env_templates);

        out.exit_after_auth |= file.exit_after_auth;
        let idle = &mut out.disable_idle_connections;
        idle.auto_auth |= file.disable_idle_connections.auto_auth;
        idle.proxying |= file.disable_idle_connections.proxying;
        idle.templating |= file.disable_idle_connections.templating;
        let keep_alives = &mut out.disable_keep_alives;
        keep_alives.auto_auth |= file.disable_keep_alives.auto_auth;
        keep_alives.proxying |= file.disable_keep_alives.proxying;
        keep_alives.templating |= file.disable_keep_alives.templating;
    }
    out
}

fn replace<T>(slot: &mut Option<T>, later: Option<T>) {
    if later.is_some() {
        *slot = later;
    }
}
