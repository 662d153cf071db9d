//! `raftmq admin node add|remove|replace`: change which nodes hold the cluster's groups.
//!
//! - `add` makes a running, empty node a replica of every group: NameServer first (so routes
//!   know its address), then each broker group. In each it joins as a learner and becomes a voter
//!   only once it has caught up.
//! - `remove` retires the node (no more leaderships, id never reused), moves every leadership it
//!   holds to a caught-up replica, then takes it out of each broker group and last of the
//!   NameServer. Acknowledged messages stay on the remaining quorum.
//! - `replace` is `add` of the new node, then `remove` of the old one: the group never has fewer
//!   than its usual number of voters, even when the old node is dead.
//!
//! Every step is idempotent: a command interrupted half-way is finished by running it again.

use std::time::Duration;

use anyhow::Context;
use anyhow::bail;
use clap::Args;
use clap::Subcommand;
use raftmq_client::AdminClient;
use raftmq_proto::admin as pb;
use serde_json::json;

use super::leader::moved;
use super::table::render;
use crate::balance::successor;

/// Membership commands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Make a running node with an empty data directory a replica of every group.
    Add {
        /// Its node id: new, never used by a removed node.
        #[arg(long)]
        id: u64,
        /// Where it listens, and how long it may take to catch up.
        #[command(flatten)]
        node: NewNode,
    },
    /// Take a node out of every group, after moving its leaderships away.
    Remove {
        /// The node id.
        #[arg(long)]
        id: u64,
        /// Allow leaving a group with fewer than 3 voters (it then stops on one more failure).
        #[arg(long)]
        force: bool,
    },
    /// Add a new node (a new id) in place of an old one, then remove the old one.
    Replace {
        /// The node to retire.
        #[arg(long)]
        old: u64,
        /// The new node's id: never the old one's.
        #[arg(long)]
        new: u64,
        /// Where the new node listens, and how long it may take to catch up.
        #[command(flatten)]
        node: NewNode,
    },
}

/// The addresses of a node being added, and its catch-up allowance.
#[derive(Debug, Clone, Args)]
pub struct NewNode {
    /// Its internal (Raft) address, host:port.
    #[arg(long)]
    pub raft_addr: String,
    /// Its client address, host:port.
    #[arg(long)]
    pub client_addr: String,
    /// Seconds each group may take to copy its log to the node before it votes.
    #[arg(long, default_value_t = 120)]
    pub catch_up: u64,
}

/// One group's outcome.
type Row = (String, String);

/// Runs one membership command; returns what to print.
pub async fn run(client: &AdminClient, cmd: NodeCommand, as_json: bool) -> anyhow::Result<String> {
    let rows = match cmd {
        NodeCommand::Add { id, node } => add(client, id, &node).await?,
        NodeCommand::Remove { id, force } => remove(client, id, force).await?,
        NodeCommand::Replace { old, new, node } => {
            if old == new {
                bail!("the new node needs a new id: node ids are never reused (--new {new} = --old {old})");
            }
            let mut rows = add(client, new, &node).await?;
            rows.extend(remove(client, old, false).await?);
            rows
        }
    };
    if as_json {
        let v: Vec<_> = rows.iter().map(|(g, o)| json!({"group": g, "outcome": o})).collect();
        return Ok(serde_json::Value::Array(v).to_string());
    }
    let table: Vec<Vec<String>> = rows.into_iter().map(|(g, o)| vec![g, o]).collect();
    Ok(render(&["GROUP", "OUTCOME"], &table))
}

/// The NameServer group first, then the broker groups in id order.
fn groups_in_order(s: &pb::ClusterStatusResponse) -> Vec<&pb::GroupStatus> {
    let mut groups: Vec<&pb::GroupStatus> = s.groups.iter().collect();
    groups.sort_by_key(|g| g.id);
    groups
}

