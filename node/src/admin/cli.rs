//! `raftmq admin`: the command-line face of the admin service.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clap::Subcommand;
use raftmq_client::AdminClient;
use raftmq_client::admin::GroupSpec;
use raftmq_client::admin::TopicChange;
use raftmq_client::admin::TopicSpec;
use raftmq_proto::admin as pb;
use serde_json::Value;
use serde_json::json;

use super::table::opt;
use super::table::render;

/// `raftmq admin` options and command.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Client address of any node.
    #[arg(long, global = true, default_value = "127.0.0.1:8081", env = "RAFTMQ_SERVER")]
    pub server: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, global = true, default_value_t = 10)]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// What to administer.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// The cluster: members and every group's replicas.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Dead letters of a consumer group (`%DLQ%<group>`).
    #[command(subcommand)]
    Dlq(super::dlq::DlqCommand),
    /// Look messages up by id, key or store time.
    #[command(subcommand)]
    Message(super::message::MessageCommand),
    /// Group leadership: transfer, balance.
    #[command(subcommand)]
    Leader(super::leader::LeaderCommand),
    /// Cluster membership: add, remove or replace a node.
    #[command(subcommand)]
    Node(super::node::NodeCommand),
    /// Connected RocketMQ 4.x clients.
    #[command(subcommand)]
    Client(super::clients::ClientCommand),
}

/// Cluster commands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Members, and for each group: leader, term, and each replica's log, commit, apply and match.
    Status,
    /// Print the node id of a group's leader (for scripts such as `chaos/kill leader:broker-a`).
    Leader {
        /// Group: `nameserver`, `broker-a`, ...
        #[arg(long, default_value = "nameserver")]
        group: String,
        /// Seconds to wait for the group to have a leader.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
}

/// Topic commands.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic; its queues are spread over the broker groups.
    Create {
        /// Topic name: letters, digits, `_`, `-`, `%`, `|`; up to 127 characters.
        name: String,
        /// Number of queues.
        #[arg(long, default_value_t = 8)]
        queues: u32,
        /// NORMAL, FIFO, DELAY, TRANSACTION or MIXED.
        #[arg(long = "type", default_value = "NORMAL")]
        message_type: String,
        /// READ, WRITE or READ_WRITE (also r, w, rw).
        #[arg(long, default_value = "READ_WRITE")]
        perm: String,
        /// How long messages are kept: a number with a unit, `s`, `m`, `h` or `d` (e.g. 72h).
        #[arg(long, default_value = "72h", value_parser = parse_duration_secs)]
        retention: u64,
    },
    /// Change a topic (queues can only be added).
    Update {
        /// Topic name.
        name: String,
        /// New number of queues.
        #[arg(long)]
        queues: Option<u32>,
        /// New message type.
        #[arg(long = "type")]
        message_type: Option<String>,
        /// New permission.
        #[arg(long)]
        perm: Option<String>,
        /// New retention: a number with a unit, `s`, `m`, `h` or `d`.
        #[arg(long, value_parser = parse_duration_secs)]
        retention: Option<u64>,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        name: String,
    },
    /// List topics.
    List,
    /// Show a topic and its route.
    Describe {
        /// Topic name.
        name: String,
    },
}

/// Consumer group commands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a consumer group.
    Create {
        /// Group name.
        name: String,
        /// CLUSTERING or BROADCASTING.
        #[arg(long, default_value = "CLUSTERING")]
        mode: String,
        /// Orderly (FIFO) consumption.
        #[arg(long)]
        fifo: bool,
        /// Delivery attempts before the dead-letter queue.
        #[arg(long, default_value_t = 17)]
        max_attempts: u32,
        /// Where the group starts on a queue it never consumed: last (every message stored after
        /// the group's creation), first (the oldest stored), auto (RocketMQ's rule for groups
        /// created on first use), or a time in ms since the epoch.
        #[arg(long = "from", default_value = "last")]
        consume_from: String,
    },
    /// Delete a consumer group.
    Delete {
        /// Group name.
        name: String,
    },
    /// List consumer groups.
    List,
    /// Show a consumer group.
    Describe {
        /// Group name.
        name: String,
    },
    /// Lag of a consumer group on each queue it consumed from, and in all.
    Lag {
        /// Group name.
        name: String,
    },
}

