//! Logs as Vault Agent writes them: hclog's `standard` line
//! (`2026-12-03T16:11:17.241Z [INFO]  agent.sink.file: token written: path=/run/token`) or its
//! `json` object, to stderr and optionally to a rotated file. The level can be changed at
//! run time (SIGHUP re-reads it from the config file).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Standard,
    Json,
}

/// Where and how much to log, from flags, environment and config.
#[derive(Debug, Clone)]
pub(crate) struct LogSettings {
    pub(crate) level: LevelFilter,
    pub(crate) format: Format,
    pub(crate) file: Option<RotateSettings>,
}

/// A log file and its rotation rule.
#[derive(Debug, Clone)]
pub(crate) struct RotateSettings {
    pub(crate) path: PathBuf,
    pub(crate) max_bytes: u64,
    pub(crate) max_duration: Duration,
    pub(crate) max_files: i64,
}

/// Changes the level of the running subscriber.
#[derive(Clone)]
pub(crate) struct LevelHandle(reload::Handle<Targets, tracing_subscriber::Registry>);

impl LevelHandle {
    pub(crate) fn set(&self, level: LevelFilter) -> Result<()> {
        self.0
            .modify(|targets| *targets = filter_for(level))
            .context("changing the log level")
    }
}

/// The file a `-log-file` value names: a directory (ending in `/`) gets `agent.log`, a
/// name without an extension gets `.log`.
pub(crate) fn log_file_path(value: &str) -> PathBuf {
    if value.ends_with('/') {
        return Path::new(value).join("agent.log");
    }
    let path = PathBuf::from(value);
    if path.extension().is_none() {
        return path.with_extension("log");
    }
    path
}

/// Installs the global subscriber. Our crates log at `level`; dependencies only at warn
/// and above unless tracing is asked for.
pub(crate) fn init(settings: &LogSettings) -> Result<LevelHandle> {
    let (filter, handle) = reload::Layer::new(filter_for(settings.level));
    let writer = Output::new(settings.file.clone())?;
    let layer = tracing_subscriber::fmt::layer()
        .event_format(HclogFormat {
            format: settings.format,
        })
        .with_ansi(false)
        .with_writer(writer);

    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .context("installing the logger")?;
    Ok(LevelHandle(handle))
}

const OUR_CRATES: &[&str] = &[
    "vault_agent",
    "agent",
    "vault_client",
    "agent_config",
    "auto_auth",
    "token_sink",
    "lease_cache",
    "api_proxy",
];

fn filter_for(level: LevelFilter) -> Targets {
    let others = if level >= LevelFilter::TRACE {
        LevelFilter::DEBUG
    } else {
        LevelFilter::WARN.min(level)
    };
    OUR_CRATES
        .iter()
        .fold(Targets::new().with_default(others), |t, c| {
            t.with_target(*c, level)
        })
}

/// hclog's logger name for a tracing target (a Rust module path).
fn module_name(target: &str) -> String {
    let mut parts = target.split("::");
    let krate = parts.next().unwrap_or_default();
    let base = match krate {
        "auto_auth" => "agent.auth",
        "token_sink" => "agent.sink",
        "lease_cache" => "agent.cache",
        "api_proxy" => "agent.apiproxy",
        "vault_client" => "agent.client",
        "agent_config" => "agent.config",
        "agent" | "vault_agent" => "agent",
        _ => return target.replace("::", "."),
    };
    let mut name = base.to_owned();
    for part in parts {
        name.push('.');
        name.push_str(part);
    }
    name
}

struct HclogFormat {
    format: Format,
}

impl<S, N> FormatEvent<S, N> for HclogFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let spans = span_fields(ctx);
        let now = timestamp(SystemTime::now());
        let module = module_name(meta.target());

        match self.format {
            Format::Standard => {
                let level = match *meta.level() {
                    Level::TRACE => "[TRACE]",
                    Level::DEBUG => "[DEBUG]",
                    Level::INFO => "[INFO] ",
                    Level::WARN => "[WARN] ",
                    Level::ERROR => "[ERROR]",
                };
                write!(writer, "{now} {level} {module}: {}", fields.message)?;
                let mut first = true;
                for (key, value) in &fields.pairs {
                    let sep = if first { ": " } else { " " };
                    first = false;
                    write!(writer, "{sep}{key}={}", quote_if_needed(value))?;
                }
                if !spans.is_empty() {
                    let sep = if first { ": " } else { " " };
                    write!(writer, "{sep}{spans}")?;
                }
                writeln!(writer)
            }
            Format::Json => {
                let mut object = serde_json::Map::new();
                let level = meta.level().as_str().to_ascii_lowercase();
                object.insert("@level".into(), level.into());
                object.insert("@message".into(), fields.message.into());
                object.insert("@module".into(), module.into());
                object.insert("@timestamp".into(), now.into());
                for (key, value) in fields.pairs {
                    object.insert(key, value.into());
                }
                if !spans.is_empty() {
                    object.insert("@span".into(), spans.into());
                }
                let line = serde_json::Value::Object(object).to_string();
                writeln!(writer, "{line}")
            }
        }
    }
}

/// The fields of the spans the event happened in (outermost first), already formatted by
/// the subscriber as `key=value` text.
fn span_fields<S, N>(ctx: &FmtContext<'_, S, N>) -> String
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let mut out = String::new();
    let Some(scope) = ctx.event_scope() else {
        return out;
    };
    for span in scope.from_root() {
        let extensions = span.extensions();
        let Some(fields) = extensions.get::<FormattedFields<N>>() else {
            continue;
        };
        if fields.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(fields);
    }
    out
}

