use std::collections::BTreeMap;
use std::collections::BTreeSet;

use super::*;
use crate::nameserver::MetaCommand;

fn lid(term: u64, node: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId { term, node_id: node }, index)
}

fn membership() -> Membership {
    let nodes: BTreeMap<u64, NodeInfo> = (1..=3)
        .map(|i| (i, NodeInfo::new(format!("127.0.0.1:708{i}"), format!("127.0.0.1:808{i}"))))
        .collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes).unwrap()
}

#[test]
fn entries_round_trip() {
    let entries = [
        Entry { log_id: lid(1, 1, 1), payload: EntryPayload::Blank },
        Entry { log_id: lid(2, 3, 7), payload: EntryPayload::Membership(membership()) },
        Entry {
            log_id: lid(2, 3, 8),
            payload: EntryPayload::Normal(Command::Meta(MetaCommand::DeleteTopic { name: "t".into() })),
        },
    ];
    let mut w = Writer::default();
    for e in &entries {
        encode_entry(&mut w, e);
        let b = Bytes::from(w.as_slice().to_vec());
        assert_eq!(entry_index(&b).unwrap(), e.log_id.index);
        let back = decode_entry(&b).unwrap();
        assert_eq!(&back, e);
    }
}

#[test]
fn entry_fixture_bytes_decode() {
    // A blank entry at term 1, node 2, index 3, as version 1 wrote it. Keep decoding it forever.
    let fixture: &[u8] = &[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0];
    let e = decode_entry(&Bytes::from_static(fixture)).unwrap();
    assert_eq!(e.log_id, lid(1, 2, 3));
    assert_eq!(e.payload, EntryPayload::Blank);
}

#[test]
fn votes_round_trip() {
    let v = Vote::new(9, 2);
    assert_eq!(decode_vote(&encode_vote(&v)).unwrap(), v);
    let v = Vote::new_committed(9, 2);
    assert_eq!(decode_vote(&encode_vote(&v)).unwrap(), v);
}

#[test]
fn corrupt_entries_are_errors() {
    assert!(decode_entry(&Bytes::from_static(&[9])).is_err());
    assert!(decode_entry(&Bytes::from_static(&[1, 0])).is_err());
    let mut w = Writer::default();
    encode_entry(&mut w, &Entry { log_id: lid(1, 1, 1), payload: EntryPayload::Blank });
    let mut b = w.into_vec();
    b.push(0);
    assert!(decode_entry(&Bytes::from(b)).unwrap_err().to_string().contains("trailing"));
}

#[test]
fn snapshot_meta_round_trips() {
    let meta = SnapshotMeta {
        last_log_id: Some(lid(3, 1, 100)),
        last_membership: StoredMembership::new(Some(lid(1, 1, 1)), membership()),
    };
    let mut w = Writer::default();
    put_snapshot_meta(&mut w, &meta);
    let v = w.into_vec();
    let mut r = Reader::new(&v, "meta");
    assert_eq!(get_snapshot_meta(&mut r).unwrap(), meta);
}
