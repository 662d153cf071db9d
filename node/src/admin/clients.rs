//! `raftmq admin client list`: the RocketMQ 4.x clients connected to the cluster, asked of every
//! node (a 4.x consumer heartbeats every node; a producer only the leaders it sends to) and
//! merged by client id.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use clap::Subcommand;
use raftmq_client::AdminClient;
use raftmq_proto::admin as pb;
use serde_json::json;

use super::table;

/// Client commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Every connected 4.x client: id, protocol, language, producer and consumer groups, and
    /// the nodes it is connected to.
    List,
}

/// One client, merged over nodes.
#[derive(Default)]
struct Seen {
    info: pb::ClientInfo,
    nodes: BTreeSet<u64>,
}

/// Runs a client command.
pub async fn run(
    client: &AdminClient,
    cmd: ClientCommand,
    as_json: bool,
    timeout: Duration,
) -> anyhow::Result<String> {
    let ClientCommand::List = cmd;
    let status = client.cluster_status().await?;
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for m in &status.members {
        let answer = match AdminClient::connect(&m.client_addr, timeout) {
            Ok(c) => c.list_clients().await,
            Err(e) => Err(e),
        };
        let r = match answer {
            Ok(r) => r,
            Err(e) => {
                eprintln!("node {} ({}) did not answer: {e}", m.id, m.client_addr);
                continue;
            }
        };
        for c in r.clients {
            let s = seen.entry(c.client_id.clone()).or_default();
            s.nodes.insert(r.node_id);
            let mut producers: BTreeSet<String> = s.info.producer_groups.drain(..).collect();
            producers.extend(c.producer_groups.iter().cloned());
            let mut consumers: BTreeSet<String> = s.info.consumer_groups.drain(..).collect();
            consumers.extend(c.consumer_groups.iter().cloned());
            s.info = pb::ClientInfo {
                producer_groups: producers.into_iter().collect(),
                consumer_groups: consumers.into_iter().collect(),
                ..c
            };
        }
    }
    if as_json {
        let all: Vec<_> = seen
            .values()
            .map(|s| {
                json!({
                    "client_id": s.info.client_id,
                    "protocol": s.info.protocol,
                    "language": s.info.language,
                    "addr": s.info.addr,
                    "producer_groups": s.info.producer_groups,
                    "consumer_groups": s.info.consumer_groups,
                    "nodes": s.nodes,
                })
            })
            .collect();
        return Ok(serde_json::Value::Array(all).to_string());
    }
    let rows: Vec<Vec<String>> = seen
        .values()
        .map(|s| {
            vec![
                s.info.client_id.clone(),
                s.info.protocol.clone(),
                s.info.language.clone(),
                s.info.addr.clone(),
                s.info.producer_groups.join(","),
                s.info.consumer_groups.join(","),
                s.nodes.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
            ]
        })
        .collect();
    Ok(table::render(&["CLIENT", "PROTOCOL", "LANGUAGE", "ADDRESS", "PRODUCES", "CONSUMES", "NODES"], &rows))
}
