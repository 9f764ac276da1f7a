//! The metric registry: named gauges and counters with their help text, rendered in
//! the Prometheus text exposition format (version 0.0.4).
//!
//! Owns the names, the values and the rendering; does not own what a value means
//! (the feeds in [`crate::feed`] set them from the libraries' reports) or serving
//! them ([`crate::server`]). Metrics carry no labels: one process runs one mirror or
//! one backup watch, and Prometheus adds the instance.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// What a metric is, as its `# TYPE` line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A total that only grows (from 0 when the process starts).
    Counter,
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    /// The value as `f64` bits.
    value: Arc<AtomicU64>,
}

/// The metrics of one process, in the order they were registered. Clones share them.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    families: Arc<Mutex<Vec<Family>>>,
}

/// A gauge's handle: set it to the value now.
#[derive(Clone, Debug)]
pub struct Gauge(Arc<AtomicU64>);

/// A counter's handle: it only grows.
#[derive(Clone, Debug)]
pub struct Counter(Arc<AtomicU64>);

impl Gauge {
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl Counter {
    /// Moves the counter up to `total`, a running total kept by whoever reports it;
    /// a smaller total leaves it where it is, so the counter never goes down.
    pub fn set_total(&self, total: u64) {
        let mut now = self.0.load(Ordering::Relaxed);
        while (total as f64) > f64::from_bits(now) {
            match self.0.compare_exchange_weak(
                now,
                (total as f64).to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => now = seen,
            }
        }
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// True for a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    fn register(&self, name: &'static str, help: &'static str, kind: Kind) -> Arc<AtomicU64> {
        assert!(valid_name(name), "{name:?} is not a Prometheus metric name");
        let mut families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = families.iter().find(|f| f.name == name) {
            assert_eq!(f.kind, kind, "metric {name} registered as two kinds");
            return f.value.clone();
        }
        let value = Arc::new(AtomicU64::new(0f64.to_bits()));
        families.push(Family {
            name,
            help,
            kind,
            value: value.clone(),
        });
        value
    }

    /// The gauge `name` (registered on first use; later calls share it).
    pub fn gauge(&self, name: &'static str, help: &'static str) -> Gauge {
        Gauge(self.register(name, help, Kind::Gauge))
    }

    /// The counter `name`, which should end in `_total`.
    pub fn counter(&self, name: &'static str, help: &'static str) -> Counter {
        Counter(self.register(name, help, Kind::Counter))
    }

    /// Every metric with its `# HELP` and `# TYPE` lines, in the text exposition
    /// format.
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        for f in families.iter() {
            let kind = match f.kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
            };
            let value = f64::from_bits(f.value.load(Ordering::Relaxed));
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            let _ = writeln!(out, "{} {}", f.name, format_value(value));
        }
        out
    }
}

/// HELP text escapes backslashes and line feeds.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Integers without a fraction; infinities and NaN as Prometheus spells them.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // Rust prints 3.0 as "3" and 0.25 as "0.25": both valid sample values.
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_value_per_metric_in_registration_order() {
        let r = Registry::new();
        let g = r.gauge(
            "strata_test_lag_seconds",
            "How far behind.\nSecond line \\ here.",
        );
        let c = r.counter("strata_test_errors_total", "Errors.");
        g.set(2.5);
        c.set_total(3);
        c.set_total(1);
        assert_eq!(
            r.render(),
            "# HELP strata_test_lag_seconds How far behind.\\nSecond line \\\\ here.\n\
             # TYPE strata_test_lag_seconds gauge\n\
             strata_test_lag_seconds 2.5\n\
             # HELP strata_test_errors_total Errors.\n\
             # TYPE strata_test_errors_total counter\n\
             strata_test_errors_total 3\n"
        );
        // Registering again shares the value.
        r.gauge("strata_test_lag_seconds", "").set(f64::INFINITY);
        assert!(r.render().contains("strata_test_lag_seconds +Inf\n"));
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("strata_backup_commits_total"));
        assert!(valid_name("a:b_c9"));
        assert!(!valid_name("9a") && !valid_name("a-b") && !valid_name(""));
    }
}
