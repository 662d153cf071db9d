use std::collections::BTreeSet;

use super::*;
use crate::nameserver::ConsumeFrom;
use crate::nameserver::command::BrokerGroupSpec;
use crate::nameserver::model::ConsumeMode;
use crate::nameserver::model::Member;
use crate::nameserver::model::MessageType;
use crate::nameserver::model::Permission;

fn initialized() -> MetaState {
    let mut s = MetaState::default();
    let members = (1..=3)
        .map(|id| Member {
            id,
            raft_addr: format!("r{id}"),
            client_addr: format!("c{id}"),
            remoting_addr: None,
        })
        .collect();
    let all: BTreeSet<u64> = [1, 2, 3].into();
    let (r, _) = s.apply(&MetaCommand::InitCluster {
        members,
        broker_groups: vec![
            BrokerGroupSpec { id: 1, members: all.clone() },
            BrokerGroupSpec { id: 2, members: all },
        ],
    });
    assert_eq!(r, MetaResponse::Done);
    s
}

fn topic(name: &str, queues: u32) -> MetaCommand {
    MetaCommand::CreateTopic {
        spec: TopicSpec {
            name: name.into(),
            queue_count: queues,
            message_type: MessageType::Normal,
            permission: Permission::ReadWrite,
            retention_secs: 72 * 3600,
            system: false,
        },
        now_ms: 1000,
    }
}

#[test]
fn init_is_idempotent() {
    let mut s = initialized();
    let before = s.clone();
    let (r, changes) = s.apply(&MetaCommand::InitCluster { members: vec![], broker_groups: vec![] });
    assert_eq!(r, MetaResponse::Done);
    assert!(changes.is_empty());
    assert_eq!(s, before);
}