#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.pairs.push((field.name().to_owned(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.pairs.push((field.name().to_owned(), text));
        }
    }
}

fn quote_if_needed(value: &str) -> String {
    if value.is_empty() || value.contains([' ', '"', '=']) {
        format!("{value:?}")
    } else {
        value.to_owned()
    }
}

/// RFC 3339 UTC with milliseconds, as hclog prints it.
fn timestamp(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or_default());
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// stderr, plus the rotated file when one is configured.
#[derive(Clone)]
struct Output {
    file: Option<Arc<Mutex<RotatingFile>>>,
}

impl Output {
    fn new(file: Option<RotateSettings>) -> Result<Self> {
        let file = file
            .map(RotatingFile::open)
            .transpose()?
            .map(|f| Arc::new(Mutex::new(f)));
        Ok(Self { file })
    }
}

impl<'a> MakeWriter<'a> for Output {
    type Writer = OutputWriter;

    fn make_writer(&'a self) -> Self::Writer {
        OutputWriter {
            file: self.file.clone(),
        }
    }
}

struct OutputWriter {
    file: Option<Arc<Mutex<RotatingFile>>>,
}

impl std::io::Write for OutputWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(buf)?;
        if let Some(file) = &self.file {
            // A broken log file must not stop the agent; stderr still has the line.
            let _ = file.lock().write_line(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A log file rotated by size and age: the current file keeps its name, rotated ones get
/// `-<unix nanos>` before the extension.
struct RotatingFile {
    settings: RotateSettings,
    file: std::fs::File,
    written: u64,
    opened: SystemTime,
}

impl RotatingFile {
    fn open(settings: RotateSettings) -> Result<Self> {
        let file = open_log_file(&settings.path)
            .with_context(|| format!("opening the log file {}", settings.path.display()))?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            settings,
            file,
            written,
            opened: SystemTime::now(),
        })
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let too_big = self.settings.max_bytes > 0
            && self.written + line.len() as u64 > self.settings.max_bytes;
        let too_old = !self.settings.max_duration.is_zero()
            && self.opened.elapsed().unwrap_or_default() >= self.settings.max_duration;
        if (too_big || too_old) && self.written > 0 {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.written += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let path = &self.settings.path;
        let stem = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let rotated_name = match &ext {
            Some(ext) => format!("{stem}-{nanos}.{ext}"),
            None => format!("{stem}-{nanos}"),
        };
        std::fs::rename(path, path.with_file_name(rotated_name))?;
        self.file = open_log_file(path)?;
        self.written = 0;
        self.opened = SystemTime::now();
        self.prune(&stem, ext.as_deref())
    }

    fn prune(&self, stem: &str, ext: Option<&str>) -> std::io::Result<()> {
        let keep = match self.settings.max_files {
            0 => return Ok(()),
            n if n < 0 => 0,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let dir = self.settings.path.parent().unwrap_or(Path::new("."));
        let prefix = format!("{stem}-");
        let mut rotated: Vec<PathBuf> = std::fs::read_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(&prefix) && ext.is_none_or(|ext| name.ends_with(&format!(".{ext}")))
        })
        .collect();
        rotated.sort();
        let excess = rotated.len().saturating_sub(keep);
        for old in rotated.into_iter().take(excess) {
            std::fs::remove_file(old)?;
        }
        Ok(())
    }
}

/// Opens a log file for appending, creating it 0640 (less the umask) as Vault does: the
/// default 0666 would let other users read it, or write into it under a umask of 000.
fn open_log_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;

    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_file_names() {
        assert_eq!(
            log_file_path("/var/log/"),
            PathBuf::from("/var/log/agent.log")
        );
        assert_eq!(log_file_path("/var/log/a"), PathBuf::from("/var/log/a.log"));
        assert_eq!(
            log_file_path("/var/log/a.txt"),
            PathBuf::from("/var/log/a.txt")
        );
    }

    #[test]
    fn module_names_follow_hclog() {
        assert_eq!(module_name("token_sink::file"), "agent.sink.file");
        assert_eq!(module_name("auto_auth"), "agent.auth");
        assert_eq!(module_name("hyper::proto"), "hyper.proto");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_319_791_241);
        assert_eq!(timestamp(t), "2026-12-03T17:43:11.241Z");
    }

    #[test]
    fn rotation_by_size_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        let mut file = RotatingFile::open(RotateSettings {
            path: path.clone(),
            max_bytes: 10,
            max_duration: Duration::ZERO,
            max_files: 2,
        })
        .unwrap();
        for _ in 0..6 {
            file.write_line(b"0123456789\n").unwrap();
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 3, "current file plus two rotated ones");
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789\n");
    }

    /// Log files are created 0640 (less what the umask takes), as Vault creates them: not
    /// readable by other users, and writable by nobody but the agent, whatever the umask.
    #[test]
    fn log_files_are_not_open_to_other_users() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        let mut file = RotatingFile::open(RotateSettings {
            path: path.clone(),
            max_bytes: 10,
            max_duration: Duration::ZERO,
            max_files: 0,
        })
        .unwrap();
        for _ in 0..3 {
            file.write_line(b"0123456789\n").unwrap();
        }

        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & !0o640, 0, "{}: mode {mode:o}", path.display());
        }
    }
}
