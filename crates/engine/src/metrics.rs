//! A small Prometheus registry: counters, gauges and histograms with labels, rendered in
//! the text exposition format. Shared by the engine (queues, batches) and the API (requests).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Seconds buckets for latencies, from 1 ms to 60 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets for batch sizes.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

type Labels = Vec<(&'static str, String)>;

enum Series {
    Counter(f64),
    Gauge(f64),
    Histogram {
        bounds: &'static [f64],
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

struct Family {
    help: &'static str,
    series: BTreeMap<Labels, Series>,
}

/// The process-wide metrics registry.
#[derive(Default)]
pub struct Metrics {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    pub fn inc(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        by: f64,
    ) {
        self.with(
            name,
            help,
            labels,
            || Series::Counter(0.0),
            |s| {
                if let Series::Counter(v) = s {
                    *v += by;
                }
            },
        );
    }

    pub fn set(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        self.with(
            name,
            help,
            labels,
            || Series::Gauge(0.0),
            |s| {
                if let Series::Gauge(v) = s {
                    *v = value;
                }
            },
        );
    }

    pub fn add(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        by: f64,
    ) {
        self.with(
            name,
            help,
            labels,
            || Series::Gauge(0.0),
            |s| {
                if let Series::Gauge(v) = s {
                    *v += by;
                }
            },
        );
    }

    pub fn observe(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        bounds: &'static [f64],
        value: f64,
    ) {
        let empty = || Series::Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        };
        self.with(name, help, labels, empty, |s| {
            if let Series::Histogram {
                bounds,
                counts,
                sum,
                count,
            } = s
            {
                for (i, b) in bounds.iter().enumerate() {
                    if value <= *b {
                        counts[i] += 1;
                    }
                }
                *sum += value;
                *count += 1;
            }
        });
    }

    /// Forget one series (e.g. the gauges of a model that was unloaded).
    pub fn remove(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(family) = families.get_mut(name) {
            let key: Labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
            family.series.remove(&key);
        }
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, family) in families.iter() {
            let kind = match family.series.values().next() {
                Some(Series::Counter(_)) => "counter",
                Some(Series::Gauge(_)) => "gauge",
                Some(Series::Histogram { .. }) => "histogram",
                None => continue,
            };
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, series) in &family.series {
                match series {
                    Series::Counter(v) | Series::Gauge(v) => {
                        let _ = writeln!(out, "{name}{} {v}", label_text(labels, None));
                    }
                    Series::Histogram {
                        bounds,
                        counts,
                        sum,
                        count,
                    } => {
                        for (b, c) in bounds.iter().zip(counts) {
                            let le = b.to_string();
                            let _ =
                                writeln!(out, "{name}_bucket{} {c}", label_text(labels, Some(&le)));
                        }
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {count}",
                            label_text(labels, Some("+Inf"))
                        );
                        let _ = writeln!(out, "{name}_sum{} {sum}", label_text(labels, None));
                        let _ = writeln!(out, "{name}_count{} {count}", label_text(labels, None));
                    }
                }
            }
        }
        out
    }

    fn with(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        create: impl FnOnce() -> Series,
        update: impl FnOnce(&mut Series),
    ) {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            series: BTreeMap::new(),
        });
        let key: Labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        update(family.series.entry(key).or_insert_with(create));
    }
}

fn label_text(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_cumulative_histograms() {
        let m = Metrics::new();
        m.inc("req_total", "Requests.", &[("route", "/a")], 1.0);
        m.inc("req_total", "Requests.", &[("route", "/a")], 2.0);
        m.set("depth", "Queue depth.", &[("model", "x\"y")], 4.0);
        m.observe("lat", "Latency.", &[], &[0.1, 1.0], 0.5);
        m.observe("lat", "Latency.", &[], &[0.1, 1.0], 0.05);
        let text = m.render();
        assert!(
            text.contains("# TYPE req_total counter\nreq_total{route=\"/a\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("depth{model=\"x\\\"y\"} 4"), "{text}");
        assert!(text.contains("lat_bucket{le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("lat_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("lat_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("lat_count 2\n"), "{text}");
    }
}