/// The leader of `group` as the node `client` talks to sees it, waiting up to `wait` for one.
async fn leader(client: &AdminClient, group: &str, wait: Duration) -> anyhow::Result<u64> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let status = client.cluster_status().await;
        if let Ok(s) = &status {
            let Some(g) = s.groups.iter().find(|g| g.name == group) else {
                anyhow::bail!(
                    "no group {group}; groups: {}",
                    s.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>().join(", ")
                );
            };
            if let Some(l) = g.leader {
                return Ok(l);
            }
        }
        if std::time::Instant::now() > deadline {
            return match status {
                Err(e) => {
                    Err(anyhow::Error::from(e).context(format!("no leader of {group} within {wait:?}")))
                }
                Ok(_) => anyhow::bail!("no leader of {group} within {wait:?}"),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs one admin command; the output goes to stdout.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let client = AdminClient::connect(&args.server, Duration::from_secs(args.timeout))?;
    let out = match args.command {
        AdminCommand::Cluster(ClusterCommand::Status) => {
            let s = client
                .cluster_status()
                .await
                .with_context(|| format!("cluster status from {}", args.server))?;
            if args.json { cluster_json(&s).to_string() } else { cluster_table(&s) }
        }
        AdminCommand::Cluster(ClusterCommand::Leader { group, wait }) => {
            leader(&client, &group, Duration::from_secs(wait)).await?.to_string()
        }
        AdminCommand::Topic(cmd) => topic(&client, cmd, args.json).await?,
        AdminCommand::Group(cmd) => group(&client, cmd, args.json).await?,
        AdminCommand::Dlq(cmd) => super::dlq::run(&args.server, cmd, args.json).await?,
        AdminCommand::Message(cmd) => super::message::run(&client, cmd, args.json).await?,
        AdminCommand::Leader(cmd) => super::leader::run(&client, cmd, args.json).await?,
        AdminCommand::Node(cmd) => super::node::run(&client, cmd, args.json).await?,
        AdminCommand::Client(cmd) => {
            super::clients::run(&client, cmd, args.json, Duration::from_secs(args.timeout)).await?
        }
    };
    print!("{out}");
    if !out.ends_with('\n') {
        println!();
    }
    Ok(())
}

async fn topic(client: &AdminClient, cmd: TopicCommand, as_json: bool) -> anyhow::Result<String> {
    let show = |t: &pb::TopicInfo| if as_json { topic_json(t).to_string() } else { topic_detail(t) };
    Ok(match cmd {
        TopicCommand::Create { name, queues, message_type, perm, retention: retention_secs } => {
            let spec =
                TopicSpec { name, queue_count: queues, message_type, permission: perm, retention_secs };
            show(&client.create_topic(spec).await?)
        }
        TopicCommand::Update { name, queues, message_type, perm, retention: retention_secs } => {
            let change = TopicChange { queue_count: queues, message_type, permission: perm, retention_secs };
            show(&client.update_topic(&name, change).await?)
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(&name).await?;
            if as_json { json!({ "deleted": name }).to_string() } else { format!("deleted topic {name}") }
        }
        TopicCommand::Describe { name } => show(&client.describe_topic(&name).await?),
        TopicCommand::List => {
            let topics = client.list_topics().await?;
            if as_json {
                Value::Array(topics.iter().map(topic_json).collect()).to_string()
            } else {
                let rows: Vec<Vec<String>> = topics
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.message_type.clone(),
                            t.queues.len().to_string(),
                            t.permission.clone(),
                            human_secs(t.retention_secs),
                        ]
                    })
                    .collect();
                render(&["TOPIC", "TYPE", "QUEUES", "PERM", "RETENTION"], &rows)
            }
        }
    })
}

