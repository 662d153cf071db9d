//! Percentiles of measured durations.

use std::time::Duration;

/// Summary of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

/// Nearest-rank percentile `p` (0-100) of sorted `v`.
fn rank(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[idx.clamp(1, v.len()) - 1]
}

/// Summarizes `samples`.
pub fn summarize(samples: &[Duration]) -> Summary {
    let mut v = samples.to_vec();
    v.sort();
    Summary {
        n: v.len(),
        p50: rank(&v, 50.0),
        p99: rank(&v, 99.0),
        max: v.last().copied().unwrap_or_default(),
    }
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        let s = summarize(&v);
        assert_eq!(
            (s.p50, s.p99, s.max),
            (Duration::from_millis(5), Duration::from_millis(10), Duration::from_millis(10))
        );
        assert_eq!(summarize(&[]).n, 0);
    }
}
