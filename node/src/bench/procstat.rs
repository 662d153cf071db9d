//! CPU time and RSS of the node processes, from /proc (Linux).

use std::path::Path;

/// The node processes found through their pid files.
pub struct NodeProcs {
    pids: Vec<u32>,
    rss_max_kib: u64,
}

fn ticks_per_sec() -> f64 {
    // Linux reports /proc times in USER_HZ, which is 100 on every mainstream configuration.
    100.0
}

impl NodeProcs {
    /// Reads `<dir>/node-*/raftmq.pid`.
    pub fn find(dir: &Path) -> NodeProcs {
        let mut pids = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if let Some(pid) = crate::server::read_pid(&e.path())
                    && Path::new(&format!("/proc/{pid}")).exists()
                {
                    pids.push(pid);
                }
            }
        }
        pids.sort_unstable();
        NodeProcs { pids, rss_max_kib: 0 }
    }

    /// The pids.
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// User + system CPU seconds of all node processes, if any was found.
    pub fn cpu_secs(&self) -> Option<f64> {
        if self.pids.is_empty() {
            return None;
        }
        let mut total = 0u64;
        for pid in &self.pids {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            total += f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        }
        Some(total as f64 / ticks_per_sec())
    }

    /// Voluntary context switches of every thread of every node process, summed: each is a
    /// thread going to sleep to be woken later, so the difference over a run counts the
    /// hand-offs between threads (issue 18 counts them per synchronous send).
    pub fn wakeups(&self) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        let mut total = 0u64;
        for pid in &self.pids {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
            for t in tasks.flatten() {
                // A thread that ended between the listing and the read is skipped.
                if let Ok(s) = std::fs::read_to_string(t.path().join("status")) {
                    total += voluntary_switches(&s).unwrap_or(0);
                }
            }
        }
        Some(total)
    }

    /// Records the current RSS of every node; the largest single-node value is kept.
    pub fn sample_rss(&mut self) {
        for pid in &self.pids {
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                && let Some(kib) = crate::broker::flow::vm_rss_kib(&s)
            {
                self.rss_max_kib = self.rss_max_kib.max(kib);
            }
        }
    }

    /// Largest RSS of one node seen, MiB.
    pub fn rss_max_mib(&self) -> Option<u64> {
        (self.rss_max_kib > 0).then_some(self.rss_max_kib / 1024)
    }
}

/// `voluntary_ctxt_switches` of a `/proc/<pid>/task/<tid>/status` text.
fn voluntary_switches(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_voluntary_switches() {
        let s = "Name:\traftmq\nvoluntary_ctxt_switches:\t1234\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(voluntary_switches(s), Some(1234));
        assert_eq!(voluntary_switches("Name: x\n"), None);
    }
}
