//! The agent's own metrics: a fixed set of counters, gauges and one latency summary, rendered
//! in Vault's JSON shape or as Prometheus text.
//!
//! Recording is a handful of relaxed atomic operations on fixed slots: no lock, no lookup by
//! name, no allocation. Values are cumulative since start; Vault's in-memory sink instead
//! reports 10-second intervals, so `Rate` here is the mean rate since start.
//!
//! `agent.cache.hit` and `agent.cache.miss` count only requests the cache looked up. Vault
//! counts every proxied success as a miss, even with no cache configured, which makes the
//! hit ratio meaningless; we do not follow it there.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI8, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lease_cache::LeaseCache;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// How metrics are named and served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSettings {
    /// First segment of every name: `vault` (Vault's agent), `bao` (OpenBao's) or the
    /// configured `metrics_prefix`.
    pub prefix: String,
    /// Serve Prometheus text; when false, asking for it gets Vault's 400
    /// `prometheus is not enabled`.
    pub prometheus: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            prefix: "vault".to_owned(),
            prometheus: true,
        }
    }
}

/// The metrics registry, shared by every listener and fed by the binary's auth hook.
///
/// Cloning shares the registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Registry>,
}

struct Registry {
    prefix: String,
    prometheus: bool,
    started: Instant,
    counters: [AtomicU64; Counter::ALL.len()],
    latency: Summary,
    /// -1 until the binary reports, then 0 or 1.
    authenticated: AtomicI8,
    /// Read for gauges when rendering, never on the request path.
    cache: Mutex<Option<LeaseCache>>,
}

/// The counters, in the order they are rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counter {
    ProxySuccess,
    ProxyClientError,
    ProxyError,
    CacheHit,
    CacheMiss,
    AuthSuccess,
    AuthFailure,
}

impl Counter {
    const ALL: [Counter; 7] = [
        Counter::ProxySuccess,
        Counter::ProxyClientError,
        Counter::ProxyError,
        Counter::CacheHit,
        Counter::CacheMiss,
        Counter::AuthSuccess,
        Counter::AuthFailure,
    ];

    fn name(self) -> &'static str {
        match self {
            Counter::ProxySuccess => "agent.proxy.success",
            Counter::ProxyClientError => "agent.proxy.client_error",
            Counter::ProxyError => "agent.proxy.error",
            Counter::CacheHit => "agent.cache.hit",
            Counter::CacheMiss => "agent.cache.miss",
            Counter::AuthSuccess => "agent.auth.success",
            Counter::AuthFailure => "agent.auth.failure",
        }
    }
}

const LATENCY_NAME: &str = "agent.proxy.request_duration";

/// Request latency: count, sum, sum of squares, min and max, in microseconds.
struct Summary {
    count: AtomicU64,
    sum_us: AtomicU64,
    /// Squares in units of 10 µs, so that a u64 holds billions of one-second requests.
    sum_squares: AtomicU64,
    min_us: AtomicU64,
    max_us: AtomicU64,
}

/// The body Vault sends when Prometheus output is off.
pub(crate) const PROMETHEUS_DISABLED: &str = "prometheus is not enabled";

impl Metrics {
    /// An empty registry.
    pub fn new(settings: MetricsSettings) -> Self {
        Self {
            inner: Arc::new(Registry {
                prefix: settings.prefix,
                prometheus: settings.prometheus,
                started: Instant::now(),
                counters: Default::default(),
                latency: Summary {
                    count: AtomicU64::new(0),
                    sum_us: AtomicU64::new(0),
                    sum_squares: AtomicU64::new(0),
                    min_us: AtomicU64::new(u64::MAX),
                    max_us: AtomicU64::new(0),
                },
                authenticated: AtomicI8::new(-1),
                cache: Mutex::new(None),
            }),
        }
    }

    /// Counts a successful login or token renewal (`agent.auth.success`).
    pub fn auth_succeeded(&self) {
        self.count(Counter::AuthSuccess);
    }

    /// Counts a failed login or renewal (`agent.auth.failure`).
    pub fn auth_failed(&self) {
        self.count(Counter::AuthFailure);
    }

    /// Sets the `agent.authenticated` gauge: whether auto-auth holds a valid token.
    pub fn set_authenticated(&self, authenticated: bool) {
        self.inner
            .authenticated
            .store(i8::from(authenticated), Ordering::Relaxed);
    }