async fn group(client: &AdminClient, cmd: GroupCommand, as_json: bool) -> anyhow::Result<String> {
    let rows = |gs: &[pb::GroupInfo]| {
        let rows: Vec<Vec<String>> = gs
            .iter()
            .map(|g| {
                vec![
                    g.name.clone(),
                    g.mode.clone(),
                    g.fifo.to_string(),
                    g.max_delivery_attempts.to_string(),
                    g.consume_from.clone(),
                ]
            })
            .collect();
        render(&["GROUP", "MODE", "FIFO", "MAX_ATTEMPTS", "FROM"], &rows)
    };
    Ok(match cmd {
        GroupCommand::Create { name, mode, fifo, max_attempts, consume_from } => {
            let spec = GroupSpec { name, mode, fifo, max_delivery_attempts: max_attempts, consume_from };
            let g = client.create_group(spec).await?;
            if as_json { group_json(&g).to_string() } else { rows(&[g]) }
        }
        GroupCommand::Delete { name } => {
            client.delete_group(&name).await?;
            if as_json {
                json!({ "deleted": name }).to_string()
            } else {
                format!("deleted consumer group {name}")
            }
        }
        GroupCommand::Describe { name } => {
            let g = client.describe_group(&name).await?;
            if as_json { group_json(&g).to_string() } else { rows(&[g]) }
        }
        GroupCommand::Lag { name } => {
            let l = client.consumer_lag(&name).await?;
            if as_json { lag_json(&l).to_string() } else { lag_table(&l) }
        }
        GroupCommand::List => {
            let gs = client.list_groups().await?;
            if as_json { Value::Array(gs.iter().map(group_json).collect()).to_string() } else { rows(&gs) }
        }
    })
}

fn lag_table(l: &pb::ConsumerLagResponse) -> String {
    let rows: Vec<Vec<String>> = l
        .queues
        .iter()
        .map(|q| {
            vec![
                q.topic.clone(),
                q.queue_id.to_string(),
                q.broker_group.clone(),
                q.min_offset.to_string(),
                q.end_offset.to_string(),
                q.consumed_offset.to_string(),
                q.delivered_offset.to_string(),
                q.inflight.to_string(),
                q.lag.to_string(),
            ]
        })
        .collect();
    let total: u64 = l.queues.iter().map(|q| q.lag).sum();
    let mut out = format!("answered by node {}\n\n", l.node_id);
    out.push_str(&render(
        &["TOPIC", "QUEUE", "BROKER", "MIN", "END", "CONSUMED", "DELIVERED", "INFLIGHT", "LAG"],
        &rows,
    ));
    out.push_str(&format!("\ntotal lag: {total}\n"));
    out
}

fn lag_json(l: &pb::ConsumerLagResponse) -> Value {
    json!({
        "node_id": l.node_id,
        "total_lag": l.queues.iter().map(|q| q.lag).sum::<u64>(),
        "queues": l.queues.iter().map(|q| json!({
            "topic": q.topic,
            "queue": q.queue_id,
            "broker_group": q.broker_group,
            "min_offset": q.min_offset,
            "end_offset": q.end_offset,
            "consumed_offset": q.consumed_offset,
            "delivered_offset": q.delivered_offset,
            "inflight": q.inflight,
            "lag": q.lag,
        })).collect::<Vec<_>>(),
    })
}

fn cluster_table(s: &pb::ClusterStatusResponse) -> String {
    let members: Vec<Vec<String>> = s
        .members
        .iter()
        .map(|m| vec![m.id.to_string(), m.raft_addr.clone(), m.client_addr.clone()])
        .collect();
    let mut out = format!("answered by node {}\n\n", s.node_id);
    out.push_str(&render(&["NODE", "RAFT_ADDR", "CLIENT_ADDR"], &members));
    out.push('\n');
    let mut rows = Vec::new();
    for g in &s.groups {
        for (i, r) in g.replicas.iter().enumerate() {
            let first = i == 0;
            rows.push(vec![
                if first { g.name.clone() } else { String::new() },
                if first { opt(g.leader) } else { String::new() },
                if first { g.term.to_string() } else { String::new() },
                r.node_id.to_string(),
                r.role.clone(),
                opt(r.last_log_index),
                opt(r.committed),
                opt(r.applied),
                opt(r.matched_index),
            ]);
        }
    }
    out.push_str(&render(
        &["GROUP", "LEADER", "TERM", "NODE", "ROLE", "LAST_LOG", "COMMITTED", "APPLIED", "MATCHED"],
        &rows,
    ));
    out
}

