//! Records kept in key order with an index by message id: the pending timers of delayed messages
//! and the pending half messages of transactions, both looked up by the id a client names.

use std::collections::BTreeMap;
use std::collections::HashMap;

/// A record that names its message.
pub trait MessageIdOf {
    /// The message id.
    fn message_id(&self) -> &str;
}

/// Records by key, with an index from message id to key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTable<K: Ord, V> {
    /// By key.
    pub pending: BTreeMap<K, V>,
    /// Message id → key.
    pub by_id: HashMap<String, K>,
}

impl<K: Ord, V> Default for IdTable<K, V> {
    fn default() -> Self {
        Self { pending: BTreeMap::new(), by_id: HashMap::new() }
    }
}

impl<K: Ord + Copy, V: MessageIdOf> IdTable<K, V> {
    /// Adds a record.
    pub(crate) fn insert(&mut self, key: K, v: V) {
        self.by_id.insert(v.message_id().to_string(), key);
        self.pending.insert(key, v);
    }

    /// Removes a record.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let v = self.pending.remove(key)?;
        self.by_id.remove(v.message_id());
        Some(v)
    }

    /// The record of message `message_id`, with its key.
    pub fn find(&self, message_id: &str) -> Option<(K, &V)> {
        let key = *self.by_id.get(message_id)?;
        Some((key, self.pending.get(&key)?))
    }
}
