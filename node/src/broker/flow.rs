//! Flow control: a send is refused with TOO_MANY_REQUESTS, quickly and with a hint of when to try
//! again, when its broker group's backlog of accepted but un-applied writes is full
//! (`[broker] inflight_mib_max`, per group) or when the node is over its memory budget
//! (`[broker] memory_budget_mib`, resident memory of the process). Clients back off
//! exponentially (RocketMQ's 1 s × 1.6 up to 120 s); the hint lets them come back as soon as the
//! backlog has drained instead. The hint is part of the status message, in the fixed form
//! `retry after <n> ms`, which the SDK reads (`ClientError::retry_after`).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::Reason;
use tokio::sync::watch;

use super::Brokers;
use crate::error::BrokerError;

/// How often the sampler reads the resident memory and each group's drain rate.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// Shortest and longest hint.
const HINT_MIN_MS: u64 = 20;
const HINT_MAX_MS: u64 = 5_000;
/// Hint while over the memory budget (memory frees as the backlog drains and caches shrink).
const MEMORY_HINT_MS: u64 = 1_000;

/// The node's memory budget and what the sampler last saw.
#[derive(Debug, Default)]
pub struct Flow {
    /// Most resident memory before sends are refused, bytes (0: no budget).
    pub budget_bytes: u64,
    /// Resident memory as last sampled, bytes.
    pub rss_bytes: AtomicU64,
    /// Sends refused because the node was over its memory budget.
    pub rejected_memory: AtomicU64,
}

/// A TOO_MANY_REQUESTS answer: what is full, and when to try again.
pub fn throttled(what: impl std::fmt::Display, retry_after_ms: u64) -> BrokerError {
    BrokerError::BadRequest {
        code: Reason::TooManyRequests,
        message: format!("{what}; retry after {retry_after_ms} ms"),
    }
}

/// The hint for a backlog of `backlog` bytes draining at `rate` bytes per second.
pub fn drain_hint_ms(backlog: u64, rate: u64) -> u64 {
    if rate == 0 {
        return MEMORY_HINT_MS;
    }
    (backlog.saturating_mul(1000) / rate).clamp(HINT_MIN_MS, HINT_MAX_MS)
}

impl Flow {
    /// A budget of `budget_bytes` (0: none).
    pub fn new(budget_bytes: u64) -> Arc<Flow> {
        Arc::new(Flow { budget_bytes, ..Default::default() })
    }

    /// Refuses when the node is over its memory budget.
    pub fn admit(&self) -> Result<(), BrokerError> {
        let rss = self.rss_bytes.load(Ordering::Relaxed);
        if self.budget_bytes > 0 && rss > self.budget_bytes {
            self.rejected_memory.fetch_add(1, Ordering::Relaxed);
            return Err(throttled(
                format!(
                    "the node uses {} MiB, over its memory budget of {} MiB",
                    rss >> 20,
                    self.budget_bytes >> 20
                ),
                MEMORY_HINT_MS,
            ));
        }
        Ok(())
    }

    /// Samples resident memory and each broker group's drain rate until shutdown.
    pub async fn run(self: Arc<Self>, brokers: Brokers, mut shutdown: watch::Receiver<bool>) {
        let mut last: Vec<u64> =
            brokers.all().map(|b| b.batcher.stats().applied_bytes.load(Ordering::Relaxed)).collect();
        loop {
            tokio::select! {
                () = tokio::time::sleep(SAMPLE_EVERY) => {}
                _ = shutdown.changed() => return,
            }
            match tokio::fs::read_to_string("/proc/self/status").await {
                Ok(s) => {
                    if let Some(kb) = vm_rss_kib(&s) {
                        self.rss_bytes.store(kb << 10, Ordering::Relaxed);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot read resident memory"),
            }
            for (b, prev) in brokers.all().zip(last.iter_mut()) {
                let s = b.batcher.stats();
                let now = s.applied_bytes.load(Ordering::Relaxed);
                let per_sec = (now - *prev) * 1000 / SAMPLE_EVERY.as_millis() as u64;
                *prev = now;
                // Smoothed over about a second, so one slow fsync does not swing the hint.
                let old = s.drain_bytes_per_sec.load(Ordering::Relaxed);
                s.drain_bytes_per_sec.store((old * 3 + per_sec) / 4, Ordering::Relaxed);
            }
        }
    }
}

/// `VmRSS` of a `/proc/<pid>/status` text, KiB.
pub(crate) fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_follow_the_backlog_and_the_drain_rate() {
        assert_eq!(drain_hint_ms(64 << 20, 64 << 20), 1000, "a second's worth of backlog");
        assert_eq!(drain_hint_ms(1 << 10, 64 << 20), HINT_MIN_MS);
        assert_eq!(drain_hint_ms(64 << 20, 1), HINT_MAX_MS);
        assert_eq!(drain_hint_ms(1, 0), MEMORY_HINT_MS, "nothing drained yet");
        let e = throttled("full", 120);
        assert_eq!(e.code(), Reason::TooManyRequests);
        assert!(e.to_string().ends_with("retry after 120 ms"), "{e}");
    }

    #[test]
    fn memory_budget_refuses_only_when_over() {
        let f = Flow::new(100 << 20);
        f.rss_bytes.store(99 << 20, Ordering::Relaxed);
        assert!(f.admit().is_ok());
        f.rss_bytes.store(101 << 20, Ordering::Relaxed);
        assert_eq!(f.admit().unwrap_err().code(), Reason::TooManyRequests);
        assert_eq!(f.rejected_memory.load(Ordering::Relaxed), 1);
        let none = Flow::new(0);
        none.rss_bytes.store(u64::MAX, Ordering::Relaxed);
        assert!(none.admit().is_ok(), "no budget, no refusal");
        assert_eq!(vm_rss_kib("Name:\tx\nVmRSS:\t  2048 kB\n"), Some(2048));
    }
}
