//! The process's Prometheus registry, on `prometheus-client`: counters, gauges and
//! histograms with labels, rendered in the text exposition format (0.0.4) that the HPA's
//! adapter and the dashboards scrape. Shared by the engine (queues, batches) and the API
//! (requests). A family is registered on its first use, under the name callers give it.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Seconds buckets for latencies, from 1 ms to 60 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets for batch sizes.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// The content type of `Metrics::render`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Label pairs in the order callers give them (the order they are rendered in).
type Labels = Vec<(&'static str, String)>;

/// A family's histograms all share the bucket bounds of its first observation.
#[derive(Clone)]
struct Buckets(&'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

#[derive(Clone)]
enum Kind {
    Counter(Family<Labels, Counter>),
    Gauge(Family<Labels, Gauge<f64, AtomicU64>>),
    Histogram(Family<Labels, Histogram, Buckets>),
}

/// The process-wide metrics registry.
#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
    families: Mutex<HashMap<&'static str, Kind>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Count `by` more. `name` ends in `_total`, as it is rendered.
    pub fn inc(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        by: u64,
    ) {
        if let Kind::Counter(f) = self.family(name, help, || Kind::Counter(Family::default())) {
            f.get_or_create(&owned(labels)).inc_by(by);
        }
    }

    pub fn set(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        if let Kind::Gauge(f) = self.family(name, help, || Kind::Gauge(Family::default())) {
            f.get_or_create(&owned(labels)).set(value);
        }
    }

    pub fn add(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        by: f64,
    ) {
        if let Kind::Gauge(f) = self.family(name, help, || Kind::Gauge(Family::default())) {
            f.get_or_create(&owned(labels)).inc_by(by);
        }
    }

    pub fn observe(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        bounds: &'static [f64],
        value: f64,
    ) {
        let create = || Kind::Histogram(Family::new_with_constructor(Buckets(bounds)));
        if let Kind::Histogram(f) = self.family(name, help, create) {
            f.get_or_create(&owned(labels)).observe(value);
        }
    }

    /// Forget one series (e.g. the gauges of a model that was unloaded).
    pub fn remove(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        let family = self.lock_families().get(name).cloned();
        let labels = owned(labels);
        match family {
            Some(Kind::Counter(f)) => f.remove(&labels),
            Some(Kind::Gauge(f)) => f.remove(&labels),
            Some(Kind::Histogram(f)) => f.remove(&labels),
            None => false,
        };
    }

    /// The text exposition format (version 0.0.4; `CONTENT_TYPE`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail; an error would leave a partial page.
        if prometheus_text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }

    /// The family `name`, registered on first use. A name is used with one kind only;
    /// a call with another kind finds the first one and is ignored.
    fn family(
        &self,
        name: &'static str,
        help: &'static str,
        create: impl FnOnce() -> Kind,
    ) -> Kind {
        let mut families = self.lock_families();
        if let Some(kind) = families.get(name) {
            return kind.clone();
        }
        let kind = create();
        // The library adds the `_total` of counters and the full stop of help texts.
        let help = help.strip_suffix('.').unwrap_or(help);
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        match &kind {
            Kind::Counter(f) => {
                registry.register(name.strip_suffix("_total").unwrap_or(name), help, f.clone())
            }
            Kind::Gauge(f) => registry.register(name, help, f.clone()),
            Kind::Histogram(f) => registry.register(name, help, f.clone()),
        }
        families.insert(name, kind.clone());
        kind
    }

    fn lock_families(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, Kind>> {
        self.families.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn owned(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_cumulative_histograms() {
        let m = Metrics::new();
        m.inc(
            "req_total",
            "Requests.",
            &[("route", "/a"), ("method", "GET")],
            1,
        );
        m.inc(
            "req_total",
            "Requests.",
            &[("route", "/a"), ("method", "GET")],
            2,
        );
        m.set("depth", "Queue depth.", &[("model", "x\"y")], 4.0);
        m.observe("lat", "Latency.", &[], &[0.1, 1.0], 0.5);
        m.observe("lat", "Latency.", &[], &[0.1, 1.0], 0.05);
        let text = m.render();
        assert!(
            text.contains(
                "# HELP req_total Requests.\n# TYPE req_total counter\nreq_total{route=\"/a\",method=\"GET\"} 3\n"
            ),
            "{text}"
        );
        assert!(text.contains("depth{model=\"x\\\"y\"} 4"), "{text}");
        assert!(text.contains("lat_bucket{le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("lat_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("lat_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("lat_count 2\n"), "{text}");
        assert!(
            !text.contains("# EOF"),
            "the classic text format, not OpenMetrics"
        );
    }

    #[test]
    fn removed_series_are_no_longer_rendered() {
        let m = Metrics::new();
        m.set("aiaas_queue_depth", "Waiting.", &[("model", "a")], 1.0);
        m.set("aiaas_queue_depth", "Waiting.", &[("model", "b")], 2.0);
        m.remove("aiaas_queue_depth", &[("model", "a")]);
        let text = m.render();
        assert!(!text.contains("model=\"a\""), "{text}");
        assert!(text.contains("aiaas_queue_depth{model=\"b\"} 2"), "{text}");
    }
}