fn cluster_json(s: &pb::ClusterStatusResponse) -> Value {
    json!({
        "node_id": s.node_id,
        "members": s.members.iter().map(|m| json!({"id": m.id, "raft_addr": m.raft_addr, "client_addr": m.client_addr})).collect::<Vec<_>>(),
        "groups": s.groups.iter().map(|g| json!({
            "name": g.name,
            "id": g.id,
            "leader": g.leader,
            "term": g.term,
            "voters": g.voters,
            "learners": g.learners,
            "replicas": g.replicas.iter().map(|r| json!({
                "node_id": r.node_id,
                "role": r.role,
                "term": r.term,
                "last_log_index": r.last_log_index,
                "committed": r.committed,
                "applied": r.applied,
                "matched_index": r.matched_index,
                "error": if r.error.is_empty() { Value::Null } else { Value::String(r.error.clone()) },
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn topic_json(t: &pb::TopicInfo) -> Value {
    json!({
        "name": t.name,
        "message_type": t.message_type,
        "permission": t.permission,
        "retention_secs": t.retention_secs,
        "queue_count": t.queues.len(),
        "queues": t.queues.iter().map(|q| json!({
            "queue_id": q.queue_id, "broker_group": q.broker_group, "leader": q.leader, "leader_addr": q.leader_addr,
        })).collect::<Vec<_>>(),
        "created_at_ms": t.created_at_ms,
        "updated_at_ms": t.updated_at_ms,
    })
}

fn topic_detail(t: &pb::TopicInfo) -> String {
    let mut out = format!(
        "topic {}\n  type {}  permission {}  retention {}  queues {}\n\n",
        t.name,
        t.message_type,
        t.permission,
        human_secs(t.retention_secs),
        t.queues.len()
    );
    let rows: Vec<Vec<String>> = t
        .queues
        .iter()
        .map(|q| vec![q.queue_id.to_string(), q.broker_group.clone(), opt(q.leader), q.leader_addr.clone()])
        .collect();
    out.push_str(&render(&["QUEUE", "BROKER_GROUP", "LEADER", "LEADER_ADDR"], &rows));
    out
}

/// Parses `90s`, `30m`, `72h`, `3d` (or bare seconds) into seconds.
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('d') => (&s[..s.len() - 1], 86400),
        _ => (s, 1),
    };
    let n: u64 =
        num.parse().map_err(|_| format!("{s:?} is not a duration; write for example 90s, 30m, 72h or 3d"))?;
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too long"))
}

/// Seconds as the largest whole unit: `72h`, `90s`.
fn human_secs(s: u64) -> String {
    match s {
        s if s % 86400 == 0 && s >= 86400 => format!("{}d", s / 86400),
        s if s % 3600 == 0 && s >= 3600 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn group_json(g: &pb::GroupInfo) -> Value {
    json!({
        "name": g.name, "mode": g.mode, "fifo": g.fifo, "max_delivery_attempts": g.max_delivery_attempts,
        "created_at_ms": g.created_at_ms, "consume_from": g.consume_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("72h"), Ok(72 * 3600));
        assert_eq!(parse_duration_secs("90"), Ok(90));
        assert_eq!(parse_duration_secs("2d"), Ok(172_800));
        assert!(parse_duration_secs("1w").unwrap_err().contains("72h"));
        assert_eq!(human_secs(259_200), "3d");
        assert_eq!(human_secs(90), "90s");
    }
}
