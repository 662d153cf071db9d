//! Where a message lives in the CommitLog, as one number: its broker group, the log entry that
//! holds it and its ordinal among the entry's records. This is the "physical offset" the 4.x
//! protocol carries (in offset message ids, pull bodies, send-backs and transaction ends); any
//! replica resolves it to exactly one stored message without an index.
//!
//! Bits (from the top, sign bit clear): 6 for the group id (1-63), 41 for the log index (about
//! 2.2 × 10^12 entries: decades at tens of thousands of entries a second), 16 for the ordinal
//! (the batcher puts at most 65535 records in an entry).

use raftmq_storage::GroupId;
use raftmq_storage::broker::reader;
use raftmq_storage::broker::reader::StoredMessage;

use super::BrokerGroup;
use crate::error::BrokerError;

const GROUP_BITS: u32 = 6;
const LOG_BITS: u32 = 41;
const ORDINAL_BITS: u32 = 16;

/// A message's place in its group's CommitLog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// The broker group.
    pub group: GroupId,
    /// The log entry.
    pub log_index: u64,
    /// The record's ordinal in the entry.
    pub ordinal: u32,
}

impl Location {
    /// The number for this place, if it fits the layout.
    pub fn encode(&self) -> Option<i64> {
        let g = u64::from(self.group.0);
        if g == 0
            || g >= 1 << GROUP_BITS
            || self.log_index >= 1 << LOG_BITS
            || self.ordinal >= 1 << ORDINAL_BITS
        {
            return None;
        }
        let v = (g << (LOG_BITS + ORDINAL_BITS)) | (self.log_index << ORDINAL_BITS) | u64::from(self.ordinal);
        i64::try_from(v).ok()
    }

    /// The place a number stands for (`None` for a number no place encodes to).
    pub fn decode(v: i64) -> Option<Location> {
        let v = u64::try_from(v).ok()?;
        let group = (v >> (LOG_BITS + ORDINAL_BITS)) as u32;
        if group == 0 || group >= 1 << GROUP_BITS {
            return None;
        }
        Some(Location {
            group: GroupId(group),
            log_index: (v >> ORDINAL_BITS) & ((1 << LOG_BITS) - 1),
            ordinal: (v & ((1 << ORDINAL_BITS) - 1)) as u32,
        })
    }
}

impl BrokerGroup {
    /// The message stored at `loc` (a place in this group's log), if it is still there.
    pub async fn message_by_location(&self, loc: Location) -> Result<Option<StoredMessage>, BrokerError> {
        if loc.group != self.group.id() {
            return Ok(None);
        }
        let data = self.data.clone();
        self.blocking(move || reader::record_by_ordinal(data.log(), loc.log_index, loc.ordinal)).await
    }

    /// The place of `m`, a message read from this group's log.
    pub fn location(&self, m: &StoredMessage) -> Location {
        Location { group: self.group.id(), log_index: m.log_index, ordinal: m.ordinal }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip_and_stay_positive() {
        for loc in [
            Location { group: GroupId(1), log_index: 0, ordinal: 0 },
            Location { group: GroupId(2), log_index: 123_456_789, ordinal: 65_534 },
            Location { group: GroupId(63), log_index: (1 << 41) - 1, ordinal: 65_535 },
        ] {
            let v = loc.encode().expect("fits");
            assert!(v >= 0);
            assert_eq!(Location::decode(v), Some(loc));
        }
        assert_eq!(Location { group: GroupId(64), log_index: 0, ordinal: 0 }.encode(), None);
        assert_eq!(Location { group: GroupId(0), log_index: 0, ordinal: 0 }.encode(), None);
        assert_eq!(Location { group: GroupId(1), log_index: 1 << 41, ordinal: 0 }.encode(), None);
        assert_eq!(Location::decode(-1), None);
        assert_eq!(Location::decode(5), None, "group 0 is the NameServer's");
    }
}
