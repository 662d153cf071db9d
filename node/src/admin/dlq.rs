//! `raftmq admin dlq list|resend`: the dead letters of a consumer group, and moving them back to
//! the topic they came from.
//!
//! Both read `%DLQ%<group>` with the pull API from each queue's first retained offset. A resend
//! publishes a copy to the original topic (new message id; the original id stays in the
//! `DLQ_ORIGIN_MESSAGE_ID` property); the dead letter itself stays until retention removes it, so
//! resending all twice sends twice — resend by `--id` to pick.

use std::time::Duration;

use anyhow::Context;
use anyhow::bail;
use clap::Subcommand;
use raftmq_client::Message;
use raftmq_client::MessageView;
use raftmq_client::OffsetPolicy;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_storage::nameserver::names;
use serde_json::Value;
use serde_json::json;

use super::table::render;
use crate::broker::moves::ORIGIN_MESSAGE_ID;
use crate::broker::moves::ORIGIN_TOPIC;
use crate::broker::moves::RECONSUME_TIMES;

/// Dead-letter commands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// The dead letters of a consumer group, oldest first per queue.
    List {
        /// Consumer group.
        group: String,
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Publish dead letters again to the topic they came from.
    Resend {
        /// Consumer group.
        group: String,
        /// Resend only the dead letter with this message id (repeatable).
        #[arg(long = "id")]
        ids: Vec<String>,
        /// Resend every dead letter of the group.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

/// Every dead letter of `group`, up to `limit`.
async fn dead_letters(server: &str, group: &str, limit: usize) -> anyhow::Result<Vec<MessageView>> {
    let topic = names::dlq_topic(group);
    let pull = PullConsumer::new(PullConsumerOptions::new(server, group))?;
    let queues = pull.queues(&topic).await.with_context(|| format!("the dead-letter topic {topic}"))?;
    let mut out = Vec::new();
    for q in queues {
        // From the first retained offset: retention may have removed the oldest.
        let mut offset = pull.query_offset(&topic, q, OffsetPolicy::Beginning).await?;
        while out.len() < limit {
            let p = pull.pull(&topic, q, offset, 32, Duration::ZERO).await?;
            out.extend(p.messages);
            if p.next_offset <= offset {
                break;
            }
            offset = p.next_offset;
        }
    }
    out.truncate(limit);
    Ok(out)
}

/// Runs a dead-letter command against the node at `server`.
pub async fn run(server: &str, cmd: DlqCommand, as_json: bool) -> anyhow::Result<String> {
    match cmd {
        DlqCommand::List { group, limit } => {
            let dead = dead_letters(server, &group, limit).await?;
            Ok(if as_json {
                Value::Array(dead.iter().map(dead_json).collect()).to_string()
            } else {
                table(&dead)
            })
        }
        DlqCommand::Resend { group, ids, all } => {
            if ids.is_empty() && !all {
                bail!("say which dead letters to resend: --id ID (repeatable) or --all");
            }
            let dead = dead_letters(server, &group, usize::MAX).await?;
            let chosen: Vec<&MessageView> =
                dead.iter().filter(|m| all || ids.contains(&m.message_id)).collect();
            if let Some(missing) = ids.iter().find(|id| !dead.iter().any(|m| &m.message_id == *id)) {
                bail!(
                    "no dead letter of group {group} has message id {missing}; see `raftmq admin dlq list {group}`"
                );
            }
            let producer = Producer::new(ProducerOptions::new(server))?;
            let mut sent = Vec::new();
            for m in chosen {
                let r = producer.send(original(m)?).await?;
                sent.push(
                    json!({ "dead_letter": m.message_id, "resent_as": r.message_id, "topic": origin(m)? }),
                );
            }
            Ok(if as_json {
                Value::Array(sent).to_string()
            } else {
                format!("resent {} dead letter(s) of group {group} to their topics", sent.len())
            })
        }
    }
}

fn origin(m: &MessageView) -> anyhow::Result<&str> {
    m.properties.get(ORIGIN_TOPIC).map(String::as_str).with_context(|| {
        format!("dead letter {} has no {ORIGIN_TOPIC} property; it was not written by raftmq", m.message_id)
    })
}

/// The message to publish again: the dead letter's content on its original topic, without the
/// dead-letter properties.
fn original(m: &MessageView) -> anyhow::Result<Message> {
    let mut out = Message::new(origin(m)?, m.body.clone());
    if let Some(t) = &m.tag {
        out = out.with_tag(t.clone());
    }
    for k in &m.keys {
        out = out.with_key(k.clone());
    }
    if let Some(g) = &m.message_group {
        out = out.with_message_group(g.clone());
    }
    for (k, v) in &m.properties {
        if ![ORIGIN_TOPIC, RECONSUME_TIMES].contains(&k.as_str()) {
            out = out.with_property(k.clone(), v.clone());
        }
    }
    if !m.properties.contains_key(ORIGIN_MESSAGE_ID) {
        out = out.with_property(ORIGIN_MESSAGE_ID, m.message_id.clone());
    }
    Ok(out)
}

fn preview(body: &[u8]) -> String {
    super::table::preview(body, 40)
}

fn table(dead: &[MessageView]) -> String {
    let rows: Vec<Vec<String>> = dead
        .iter()
        .map(|m| {
            vec![
                m.queue_id.to_string(),
                m.offset.to_string(),
                m.message_id.clone(),
                m.properties.get(ORIGIN_TOPIC).cloned().unwrap_or_else(|| "-".into()),
                m.properties.get(RECONSUME_TIMES).cloned().unwrap_or_else(|| "-".into()),
                preview(&m.body),
            ]
        })
        .collect();
    render(&["QUEUE", "OFFSET", "MESSAGE_ID", "FROM_TOPIC", "RETRIES", "BODY"], &rows)
}

fn dead_json(m: &MessageView) -> Value {
    json!({
        "queue": m.queue_id,
        "offset": m.offset,
        "message_id": m.message_id,
        "origin_topic": m.properties.get(ORIGIN_TOPIC),
        "retries": m.properties.get(RECONSUME_TIMES),
        "tag": m.tag,
        "keys": m.keys,
        "store_ms": m.store_ms,
        "body_preview": preview(&m.body),
    })
}
