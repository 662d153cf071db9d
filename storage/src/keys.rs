//! Key layout in the node's RocksDB. Every key starts with the 4-byte big-endian group id, so a
//! group's data is one contiguous range.

use crate::types::GroupId;

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
        assert!(group_start(g) <= group_key(g, &[0]));
        assert!(group_key(g, &[0xff; 16]) < group_end(g));
        assert_eq!(group_end(g), group_start(GroupId(8)));
        assert_eq!(group_end(GroupId(u32::MAX)), vec![0, 0, 0, 0], "wraps: callers never use u32::MAX");
    }
}
