//! Loads the configuration files Vault Agent users already have (HCL v1 or JSON), merges them
//! the way Vault does, layers environment variables and command-line flags on top, validates
//! the result and hands the binary one typed [`Config`].
//!
//! The entry point is [`load`] with [`LoadOptions`]; it returns a [`Loaded`] (the config plus
//! [`Warning`]s such as unknown keys with a suggested spelling) or one [`ConfigError`] whose
//! message names the file, the line and the key path. Secrets found in the files (method
//! credentials, a sink's AAD) are held as [`Secret`]s, and [`Config::render_redacted`] dumps
//! everything that was understood without them.
//!
//! HCL v1 is parsed by a small parser of this crate (`hcl1`), not by an HCL 2 library: real
//! configs use HCL v1 forms that HCL 2 rejects or reads differently (several items on one line,
//! blocks inside object attributes, quoted keys, `0640` as octal), and the v1 grammar is small
//! enough that implementing it is simpler and more faithful than patching another parser's
//! output. The HCL 2 parser `hcl-edit` is kept as a test oracle: on the reference fixtures both
//! must produce the same tree. Both front-ends feed one canonical tree that keeps the file and
//! line of every key.
//!
//! Deliberately not here: no network I/O, no reading of the files a config names (certificates,
//! templates, token files), and no knowledge of which auth methods exist; method `config` maps
//! stay string-keyed maps for the auth crate to interpret.

mod build;
mod decode;
mod env;
mod error;
mod hcl1;
mod json;
mod layer;
mod merge;
mod model;
mod reader;
mod render;
mod scalar;
mod secret;
mod tree;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use env::Environment;
pub use error::{ConfigError, Location, Warning};
pub use layer::Overrides;
pub use model::*;
pub use secret::Secret;

use reader::Cx;

/// What to load.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Config files or directories, merged in this order (each `-config` flag).
    pub paths: Vec<PathBuf>,
    /// Command-line overrides (they win over the environment and the files).
    pub overrides: Overrides,
    /// Environment variables (they win over the files).
    pub env: Environment,
}

/// A loaded configuration and what the loader noticed along the way.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Accepted but questionable settings (unknown keys, ignored keys), each with its line.
    pub warnings: Vec<Warning>,
}

/// Reads, merges, overrides and validates the configuration.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let Some(first_path) = opts.paths.first() else {
        let message = "at least one config file or directory is required (-config)";
        return Err(ConfigError::new(Location::nowhere(), "", message));
    };

    let mut sources = Vec::new();
    for path in &opts.paths {
        for file in config_files(path)? {
            let name: Arc<str> = file.display().to_string().into();
            let text = read_config_file(&file).map_err(|error| {
                ConfigError::io(
                    Location::new(&name, 0),
                    "cannot read the config file",
                    error,
                )
            })?;
            sources.push((name, text));
        }
    }

    let first = Location::new(&first_path.display().to_string().into(), 0);
    load_sources(&sources, &first, &opts.env, &opts.overrides)
}

/// The largest config file read. Real configs are a few KiB; without a bound, `-config`
/// pointed at `/dev/zero` or a runaway generated file would take all memory.
const MAX_CONFIG_FILE: u64 = 16 * 1024 * 1024;

/// A config file's text, refused past [`MAX_CONFIG_FILE`] bytes.
fn read_config_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;

    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_FILE {
        let message = format!("larger than {} MiB", MAX_CONFIG_FILE / (1024 * 1024));
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            message,
        ));
    }
    Ok(text)
}

/// Parses a duration the way config files are read (Vault's rule): a bare integer is seconds,
/// `<n>d` is days, anything else Go's syntax (`1h30m`, `1.5s`); for values given outside a
/// file, such as flags. The error says what is accepted, without naming a setting.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    scalar::duration(&tree::Value::Str(text.to_owned()))
}

