//! The Raft type configuration shared by every group, and the ids that name nodes and groups.

use std::fmt;

use crate::command::Command;
use crate::command::Response;

/// Id of a node. Never reused: a replaced node gets a new id.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Raft type configuration of every raftmq group: the NameServer and the broker groups.
    ///
    /// One configuration for all groups lets one log store, one codec and one network serve them
    /// all; the state machines differ, and openraft keeps them apart by `Raft<C, SM>`.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = NodeInfo,
);

/// Id of a Raft group hosted by the nodes. Keys of a group in RocksDB start with its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u32);

impl GroupId {
    /// The NameServer metadata group.
    pub const NAMESERVER: GroupId = GroupId(0);

    /// The `n`-th broker group, counting from 1.
    pub fn broker(n: u32) -> GroupId {
        GroupId(n)
    }

    /// Whether this is a broker group.
    pub fn is_broker(self) -> bool {
        self.0 != 0
    }

    /// The group's name as users see it: `nameserver`, `broker-a`, `broker-b`, ...
    pub fn name(self) -> String {
        match self.0 {
            0 => "nameserver".to_string(),
            n @ 1..=26 => format!("broker-{}", char::from(b'a' + (n - 1) as u8)),
            n => format!("broker-{n}"),
        }
    }

    /// Parses a name produced by [`GroupId::name`].
    pub fn parse(name: &str) -> Option<GroupId> {
        if name == "nameserver" {
            return Some(GroupId::NAMESERVER);
        }
        let rest = name.strip_prefix("broker-")?;
        let b = rest.as_bytes();
        if b.len() == 1 && b[0].is_ascii_lowercase() {
            return Some(GroupId(u32::from(b[0] - b'a') + 1));
        }
        match rest.parse::<u32>() {
            Ok(n) if n > 26 => Some(GroupId(n)),
            _ => None,
        }
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// What the cluster knows about a node: where its peers and its clients reach it.
///
/// This is the `Node` of the Raft membership, so every group's membership carries the addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Address of the internal Raft/RPC port, `host:port`.
    pub raft_addr: String,
    /// Address clients use (RocketMQ gRPC and admin), `host:port`.
    pub client_addr: String,
}

impl NodeInfo {
    /// A node reachable at these two addresses.
    pub fn new(raft_addr: impl Into<String>, client_addr: impl Into<String>) -> Self {
        Self { raft_addr: raft_addr.into(), client_addr: client_addr.into() }
    }
}

/// Log id of [`TypeConfig`].
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// Vote of [`TypeConfig`].
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// Log entry of [`TypeConfig`].
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// Committed leader id (term and node) of [`TypeConfig`].
pub type CommittedLeaderId = openraft::type_config::alias::CommittedLeaderIdOf<TypeConfig>;
/// Membership of [`TypeConfig`].
pub type Membership = openraft::Membership<NodeId, NodeInfo>;
/// Membership with the log id that introduced it.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata of [`TypeConfig`].
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;

#[cfg(test)]
mod tests {
    use super::GroupId;

    #[test]
    fn group_names_round_trip() {
        for n in [0u32, 1, 2, 26, 27, 100] {
            let g = GroupId(n);
            assert_eq!(GroupId::parse(&g.name()), Some(g), "{}", g.name());
        }
        assert_eq!(GroupId(1).name(), "broker-a");
        assert_eq!(GroupId(2).name(), "broker-b");
        assert_eq!(GroupId::parse("broker-5"), None, "small numbers are spelled as letters");
        assert_eq!(GroupId::parse("broker-"), None);
        assert_eq!(GroupId::parse("brokers"), None);
    }
}
