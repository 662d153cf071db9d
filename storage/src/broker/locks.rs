//! Queue locks of orderly consumers (RocketMQ's `LOCK_BATCH_MQ` / `UNLOCK_BATCH_MQ`): a consumer
//! client holds a queue of a topic for its consumer group until it unlocks it or the lock
//! expires (RocketMQ's 60 s; holders renew every 20 s). Locks are state-machine state: a new
//! leader knows who holds what, so failover never hands a queue to two consumers at once. Apply
//! judges expiry by the leader-stamped time.

use std::collections::BTreeMap;

use crate::codec::Reader;
use crate::codec::Writer;
use crate::error::DecodeError;

/// A lock's key: consumer group, topic, queue.
pub type LockKey = (String, String, u32);

/// Who holds a queue, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// The holder's client id.
    pub client: String,
    /// When the lock lapses, ms (leader time).
    pub expires_ms: i64,
}

impl Lock {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(&self.client).i64(self.expires_ms);
        w.into_vec()
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b, "queue lock");
        let l = Self { client: r.str()?.to_string(), expires_ms: r.i64()? };
        r.finish()?;
        Ok(l)
    }
}

/// The locks of a broker group.
pub type LockTable = BTreeMap<LockKey, Lock>;

/// Locks a command changed (`None`: removed).
pub type LockChanges = Vec<(LockKey, Option<Lock>)>;

/// The key suffix of a lock.
pub(crate) fn key_suffix(k: &LockKey) -> Vec<u8> {
    let mut w = Writer::default();
    w.str(&k.0).str(&k.1).u32(k.2);
    w.into_vec()
}

/// Parses what [`key_suffix`] wrote.
pub(crate) fn parse_key_suffix(b: &[u8]) -> Result<LockKey, DecodeError> {
    let mut r = Reader::new(b, "queue lock key");
    let k = (r.str()?.to_string(), r.str()?.to_string(), r.u32()?);
    r.finish()?;
    Ok(k)
}

/// Lock or unlock queues for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockCmd {
    /// Consumer group.
    pub group: String,
    /// The client asking.
    pub client: String,
    /// Leader time, ms.
    pub now_ms: i64,
    /// How long a lock taken now lasts, ms; 0 to unlock.
    pub ttl_ms: i64,
    /// The queues: topic and queue id.
    pub queues: Vec<(String, u32)>,
}

impl LockCmd {
    /// Appends the encoding.
    pub fn encode(&self, w: &mut Writer) {
        w.str(&self.group).str(&self.client).i64(self.now_ms).i64(self.ttl_ms).u32(self.queues.len() as u32);
        for (t, q) in &self.queues {
            w.str(t).u32(*q);
        }
    }

    /// Decodes what [`LockCmd::encode`] wrote.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let group = r.str()?.to_string();
        let client = r.str()?.to_string();
        let now_ms = r.i64()?;
        let ttl_ms = r.i64()?;
        let n = r.u32()? as usize;
        if n > r.remaining() {
            return Err(DecodeError::new("lock command", "count exceeds the entry"));
        }
        let mut queues = Vec::with_capacity(n);
        for _ in 0..n {
            queues.push((r.str()?.to_string(), r.u32()?));
        }
        Ok(Self { group, client, now_ms, ttl_ms, queues })
    }
}

/// Applies `cmd` to `table`: each queue free, lapsed or already the client's is (re)locked for
/// it (or, with `ttl_ms` 0, each queue the client holds is freed). Returns the changed locks
/// (`None`: removed) and the queues the client holds after the command.
pub fn apply(table: &mut LockTable, cmd: &LockCmd) -> (LockChanges, Vec<(String, u32)>) {
    let mut changed = Vec::new();
    let mut held = Vec::new();
    for (topic, queue) in &cmd.queues {
        let key = (cmd.group.clone(), topic.clone(), *queue);
        let current = table.get(&key);
        let mine = current.is_some_and(|l| l.client == cmd.client);
        let free = current.is_none_or(|l| l.expires_ms <= cmd.now_ms);
        if cmd.ttl_ms <= 0 {
            if mine {
                table.remove(&key);
                changed.push((key, None));
            }
            continue;
        }
        if mine || free {
            let lock = Lock { client: cmd.client.clone(), expires_ms: cmd.now_ms + cmd.ttl_ms };
            table.insert(key.clone(), lock.clone());
            changed.push((key, Some(lock)));
            held.push((topic.clone(), *queue));
        }
    }
    (changed, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(client: &str, now_ms: i64, ttl_ms: i64, queues: &[u32]) -> LockCmd {
        LockCmd {
            group: "g".into(),
            client: client.into(),
            now_ms,
            ttl_ms,
            queues: queues.iter().map(|q| ("t".to_string(), *q)).collect(),
        }
    }

    #[test]
    fn one_holder_per_queue_until_unlock_or_expiry() {
        let mut t = LockTable::new();
        assert_eq!(apply(&mut t, &cmd("a", 0, 60_000, &[0, 1])).1.len(), 2);
        let (_, held) = apply(&mut t, &cmd("b", 1_000, 60_000, &[1, 2]));
        assert_eq!(held, vec![("t".to_string(), 2)], "queue 1 is a's");
        // a renews; b's lapsed lock on 2 goes to a later.
        assert_eq!(apply(&mut t, &cmd("a", 30_000, 60_000, &[1])).1.len(), 1);
        let (_, held) = apply(&mut t, &cmd("a", 61_001, 60_000, &[2]));
        assert_eq!(held.len(), 1, "b's lock lapsed at 61 000");
        // Unlock frees only the client's own queues.
        let (changed, _) = apply(&mut t, &cmd("b", 62_000, 0, &[0, 1, 2]));
        assert!(changed.is_empty());
        let (changed, _) = apply(&mut t, &cmd("a", 62_000, 0, &[0]));
        assert_eq!(changed.len(), 1);
        assert_eq!(apply(&mut t, &cmd("b", 62_000, 60_000, &[0])).1.len(), 1);
    }

    #[test]
    fn records_and_commands_round_trip() {
        let l = Lock { client: "c".into(), expires_ms: 9 };
        assert_eq!(Lock::decode(&l.encode()).unwrap(), l);
        let k = ("g".to_string(), "t".to_string(), 3);
        assert_eq!(parse_key_suffix(&key_suffix(&k)).unwrap(), k);
        let c = cmd("a", 5, 6, &[1, 2]);
        let mut w = Writer::default();
        c.encode(&mut w);
        let v = w.into_vec();
        assert_eq!(LockCmd::decode(&mut Reader::new(&v, "t")).unwrap(), c);
    }
}
