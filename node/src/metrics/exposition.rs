//! The Prometheus text format (version 0.0.4), written by hand: a handful of families, no
//! registry needed.

use std::fmt::Write;

use raftmq_storage::latency::LatencySnapshot;

/// A page of metric families being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    format!("{{{}}}", inner.join(","))
}

impl Exposition {
    /// Starts family `name` of `kind` (`counter`, `gauge`, `histogram`).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, pairs: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{name}{} {value}", labels(pairs));
    }

    /// A histogram's samples (seconds), under family `name`.
    pub fn histogram(&mut self, name: &str, pairs: &[(&str, &str)], h: &LatencySnapshot) {
        for (bound, n) in &h.cumulative {
            let le = format!("{}", *bound as f64 / 1e6);
            let mut with = pairs.to_vec();
            with.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &with, n);
        }
        let mut with = pairs.to_vec();
        with.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &with, h.count);
        self.sample(&format!("{name}_sum"), pairs, h.sum_micros as f64 / 1e6);
        self.sample(&format!("{name}_count"), pairs, h.count);
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_histograms_follow_the_text_format() {
        let mut e = Exposition::default();
        e.family("x_total", "counter", "Things.");
        e.sample("x_total", &[("topic", "a\"b")], 3);
        let h = raftmq_storage::latency::LatencyHistogram::default();
        h.observe(std::time::Duration::from_millis(2));
        e.family("lat_seconds", "histogram", "Latency.");
        e.histogram("lat_seconds", &[("node", "1")], &h.snapshot());
        let page = e.finish();
        assert!(page.contains("# TYPE x_total counter\nx_total{topic=\"a\\\"b\"} 3\n"), "{page}");
        assert!(page.contains("lat_seconds_bucket{node=\"1\",le=\"0.001\"} 0\n"), "{page}");
        assert!(page.contains("lat_seconds_bucket{node=\"1\",le=\"0.0025\"} 1\n"), "{page}");
        assert!(page.contains("lat_seconds_bucket{node=\"1\",le=\"+Inf\"} 1\n"), "{page}");
        assert!(page.contains("lat_seconds_count{node=\"1\"} 1\n"), "{page}");
    }
}
