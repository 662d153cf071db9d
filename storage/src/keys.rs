//! Key layout in the node's RocksDB. Every key starts with the 4-byte big-endian group id, so a
//! group's data is one contiguous range per column family and iterates in index order.

use crate::types::GroupId;

/// Raft metadata tags in [`crate::store::CF_RAFT`].
pub(crate) mod raft_tag {
    /// The last saved vote.
    pub(crate) const VOTE: u8 = 1;
    /// The last purged log id.
    pub(crate) const LAST_PURGED: u8 = 2;
    /// The last committed log id openraft told us about.
    pub(crate) const COMMITTED: u8 = 3;
}

/// Key of log entry `index` of `group`.
pub(crate) fn log_key(group: GroupId, index: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&group.0.to_be_bytes());
    k[4..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Index encoded in a log key; `None` if the key is not a log key.
pub(crate) fn log_key_index(key: &[u8]) -> Option<u64> {
    let b: [u8; 8] = key.get(4..12)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// Key of Raft metadata `tag` of `group`.
pub(crate) fn raft_key(group: GroupId, tag: u8) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[..4].copy_from_slice(&group.0.to_be_bytes());
    k[4] = tag;
    k
}

/// Key `suffix` of `group` in any column family (state-machine records, snapshot records).
pub fn group_key(group: GroupId, suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + suffix.len());
    k.extend_from_slice(&group.0.to_be_bytes());
    k.extend_from_slice(suffix);
    k
}

/// First key of `group`'s range in any column family.
pub(crate) fn group_start(group: GroupId) -> Vec<u8> {
    group.0.to_be_bytes().to_vec()
}

/// First key after `group`'s range in any column family.
pub(crate) fn group_end(group: GroupId) -> Vec<u8> {
    (u64::from(group.0) + 1).to_be_bytes()[4..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ranges_are_disjoint_and_ordered() {
        let g = GroupId(7);
        assert!(group_start(g).as_slice() <= &log_key(g, 0)[..]);
        assert!(&log_key(g, u64::MAX)[..] < group_end(g).as_slice());
        assert_eq!(group_end(g), group_start(GroupId(8)));
        assert_eq!(group_end(GroupId(u32::MAX)), vec![0, 0, 0, 0], "wraps: callers never use u32::MAX");
        assert_eq!(log_key_index(&log_key(g, 42)), Some(42));
        assert!(log_key(g, 9) < log_key(g, 10));
    }
}
