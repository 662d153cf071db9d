//! `raftmq admin leader transfer|balance`: move a group's leadership by hand, or put every
//! broker group's leader on its preferred node now (the nodes also do this on their own every
//! couple of seconds; see [`crate::balance`]). Both go only to replicas that have caught up —
//! the leader checks before it hands over.

use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use clap::Subcommand;
use raftmq_client::AdminClient;
use serde_json::json;

use super::table::render;
use crate::balance::preferred_of;

/// Leadership commands.
#[derive(Debug, Subcommand)]
pub enum LeaderCommand {
    /// Hand the leadership of one group to a caught-up voter.
    Transfer {
        /// Group: `nameserver`, `broker-a`, ...
        #[arg(long)]
        group: String,
        /// Node id of the new leader.
        #[arg(long)]
        to: u64,
    },
    /// Put each broker group's leader on its preferred node (leaders spread evenly).
    Balance,
}

/// How long a transfer may take to show in the cluster status.
const SETTLE: Duration = Duration::from_secs(10);

/// Runs one leadership command; returns what to print.
pub async fn run(client: &AdminClient, cmd: LeaderCommand, as_json: bool) -> anyhow::Result<String> {
    match cmd {
        LeaderCommand::Transfer { group, to } => {
            let term = moved(client, &group, to).await?;
            Ok(if as_json {
                json!({"group": group, "leader": to, "term": term}).to_string()
            } else {
                format!("{group}: leader is node {to} (term {term})")
            })
        }
        LeaderCommand::Balance => balance(client, as_json).await,
    }
}

/// Waits until every node agrees that `to` leads `group`; returns its term.
async fn settled(client: &AdminClient, group: &str, to: u64) -> anyhow::Result<u64> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let s = client.cluster_status().await?;
        if let Some(g) = s.groups.iter().find(|g| g.name == group)
            && g.leader == Some(to)
            && g.replicas.iter().all(|r| r.term == g.term || r.role == "unreachable")
        {
            return Ok(g.term);
        }
        if Instant::now() > deadline {
            bail!(
                "node {to} was asked to lead {group} but does not after {SETTLE:?}; see `raftmq admin cluster status`"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Moves every broker group whose leader is not its preferred node.
async fn balance(client: &AdminClient, as_json: bool) -> anyhow::Result<String> {
    let status = client.cluster_status().await?;
    let mut rows = Vec::new();
    for g in status.groups.iter().filter(|g| g.id != 0) {
        let want = preferred_of(g.id, &g.voters, &status.retired);
        let outcome = match (g.leader, want) {
            (_, None) => "no voters".to_string(),
            (Some(l), Some(w)) if l == w => "kept".to_string(),
            (_, Some(w)) => match moved(client, &g.name, w).await {
                Ok(term) => format!("moved (term {term})"),
                Err(e) => format!("not moved: {e:#}"),
            },
        };
        rows.push((g.name.clone(), g.leader, want, outcome));
    }
    if as_json {
        let v: Vec<_> = rows
            .iter()
            .map(|(g, from, to, o)| json!({"group": g, "leader_before": from, "preferred": to, "outcome": o}))
            .collect();
        return Ok(serde_json::Value::Array(v).to_string());
    }
    let table: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(g, from, to, o)| vec![g, super::table::opt(from), super::table::opt(to), o])
        .collect();
    Ok(render(&["GROUP", "LEADER_BEFORE", "PREFERRED", "OUTCOME"], &table))
}

/// Asks `to` to lead `group` and waits until the cluster agrees; returns the new term.
pub(super) async fn moved(client: &AdminClient, group: &str, to: u64) -> anyhow::Result<u64> {
    client.transfer_leader(group, to).await?;
    settled(client, group, to).await
}
