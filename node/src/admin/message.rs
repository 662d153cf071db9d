//! `raftmq admin message get|find`: look messages up by id, by key or by store time, with their
//! properties, a body preview and where every consumer group is with them.

use anyhow::bail;
use clap::Subcommand;
use raftmq_client::AdminClient;
use raftmq_proto::admin as pb;
use serde_json::Value;
use serde_json::json;

use crate::clock::now_ms;

/// Message lookups.
#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// One message by id.
    Get {
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Message id.
        #[arg(long)]
        id: String,
    },
    /// Messages by key, or stored within a time range.
    Find {
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Message key.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        key: Option<String>,
        /// From this store time: ms since the epoch, or an age such as `90s`, `10m`, `2h`, `1d`.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// Until this store time (exclusive): like `--from`, or `now`.
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// Most messages shown.
        #[arg(long, default_value_t = 32)]
        max: u32,
    },
}

/// Runs a message lookup.
pub async fn run(client: &AdminClient, cmd: MessageCommand, as_json: bool) -> anyhow::Result<String> {
    let found = match cmd {
        MessageCommand::Get { topic, id } => client.message_by_id(&topic, &id).await?,
        MessageCommand::Find { topic, key: Some(key), .. } => client.messages_by_key(&topic, &key, 0).await?,
        MessageCommand::Find { topic, from: Some(from), to: Some(to), max, .. } => {
            let now = now_ms();
            let (from, to) = (time_arg(&from, now)?, time_arg(&to, now)?);
            client.messages_in_time_range(&topic, from, to, max).await?
        }
        MessageCommand::Find { .. } => bail!("say what to find: --key KEY, or --from TIME --to TIME"),
    };
    if as_json {
        return Ok(Value::Array(found.iter().map(message_json).collect()).to_string());
    }
    if found.is_empty() {
        return Ok("no message found".into());
    }
    Ok(found.iter().map(message_text).collect::<Vec<_>>().join("\n"))
}

/// `now`, ms since the epoch, or an age (`90s`, `10m`, `2h`, `1d`) before `now`.
fn time_arg(s: &str, now: i64) -> anyhow::Result<i64> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    match n.parse::<i64>() {
        Ok(n) if unit_ms > 0 && n >= 0 => Ok(now - n.saturating_mul(unit_ms)),
        _ => bail!("time {s:?}: write ms since the epoch, `now`, or an age like 90s, 10m, 2h, 1d"),
    }
}

fn preview(body: &[u8]) -> String {
    let s = super::table::preview(body, 64);
    if body.len() > 64 { format!("{s} ({} bytes)", body.len()) } else { s }
}

fn consumption(c: &pb::Consumption) -> String {
    match c.state.as_str() {
        "IN_FLIGHT" => format!("{}: in flight (attempt {})", c.group, c.attempt),
        "CONSUMED" => format!("{}: consumed", c.group),
        _ => format!("{}: not consumed", c.group),
    }
}

fn message_text(m: &pb::StoredMessage) -> String {
    let mut out = format!(
        "message {}\n  topic {}  queue {} ({})  offset {}\n  stored {} by {}  born {}\n",
        m.message_id, m.topic, m.queue_id, m.broker_group, m.offset, m.store_ms, m.store_host, m.born_ms
    );
    if let Some(t) = &m.tag {
        out.push_str(&format!("  tag {t}\n"));
    }
    if !m.keys.is_empty() {
        out.push_str(&format!("  keys {}\n", m.keys.join(", ")));
    }
    let mut props: Vec<_> = m.properties.iter().collect();
    props.sort();
    for (k, v) in props {
        out.push_str(&format!("  property {k} = {v}\n"));
    }
    out.push_str(&format!("  body {}\n", preview(&m.body)));
    for c in &m.consumption {
        out.push_str(&format!("  group {}\n", consumption(c)));
    }
    out
}

fn message_json(m: &pb::StoredMessage) -> Value {
    json!({
        "message_id": m.message_id,
        "topic": m.topic,
        "broker_group": m.broker_group,
        "queue": m.queue_id,
        "offset": m.offset,
        "tag": m.tag,
        "keys": m.keys,
        "born_ms": m.born_ms,
        "store_ms": m.store_ms,
        "store_host": m.store_host,
        "properties": m.properties,
        "body_preview": preview(&m.body),
        "consumption": m.consumption.iter().map(|c| json!({ "group": c.group, "state": c.state, "attempt": c.attempt })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arguments() {
        assert_eq!(time_arg("now", 1_000_000).unwrap(), 1_000_000);
        assert_eq!(time_arg("1700000000000", 0).unwrap(), 1_700_000_000_000);
        assert_eq!(time_arg("10m", 1_000_000).unwrap(), 400_000);
        assert_eq!(time_arg("2h", 10_000_000).unwrap(), 2_800_000);
        assert!(time_arg("yesterday", 0).is_err());
        assert!(time_arg("5x", 0).is_err());
    }
}