    /// Renders Vault's JSON shape.
    pub fn render_json(&self) -> String {
        let snapshot = self.snapshot();

        let labels = json!({});
        let gauges: Vec<Value> = snapshot
            .gauges
            .iter()
            .map(|(name, value)| json!({"Name": name, "Value": value, "Labels": labels}))
            .collect();

        let counters: Vec<Value> = snapshot
            .counters
            .iter()
            .map(|(name, count)| {
                let stats = Stats::of_ones(*count);
                stats.to_json(name, snapshot.uptime)
            })
            .collect();

        let samples = vec![
            snapshot
                .latency
                .to_json(&snapshot.latency_name, snapshot.uptime),
        ];

        json!({
            "Timestamp": go_timestamp(SystemTime::now()),
            "Gauges": gauges,
            "Points": [],
            "Counters": counters,
            "Samples": samples,
        })
        .to_string()
    }

    /// Renders Prometheus text (exposition format 0.0.4); `None` when Prometheus is off.
    pub fn render_prometheus(&self) -> Option<String> {
        if !self.inner.prometheus {
            return None;
        }
        let snapshot = self.snapshot();
        let mut out = String::with_capacity(1024);

        for (name, value) in &snapshot.gauges {
            let name = prometheus_name(name);
            let _ = writeln!(out, "# TYPE {name} gauge\n{name} {value}");
        }
        for (name, count) in &snapshot.counters {
            let name = prometheus_name(name);
            let _ = writeln!(out, "# TYPE {name} counter\n{name} {count}");
        }

        let name = prometheus_name(&snapshot.latency_name);
        let latency = &snapshot.latency;
        let _ = writeln!(
            out,
            "# TYPE {name} summary\n{name}_sum {}\n{name}_count {}",
            latency.sum, latency.count
        );
        Some(out)
    }

    /// Lets the cache's size show as gauges.
    pub(crate) fn watch_cache(&self, cache: &LeaseCache) {
        *self.inner.cache.lock() = Some(cache.clone());
    }

