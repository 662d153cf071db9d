//! How [`MetaState`] is laid out as records under the NameServer group's state-machine keys.
//!
//! One record per member, topic, broker group and consumer group, so an apply writes only what it
//! changed. Values are JSON: small, rarely written, and readable with `ldb` when debugging.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::model::BrokerGroupInfo;
use super::model::ConsumerGroup;
use super::model::Member;
use super::model::MetaState;
use super::model::Topic;
use crate::error::DecodeError;

const INITIALIZED: &[u8] = b"i";
const MEMBER: &[u8] = b"m/";
const RETIRED: &[u8] = b"r/";
const BROKER_GROUP: &[u8] = b"b/";
const TOPIC: &[u8] = b"t/";
const GROUP: &[u8] = b"g/";

/// One record to write (`value` set) or delete, keyed relative to the group's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Key suffix after the group prefix.
    pub key: Vec<u8>,
    /// New value, or `None` to delete.
    pub value: Option<Vec<u8>>,
}

fn key(prefix: &[u8], id: &[u8]) -> Vec<u8> {
    [prefix, id].concat()
}

fn put<T: Serialize>(prefix: &[u8], id: &[u8], v: &T) -> Change {
    // Serializing plain structs of strings and numbers into a Vec cannot fail.
    let value = serde_json::to_vec(v).unwrap_or_default();
    Change { key: key(prefix, id), value: Some(value) }
}

impl Change {
    pub(crate) fn initialized() -> Change {
        Change { key: INITIALIZED.to_vec(), value: Some(b"1".to_vec()) }
    }
    pub(crate) fn member(m: &Member) -> Change {
        put(MEMBER, &m.id.to_be_bytes(), m)
    }
    pub(crate) fn delete_member(id: u64) -> Change {
        Change { key: key(MEMBER, &id.to_be_bytes()), value: None }
    }
    pub(crate) fn retired(id: u64) -> Change {
        Change { key: key(RETIRED, &id.to_be_bytes()), value: Some(Vec::new()) }
    }
    pub(crate) fn broker_group(b: &BrokerGroupInfo) -> Change {
        put(BROKER_GROUP, &b.id.to_be_bytes(), b)
    }
    pub(crate) fn topic(t: &Topic) -> Change {
        put(TOPIC, t.name.as_bytes(), t)
    }
    pub(crate) fn delete_topic(name: &str) -> Change {
        Change { key: key(TOPIC, name.as_bytes()), value: None }
    }
    pub(crate) fn group(g: &ConsumerGroup) -> Change {
        put(GROUP, g.name.as_bytes(), g)
    }
    pub(crate) fn delete_group(name: &str) -> Change {
        Change { key: key(GROUP, name.as_bytes()), value: None }
    }
}

fn decode<T: DeserializeOwned>(what: &'static str, v: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(v).map_err(|e| DecodeError::new(what, e.to_string()))
}

impl MetaState {
    /// Every record of the state, for a snapshot or a test.
    pub fn to_records(&self) -> Vec<Change> {
        let mut out = Vec::new();
        if self.initialized {
            out.push(Change::initialized());
        }
        out.extend(self.members.values().map(Change::member));
        out.extend(self.retired.iter().map(|id| Change::retired(*id)));
        out.extend(self.broker_groups.values().map(Change::broker_group));
        out.extend(self.topics.values().map(Change::topic));
        out.extend(self.groups.values().map(Change::group));
        out
    }

    /// Rebuilds the state from its records. Unknown keys are corruption, not something to skip.
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Self, DecodeError> {
        let mut s = MetaState::default();
        for (k, v) in records {
            if k == INITIALIZED {
                s.initialized = true;
            } else if k.starts_with(MEMBER) {
                let m: Member = decode("member record", v)?;
                s.members.insert(m.id, m);
            } else if let Some(id) = k.strip_prefix(RETIRED) {
                let id: [u8; 8] =
                    id.try_into().map_err(|_| DecodeError::new("retired record", "key is not a u64"))?;
                s.retired.insert(u64::from_be_bytes(id));
            } else if k.starts_with(BROKER_GROUP) {
                let b: BrokerGroupInfo = decode("broker group record", v)?;
                s.broker_groups.insert(b.id, b);
            } else if k.starts_with(TOPIC) {
                let t: Topic = decode("topic record", v)?;
                s.topics.insert(t.name.clone(), t);
            } else if k.starts_with(GROUP) {
                let g: ConsumerGroup = decode("consumer group record", v)?;
                s.groups.insert(g.name.clone(), g);
            } else {
                return Err(DecodeError::new("nameserver record", format!("unknown key {k:?}")));
            }
        }
        Ok(s)
    }
}
