//! A latency histogram of fixed buckets, lock-free, for the send and fsync latencies the node
//! exports as Prometheus histograms (`raftmq_send_seconds`, `raftmq_fsync_seconds`).

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Upper bounds of the buckets, microseconds: 100 µs to 10 s, about three per decade.
pub const BOUNDS_MICROS: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Counts of observations per bucket (not cumulative), plus their count and sum.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BOUNDS_MICROS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A consistent-enough copy of a histogram: cumulative counts per bound, as Prometheus wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// `(upper bound µs, observations at or below it)`, ascending.
    pub cumulative: Vec<(u64, u64)>,
    /// Every observation.
    pub count: u64,
    /// Their sum, microseconds.
    pub sum_micros: u64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = BOUNDS_MICROS.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Their sum, microseconds.
    pub fn sum_micros(&self) -> u64 {
        self.sum_micros.load(Ordering::Relaxed)
    }

    /// The current counts.
    pub fn snapshot(&self) -> LatencySnapshot {
        let mut total = 0;
        let cumulative = BOUNDS_MICROS
            .iter()
            .zip(&self.buckets)
            .map(|(b, n)| {
                total += n.load(Ordering::Relaxed);
                (*b, total)
            })
            .collect();
        LatencySnapshot {
            cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_and_accumulate() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(80));
        h.observe(Duration::from_micros(900));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], (100, 1));
        assert_eq!(s.cumulative[3], (1_000, 2));
        assert_eq!(s.cumulative.last(), Some(&(10_000_000, 2)), "beyond the last bound: only in the count");
        assert_eq!(s.sum_micros, 60_000_980);
    }
}
