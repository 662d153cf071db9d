//! A fresh local 3-node cluster for the benchmarks that kill nodes (they need the processes).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::local_cluster::LocalCluster;
use crate::local_cluster::Output;
use crate::local_cluster::free_ports;
use crate::local_cluster::write_configs;

/// Three nodes with two broker groups on free 127.0.0.1 ports; logs and data under `dir`.
pub struct ScratchCluster {
    /// The node processes.
    pub cluster: LocalCluster,
    /// Where their configs, data and logs are (kept afterwards for inspection).
    pub dir: PathBuf,
}

impl ScratchCluster {
    /// Writes the configs into `data_dir` (default: a new directory under the system temporary
    /// directory), starts every node and waits for a NameServer leader.
    pub async fn start(data_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let dir = match data_dir {
            Some(d) => d,
            None => std::env::temp_dir().join(format!("raftmq-bench-{}", std::process::id())),
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let files = write_configs(&dir, &free_ports(3)?, 2, &|_| {})?;
        let exe = std::env::current_exe().context("cannot find the raftmq executable")?;
        let logs = dir.clone();
        let mut cluster =
            LocalCluster::new(&exe, &files, |id| Output::File(logs.join(format!("node-{id}.log"))))?;
        cluster.start_all()?;
        cluster.wait_leader("nameserver", None, Duration::from_secs(30)).await?;
        Ok(Self { cluster, dir })
    }

    /// Stops every node (SIGTERM, then SIGKILL after 15 s).
    pub async fn stop(mut self) {
        for id in 1..=3 {
            if let Err(e) = self.cluster.stop(id, Duration::from_secs(15)).await {
                tracing::warn!(node = id, error = %e, "stopping a bench node failed");
            }
        }
    }
}