/// The files a `-config` path stands for: the file itself, or every `*.hcl` and `*.json` file
/// directly in the directory, sorted by name, skipping editor leftovers and directories.
fn config_files(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let name: Arc<str> = path.display().to_string().into();
    let at = Location::new(&name, 0);
    let metadata = std::fs::metadata(path)
        .map_err(|error| ConfigError::io(at.clone(), "cannot read the config path", error))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }

    let entries = std::fs::read_dir(path)
        .map_err(|error| ConfigError::io(at.clone(), "cannot list the config directory", error))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| {
            ConfigError::io(at.clone(), "cannot list the config directory", error)
        })?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let is_editor_leftover = file_name.ends_with('~')
            || file_name.starts_with(".#")
            || (file_name.starts_with('#') && file_name.ends_with('#'));
        let is_config = file_name.ends_with(".hcl") || file_name.ends_with(".json");
        if !is_config || is_editor_leftover {
            continue;
        }

        // Symlinks are followed: Kubernetes mounts config maps as links to regular files. A
        // config file that cannot be followed, or is no file, is named: skipping it would
        // drop its settings without a word.
        let file = entry.path();
        let unreadable = |error| {
            let name: Arc<str> = file.display().to_string().into();
            ConfigError::io(
                Location::new(&name, 0),
                "cannot read the config file",
                error,
            )
        };
        let metadata = std::fs::metadata(&file).map_err(unreadable)?;
        if metadata.is_dir() {
            continue;
        }
        if !metadata.is_file() {
            let error = std::io::Error::other("not a regular file");
            return Err(unreadable(error));
        }
        files.push(file);
    }
    files.sort();

    if files.is_empty() {
        let message = "the directory holds no *.hcl or *.json config file";
        return Err(ConfigError::new(at, "", message));
    }
    Ok(files)
}

/// Parses, decodes, merges, overrides and validates already-read sources, in order.
fn load_sources(
    sources: &[(Arc<str>, String)],
    first: &Location,
    env: &Environment,
    overrides: &Overrides,
) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    let mut files = Vec::new();
    for (name, text) in sources {
        let mut cx = Cx {
            file: Arc::clone(name),
            warnings: Vec::new(),
            env,
        };
        let decoded = parse(name, text).and_then(|entries| decode::file(&mut cx, &entries));
        warnings.append(&mut cx.warnings);
        match decoded {
            Ok(file) => files.push(file),
            Err(error) => return Err(error.with_warnings(warnings)),
        }
    }

    let merged = merge::merge(files);
    let mut layered = match layer::layer(&merged, env, overrides) {
        Ok(layered) => layered,
        Err(error) => return Err(error.with_warnings(warnings)),
    };
    warnings.append(&mut layered.warnings);
    let built = build::build(merged, layered)
        .and_then(|mut config| validate::validate(&mut config, first).map(|()| config));
    match built {
        Ok(config) => Ok(Loaded { config, warnings }),
        Err(error) => Err(error.with_warnings(warnings)),
    }
}

/// Chooses the front-end: JSON for `*.json` or text starting with `{`, HCL v1 otherwise.
fn parse(name: &Arc<str>, text: &str) -> Result<Vec<tree::Entry>, ConfigError> {
    let body = text.trim_start_matches('\u{feff}').trim_start();
    let result = if name.ends_with(".json") || body.starts_with('{') {
        json::parse(text)
    } else {
        hcl1::parse(text)
    };
    result.map_err(|e| {
        let message = format!("syntax error: {}", e.message);
        ConfigError::new(Location::new(name, e.line), "", message)
    })
}

/// Runs both front-ends and the whole pipeline on arbitrary bytes, for the fuzzer.
#[doc(hidden)]
pub fn fuzz_config_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let env = Environment::from_pairs([("AAD", "x"), ("VAULT_ADDR", "http://127.0.0.1:1")]);
    let first = Location::nowhere();
    for name in ["fuzz.hcl", "fuzz.json"] {
        let sources = [(Arc::from(name), text.clone())];
        if let Ok(loaded) = load_sources(&sources, &first, &env, &Overrides::default()) {
            let _ = loaded.config.render_redacted();
            for listener in &loaded.config.listeners {
                let _ = listener.socket_mode_bits();
            }
        }
    }
}

#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod tests;