#[test]
fn queues_are_spread_over_broker_groups() {
    let mut s = initialized();
    let (r, changes) = s.apply(&topic("orders", 8));
    let MetaResponse::Topic(t) = r else { panic!("{r:?}") };
    assert_eq!(t.queue_count(), 8);
    let on_a = t.queues.iter().filter(|q| q.group == 1).count();
    assert_eq!(on_a, 4);
    assert_eq!(t.queues.iter().map(|q| q.queue_id).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
    assert_eq!(changes.len(), 1);
}

#[test]
fn duplicates_and_bad_values_change_nothing() {
    let mut s = initialized();
    s.apply(&topic("orders", 4));
    let before = s.clone();
    for (cmd, want) in [
        (topic("orders", 4), "already exists"),
        (topic("bad/name", 4), "contains '/'"),
        (topic("%DLQ%x", 4), "reserved prefix"),
        (topic("zero", 0), "queue count must be 1-1024"),
        (topic("many", 5000), "queue count must be 1-1024"),
    ] {
        let (r, changes) = s.apply(&cmd);
        let MetaResponse::Rejected(e) = r else { panic!("{cmd:?} accepted") };
        assert!(e.to_string().contains(want), "{e}");
        assert!(changes.is_empty());
        assert_eq!(s, before);
    }
}

#[test]
fn topics_need_broker_groups() {
    let mut s = MetaState::default();
    let (r, _) = s.apply(&topic("t", 1));
    assert_eq!(r, MetaResponse::Rejected(MetaError::NoBrokerGroups));
}

#[test]
fn update_only_grows_queues() {
    let mut s = initialized();
    s.apply(&topic("t", 4));
    let shrink = MetaCommand::UpdateTopic {
        name: "t".into(),
        update: TopicUpdate { queue_count: Some(2), ..Default::default() },
        now_ms: 2,
    };
    assert!(matches!(s.apply(&shrink).0, MetaResponse::Rejected(MetaError::Invalid(_))));
    let grow = MetaCommand::UpdateTopic {
        name: "t".into(),
        update: TopicUpdate { queue_count: Some(6), retention_secs: Some(60), ..Default::default() },
        now_ms: 2,
    };
    let MetaResponse::Topic(t) = s.apply(&grow).0 else { panic!() };
    assert_eq!(t.queue_count(), 6);
    assert_eq!(t.retention_secs, 60);
    assert_eq!(t.queues[4].group, 1);
    assert_eq!(t.queues[5].group, 2);
}

#[test]
fn leader_reports_ignore_older_terms() {
    let mut s = initialized();
    s.apply(&MetaCommand::ReportLeader { group: 1, leader: 2, term: 5 });
    s.apply(&MetaCommand::ReportLeader { group: 1, leader: 3, term: 4 });
    let b = &s.broker_groups[&1];
    assert_eq!((b.leader, b.term), (Some(2), 5));
    let (_, changes) = s.apply(&MetaCommand::ReportLeader { group: 1, leader: 2, term: 5 });
    assert!(changes.is_empty(), "a repeated report writes nothing");
}

#[test]
fn groups_validate_names_and_attempts() {
    let mut s = initialized();
    let g = |name: &str, attempts| MetaCommand::CreateGroup {
        spec: GroupSpec {
            name: name.into(),
            mode: ConsumeMode::Clustering,
            fifo: false,
            max_delivery_attempts: attempts,
            consume_from: ConsumeFrom::Last,
        },
        now_ms: 1,
    };
    assert!(matches!(s.apply(&g("g1", 17)).0, MetaResponse::Group(_)));
    assert_eq!(s.apply(&g("g1", 17)).0, MetaResponse::Rejected(MetaError::GroupExists("g1".into())));
    assert!(matches!(s.apply(&g("g2", 0)).0, MetaResponse::Rejected(MetaError::Invalid(_))));
    assert!(matches!(s.apply(&g("%RETRY%g", 3)).0, MetaResponse::Rejected(MetaError::Name(_))));
}

#[test]
fn records_round_trip() {
    let mut s = initialized();
    s.apply(&topic("a", 3));
    s.apply(&topic("b", 1));
    let recs = s.to_records();
    let back = MetaState::from_records(recs.iter().map(|c| (c.key.as_slice(), c.value.as_deref().unwrap())))
        .unwrap();
    assert_eq!(back, s);
}

#[test]
fn a_retired_node_is_never_recorded_again_and_is_forgotten_once_gone() {
    let mut s = initialized();
    // Forgetting a node that was not retired changes nothing.
    let (_, changes) = s.apply(&MetaCommand::ForgetMember { id: 1 });
    assert!(changes.is_empty());
    assert!(s.members.contains_key(&1));

    let (r, changes) = s.apply(&MetaCommand::RetireMember { id: 1 });
    assert_eq!(r, MetaResponse::Done);
    assert_eq!(changes.len(), 1);
    assert!(s.retired.contains(&1));
    assert!(s.members.contains_key(&1), "the record stays while the node is still a member");
    let (_, again) = s.apply(&MetaCommand::RetireMember { id: 1 });
    assert!(again.is_empty(), "retiring twice writes nothing");

    let (_, changes) = s.apply(&MetaCommand::ForgetMember { id: 1 });
    assert_eq!(changes.len(), 1);
    assert!(!s.members.contains_key(&1));
    // A stale upsert (an old membership seen late) cannot bring it back.
    let back = Member { id: 1, raft_addr: "r1".into(), client_addr: "c1".into(), remoting_addr: None };
    let (_, changes) = s.apply(&MetaCommand::UpsertMember { member: back });
    assert!(changes.is_empty());
    assert!(!s.members.contains_key(&1));

    // Survives the snapshot records.
    let records = s.to_records();
    let rebuilt = MetaState::from_records(
        records.iter().map(|c| (c.key.as_slice(), c.value.as_deref().unwrap_or(&[]))),
    )
    .unwrap();
    assert_eq!(rebuilt, s);
}

#[test]
fn broker_group_members_follow_the_raft_voters() {
    let mut s = initialized();
    let new: BTreeSet<u64> = [2, 3, 4].into();
    let (_, changes) = s.apply(&MetaCommand::SetBrokerMembers { group: 1, members: new.clone() });
    assert_eq!(changes.len(), 1);
    assert_eq!(s.broker_groups[&1].members, new);
    let (_, changes) = s.apply(&MetaCommand::SetBrokerMembers { group: 1, members: new });
    assert!(changes.is_empty(), "no change, no record");
    let (_, changes) = s.apply(&MetaCommand::SetBrokerMembers { group: 9, members: [1].into() });
    assert!(changes.is_empty(), "an unknown group is ignored");
}

#[test]
fn a_remoting_address_is_announced_and_kept_across_address_syncs() {
    let mut s = initialized();
    let (_, changes) = s.apply(&MetaCommand::SetRemotingAddr { id: 2, addr: Some("127.0.0.1:9877".into()) });
    assert_eq!(changes.len(), 1);
    assert_eq!(s.members[&2].remoting_addr.as_deref(), Some("127.0.0.1:9877"));
    let (_, again) = s.apply(&MetaCommand::SetRemotingAddr { id: 2, addr: Some("127.0.0.1:9877".into()) });
    assert!(again.is_empty(), "no change, no record");
    // The leader's sync of Raft addresses (which know no Remoting address) keeps it.
    let synced = Member { id: 2, raft_addr: "r2-new".into(), client_addr: "c2".into(), remoting_addr: None };
    let (_, changes) = s.apply(&MetaCommand::UpsertMember { member: synced });
    assert_eq!(changes.len(), 1);
    assert_eq!(s.members[&2].raft_addr, "r2-new");
    assert_eq!(s.members[&2].remoting_addr.as_deref(), Some("127.0.0.1:9877"));
    let (_, changes) = s.apply(&MetaCommand::SetRemotingAddr { id: 9, addr: Some("x:1".into()) });
    assert!(changes.is_empty(), "an unknown node is ignored");
    let records = s.to_records();
    let rebuilt = MetaState::from_records(
        records.iter().map(|c| (c.key.as_slice(), c.value.as_deref().unwrap_or(&[]))),
    )
    .unwrap();
    assert_eq!(rebuilt, s);
}