/// Adds node `id` to every group it is not a voter of yet.
pub async fn add(client: &AdminClient, id: u64, node: &NewNode) -> anyhow::Result<Vec<Row>> {
    let addrs = Some((node.raft_addr.as_str(), node.client_addr.as_str()));
    let catch_up = Duration::from_secs(node.catch_up);
    let status = client.cluster_status().await?;
    if status.retired.contains(&id) {
        bail!(
            "node id {id} belonged to a removed node and is never reused; start the new node with a new node_id"
        );
    }
    let mut rows = Vec::new();
    for g in groups_in_order(&status) {
        if g.voters.contains(&id) {
            rows.push((g.name.clone(), format!("node {id} already votes")));
            continue;
        }
        let change = pb::MembershipChange::AddVoter;
        if let Err(e) = client.change_members(&g.name, change, id, addrs, catch_up).await {
            bail!(
                "adding node {id} to {} failed: {e}\n(done so far: {}; the command can be run again)",
                g.name,
                done(&rows)
            );
        }
        rows.push((g.name.clone(), format!("node {id} added (caught up, votes)")));
    }
    Ok(rows)
}

/// Removes node `id` from every group, moving its leaderships away first.
pub async fn remove(client: &AdminClient, id: u64, force: bool) -> anyhow::Result<Vec<Row>> {
    let status = client.cluster_status().await?;
    let holding: Vec<&pb::GroupStatus> = groups_in_order(&status)
        .into_iter()
        .filter(|g| g.voters.contains(&id) || g.learners.contains(&id))
        .collect();
    if holding.is_empty() {
        if status.retired.contains(&id) {
            return Ok(vec![("-".into(), format!("node {id} was already removed"))]);
        }
        bail!(
            "node {id} is in no group; members: {:?}",
            status.members.iter().map(|m| m.id).collect::<Vec<_>>()
        );
    }
    for g in &holding {
        let left = g.voters.iter().filter(|v| **v != id).count();
        if left == 0 {
            bail!("node {id} is the last voter of {}; it cannot be removed", g.name);
        }
        if left < 3 && g.voters.contains(&id) && !force {
            bail!(
                "removing node {id} would leave {} with {left} voters, and it would stop on one more failure; \
                 add a node first (raftmq admin node add), use node replace, or pass --force",
                g.name
            );
        }
    }
    let retire = pb::MembershipChange::Retire;
    client.change_members("nameserver", retire, id, None, Duration::ZERO).await?;
    let mut rows =
        vec![("nameserver".to_string(), format!("node {id} retired: no more leaderships, id never reused"))];
    let mut retired = status.retired.clone();
    retired.push(id);
    for g in holding.iter().filter(|g| g.leader == Some(id)) {
        let to = new_leader(g, id, &retired)?;
        let term = moved(client, &g.name, to)
            .await
            .with_context(|| format!("moving the leadership of {} from node {id} to node {to}", g.name))?;
        rows.push((g.name.clone(), format!("leadership moved to node {to} (term {term})")));
    }
    // Broker groups first; the NameServer last, so routes know the node until it holds nothing.
    for g in holding.iter().filter(|g| g.id != 0).chain(holding.iter().filter(|g| g.id == 0)) {
        let change = pb::MembershipChange::Remove;
        if let Err(e) = client.change_members(&g.name, change, id, None, Duration::ZERO).await {
            bail!(
                "removing node {id} from {} failed: {e}\n(done so far: {}; the command can be run again)",
                g.name,
                done(&rows)
            );
        }
        rows.push((g.name.clone(), format!("node {id} removed")));
    }
    Ok(rows)
}

/// Who takes over `g` from `leaving`, judged from the cluster status: see
/// [`crate::balance::successor`].
fn new_leader(g: &pb::GroupStatus, leaving: u64, retired: &[u64]) -> anyhow::Result<u64> {
    let last = g.replicas.iter().find(|r| Some(r.node_id) == g.leader).and_then(|r| r.last_log_index);
    let lag = |v: u64| {
        let matched = g.replicas.iter().find(|r| r.node_id == v && r.role != "unreachable")?.matched_index?;
        Some(last.unwrap_or(0).saturating_sub(matched))
    };
    successor(g.id, &g.voters, leaving, retired, lag).ok_or_else(|| {
        anyhow::anyhow!("{} has no other reachable, caught-up voter to lead it; retry shortly", g.name)
    })
}

fn done(rows: &[Row]) -> String {
    if rows.is_empty() {
        return "nothing".into();
    }
    rows.iter().map(|(g, o)| format!("{g}: {o}")).collect::<Vec<_>>().join("; ")
}
