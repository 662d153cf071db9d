//! Records kept in key order with an index by message id: the pending timers of delayed messages
//! and the pending half messages of transactions, both looked up by the id a client names.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

/// A record that names its message.
pub trait MessageIdOf {
    /// The message id.
    fn message_id(&self) -> &str;
}

/// Records by key, with an index from message id to keys. Ids are the client's and may repeat
/// (a send retried with its id), so an id maps to every key that has it; lookups take the first
/// key, the same on every replica whatever the order records arrived in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTable<K: Ord, V> {
    /// By key.
    pub pending: BTreeMap<K, V>,
    /// Message id → keys.
    by_id: BTreeMap<String, BTreeSet<K>>,
}

impl<K: Ord, V> Default for IdTable<K, V> {
    fn default() -> Self {
        Self { pending: BTreeMap::new(), by_id: BTreeMap::new() }
    }
}

impl<K: Ord + Copy, V: MessageIdOf> IdTable<K, V> {
    /// Adds a record.
    pub(crate) fn insert(&mut self, key: K, v: V) {
        self.by_id.entry(v.message_id().to_string()).or_default().insert(key);
        self.pending.insert(key, v);
    }

    /// Removes a record.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let v = self.pending.remove(key)?;
        if let Some(keys) = self.by_id.get_mut(v.message_id()) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_id.remove(v.message_id());
            }
        }
        Some(v)
    }

    /// The record of message `message_id`, with its key.
    pub fn find(&self, message_id: &str) -> Option<(K, &V)> {
        let key = *self.by_id.get(message_id)?.first()?;
        Some((key, self.pending.get(&key)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rec(&'static str);

    impl MessageIdOf for Rec {
        fn message_id(&self) -> &str {
            self.0
        }
    }

    #[test]
    fn a_repeated_id_keeps_both_records_findable_in_key_order() {
        let mut t: IdTable<u32, Rec> = IdTable::default();
        t.insert(7, Rec("m"));
        t.insert(3, Rec("m"));
        assert_eq!(t.find("m").map(|(k, _)| k), Some(3), "the first key, whatever the insert order");
        t.remove(&3);
        assert_eq!(t.find("m").map(|(k, _)| k), Some(7), "removing one keeps the other");
        t.remove(&7);
        assert!(t.find("m").is_none());
    }
}