    pub(crate) fn count(&self, counter: Counter) {
        self.inner.counters[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one proxied request's time to its response head.
    pub(crate) fn observe_latency(&self, elapsed: Duration) {
        let summary = &self.inner.latency;
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let tens = micros / 10;

        summary.count.fetch_add(1, Ordering::Relaxed);
        summary.sum_us.fetch_add(micros, Ordering::Relaxed);
        summary
            .sum_squares
            .fetch_add(tens.saturating_mul(tens), Ordering::Relaxed);
        summary.min_us.fetch_min(micros, Ordering::Relaxed);
        summary.max_us.fetch_max(micros, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn counter(&self, counter: Counter) -> u64 {
        self.inner.counters[counter as usize].load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> Snapshot {
        let inner = &self.inner;
        let prefix = &inner.prefix;
        let full = |name: &str| format!("{prefix}.{name}");

        let mut gauges = Vec::new();
        let authenticated = inner.authenticated.load(Ordering::Relaxed);
        if authenticated >= 0 {
            gauges.push((full("agent.authenticated"), authenticated as u64));
        }
        if let Some(cache) = inner.cache.lock().as_ref() {
            let stats = cache.stats();
            gauges.push((full("agent.cache.entries"), stats.entries as u64));
            gauges.push((full("agent.cache.leases"), stats.leases as u64));
            gauges.push((full("agent.cache.tokens"), stats.tokens as u64));
        }

        let counters = Counter::ALL
            .iter()
            .map(|&counter| {
                let value = inner.counters[counter as usize].load(Ordering::Relaxed);
                (full(counter.name()), value)
            })
            .collect();

        Snapshot {
            gauges,
            counters,
            latency_name: full(LATENCY_NAME),
            latency: inner.latency.stats(),
            uptime: inner.started.elapsed(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(MetricsSettings::default())
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

struct Snapshot {
    gauges: Vec<(String, u64)>,
    counters: Vec<(String, u64)>,
    latency_name: String,
    latency: Stats,
    uptime: Duration,
}

/// What Vault reports for a counter or a sample.
#[derive(Debug, PartialEq)]
struct Stats {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    mean: f64,
    stddev: f64,
}

impl Stats {
    /// A counter is `count` increments of one.
    fn of_ones(count: u64) -> Self {
        let one = if count == 0 { 0.0 } else { 1.0 };
        Self {
            count,
            sum: count as f64,
            min: one,
            max: one,
            mean: one,
            stddev: 0.0,
        }
    }

    fn to_json(&self, name: &str, uptime: Duration) -> Value {
        let rate = self.sum / uptime.as_secs_f64().max(1.0);
        json!({
            "Name": name,
            "Count": self.count,
            "Rate": rate,
            "Sum": self.sum,
            "Min": self.min,
            "Max": self.max,
            "Mean": self.mean,
            "Stddev": self.stddev,
            "Labels": {},
        })
    }
}

impl Summary {
    /// In milliseconds, as Vault reports durations.
    fn stats(&self) -> Stats {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return Stats::of_ones(0);
        }
        let n = count as f64;
        let sum_ms = self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0;
        let mean = sum_ms / n;
        // Squares were kept in units of 10 µs: one unit squared is 1e-4 ms².
        let mean_square = self.sum_squares.load(Ordering::Relaxed) as f64 * 1e-4 / n;
        let variance = (mean_square - mean * mean).max(0.0);

        Stats {
            count,
            sum: sum_ms,
            min: self.min_us.load(Ordering::Relaxed) as f64 / 1000.0,
            max: self.max_us.load(Ordering::Relaxed) as f64 / 1000.0,
            mean,
            stddev: variance.sqrt(),
        }
    }
}

fn prometheus_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A time as Go prints a UTC `time.Time`, to the second: `2026-12-03 16:11:17 +0000 UTC`.
fn go_timestamp(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (year, month, day) = civil_date(secs / 86_400);
    let of_day = secs % 86_400;

    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} +0000 UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The Gregorian date of a day count since 1970-01-01.
fn civil_date(days: u64) -> (u64, u64, u64) {
    // Shift to an era starting in March so that leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_timestamps() {
        fn check(secs: u64, expected: &str) {
            let time = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(go_timestamp(time), expected, "{secs}");
        }

        check(0, "1970-01-01 00:00:00 +0000 UTC");
        check(951_782_400, "2000-02-29 00:00:00 +0000 UTC");
        check(1_709_251_199, "2024-02-29 23:59:59 +0000 UTC");
        check(1_798_675_200, "2026-12-31 00:00:00 +0000 UTC");
        check(4_107_542_400, "2100-03-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn latency_statistics() {
        let metrics = Metrics::default();
        for ms in [1, 2, 3] {
            metrics.observe_latency(Duration::from_millis(ms));
        }

        let stats = metrics.inner.latency.stats();
        assert_eq!(stats.count, 3);
        assert!((stats.sum - 6.0).abs() < 1e-9, "{stats:?}");
        assert!((stats.min - 1.0).abs() < 1e-9, "{stats:?}");
        assert!((stats.max - 3.0).abs() < 1e-9, "{stats:?}");
        assert!((stats.mean - 2.0).abs() < 1e-9, "{stats:?}");
        // Population standard deviation of 1, 2, 3.
        assert!(
            (stats.stddev - (2.0f64 / 3.0).sqrt()).abs() < 1e-6,
            "{stats:?}"
        );
    }

    #[test]
    fn json_shape_and_names() {
        let metrics = Metrics::default();
        metrics.count(Counter::ProxySuccess);
        metrics.count(Counter::ProxySuccess);
        metrics.auth_succeeded();
        metrics.set_authenticated(true);

        let rendered: Value = serde_json::from_str(&metrics.render_json()).unwrap();
        let find = |list: &str, name: &str| {
            rendered[list]
                .as_array()
                .unwrap()
                .iter()
                .find(|item| item["Name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{name} missing from {list}: {rendered}"))
        };

        let success = find("Counters", "vault.agent.proxy.success");
        assert_eq!(success["Count"], 2);
        assert_eq!(success["Sum"], 2.0);
        assert_eq!(success["Max"], 1.0);
        assert_eq!(success["Labels"], json!({}));
        assert_eq!(find("Counters", "vault.agent.auth.success")["Count"], 1);
        assert_eq!(find("Counters", "vault.agent.cache.hit")["Count"], 0);
        assert_eq!(find("Gauges", "vault.agent.authenticated")["Value"], 1);
        assert_eq!(
            find("Samples", "vault.agent.proxy.request_duration")["Count"],
            0
        );
        assert!(
            rendered["Timestamp"]
                .as_str()
                .unwrap()
                .ends_with("+0000 UTC")
        );
    }

    #[test]
    fn prometheus_text() {
        let metrics = Metrics::new(MetricsSettings {
            prefix: "bao".to_owned(),
            prometheus: true,
        });
        metrics.count(Counter::CacheMiss);
        metrics.observe_latency(Duration::from_micros(1500));

        let text = metrics.render_prometheus().unwrap();
        assert!(text.contains("# TYPE bao_agent_cache_miss counter\nbao_agent_cache_miss 1\n"));
        assert!(text.contains("bao_agent_proxy_success 0\n"));
        assert!(
            text.contains("bao_agent_proxy_request_duration_sum 1.5\n"),
            "{text}"
        );
        assert!(text.contains("bao_agent_proxy_request_duration_count 1\n"));
        assert!(!text.contains("agent_authenticated"), "not reported yet");

        let off = Metrics::new(MetricsSettings {
            prefix: "vault".to_owned(),
            prometheus: false,
        });
        assert_eq!(off.render_prometheus(), None);
    }
}
