//! Conversions between openraft's types and the internal wire messages (`raftmq.raft.v1`).
//! Entries travel in the storage crate's on-disk encoding, so a follower decodes exactly what the
//! leader stored.

use bytes::Bytes;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use raftmq_proto::raft as pb;
use raftmq_storage::DecodeError;
use raftmq_storage::GroupId;
use raftmq_storage::TypeConfig;
use raftmq_storage::codec::Writer;
use raftmq_storage::raft_codec;
use raftmq_storage::types::CommittedLeaderId;
use raftmq_storage::types::LogId;
use raftmq_storage::types::Vote;

/// A log id on the wire.
pub fn log_id(l: &LogId) -> pb::LogId {
    pb::LogId { term: l.leader_id.term, node_id: l.leader_id.node_id, index: l.index }
}

/// A log id off the wire.
pub fn from_log_id(l: &pb::LogId) -> LogId {
    LogId::new(CommittedLeaderId { term: l.term, node_id: l.node_id }, l.index)
}

/// A vote on the wire.
pub fn vote(v: &Vote) -> pb::Vote {
    pb::Vote { term: v.leader_id.term, node_id: v.leader_id.node_id, committed: v.committed }
}

/// A vote off the wire; a missing vote is malformed.
pub fn from_vote(v: Option<&pb::Vote>) -> Result<Vote, DecodeError> {
    let v = v.ok_or_else(|| DecodeError::new("raft rpc", "missing vote"))?;
    Ok(if v.committed { Vote::new_committed(v.term, v.node_id) } else { Vote::new(v.term, v.node_id) })
}

/// AppendEntries on the wire, with every entry encoded as the leader stores it.
pub fn append_request(group: GroupId, rpc: &AppendEntriesRequest<TypeConfig>) -> pb::AppendEntriesRequest {
    let mut w = Writer::with_capacity(1024);
    let entries = rpc
        .entries
        .iter()
        .map(|e| {
            raft_codec::encode_entry(&mut w, e);
            Bytes::copy_from_slice(w.as_slice())
        })
        .collect();
    pb::AppendEntriesRequest {
        group: group.0,
        vote: Some(vote(&rpc.vote)),
        prev_log_id: rpc.prev_log_id.as_ref().map(log_id),
        leader_commit: rpc.leader_commit.as_ref().map(log_id),
        entries,
    }
}

/// AppendEntries off the wire.
pub fn from_append_request(
    req: pb::AppendEntriesRequest,
) -> Result<AppendEntriesRequest<TypeConfig>, DecodeError> {
    let entries = req.entries.iter().map(raft_codec::decode_entry).collect::<Result<Vec<_>, _>>()?;
    Ok(AppendEntriesRequest {
        vote: from_vote(req.vote.as_ref())?,
        prev_log_id: req.prev_log_id.as_ref().map(from_log_id),
        entries,
        leader_commit: req.leader_commit.as_ref().map(from_log_id),
    })
}

/// An AppendEntries answer on the wire.
pub fn append_response(r: &AppendEntriesResponse<TypeConfig>) -> pb::AppendEntriesResponse {
    use pb::append_entries_response::Empty;
    use pb::append_entries_response::PartialSuccess;
    use pb::append_entries_response::Result as R;
    let result = match r {
        AppendEntriesResponse::Success => R::Success(Empty {}),
        AppendEntriesResponse::PartialSuccess(m) => {
            R::PartialSuccess(PartialSuccess { matching: m.as_ref().map(log_id) })
        }
        AppendEntriesResponse::Conflict => R::Conflict(Empty {}),
        AppendEntriesResponse::HigherVote(v) => R::HigherVote(vote(v)),
    };
    pb::AppendEntriesResponse { result: Some(result) }
}

/// An AppendEntries answer off the wire.
pub fn from_append_response(
    r: pb::AppendEntriesResponse,
) -> Result<AppendEntriesResponse<TypeConfig>, DecodeError> {
    use pb::append_entries_response::Result as R;
    Ok(match r.result {
        Some(R::Success(_)) => AppendEntriesResponse::Success,
        Some(R::PartialSuccess(p)) => {
            AppendEntriesResponse::PartialSuccess(p.matching.as_ref().map(from_log_id))
        }
        Some(R::Conflict(_)) => AppendEntriesResponse::Conflict,
        Some(R::HigherVote(v)) => AppendEntriesResponse::HigherVote(from_vote(Some(&v))?),
        None => return Err(DecodeError::new("append entries response", "no result")),
    })
}

/// A (pre-)vote request on the wire.
pub fn vote_request(group: GroupId, rpc: &VoteRequest<TypeConfig>, pre_vote: bool) -> pb::VoteRequest {
    pb::VoteRequest {
        group: group.0,
        vote: Some(vote(&rpc.vote)),
        last_log_id: rpc.last_log_id.as_ref().map(log_id),
        pre_vote,
        leadership_transfer: rpc.leadership_transfer,
    }
}

/// A (pre-)vote request off the wire.
pub fn from_vote_request(r: &pb::VoteRequest) -> Result<VoteRequest<TypeConfig>, DecodeError> {
    Ok(VoteRequest {
        vote: from_vote(r.vote.as_ref())?,
        last_log_id: r.last_log_id.as_ref().map(from_log_id),
        leadership_transfer: r.leadership_transfer,
    })
}

/// A vote answer on the wire.
pub fn vote_response(r: &VoteResponse<TypeConfig>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote(&r.vote)),
        vote_granted: r.vote_granted,
        last_log_id: r.last_log_id.as_ref().map(log_id),
    }
}

/// A vote answer off the wire.
pub fn from_vote_response(r: &pb::VoteResponse) -> Result<VoteResponse<TypeConfig>, DecodeError> {
    Ok(VoteResponse::new(
        from_vote(r.vote.as_ref())?,
        r.last_log_id.as_ref().map(from_log_id),
        r.vote_granted,
    ))
}

/// A leadership transfer on the wire.
pub fn transfer_request(group: GroupId, r: &TransferLeaderRequest<TypeConfig>) -> pb::TransferLeaderRequest {
    pb::TransferLeaderRequest {
        group: group.0,
        from_leader: Some(vote(r.from_leader())),
        to_node_id: *r.to_node_id(),
        last_log_id: r.last_log_id().map(log_id),
    }
}

/// A leadership transfer off the wire.
pub fn from_transfer_request(
    r: &pb::TransferLeaderRequest,
) -> Result<TransferLeaderRequest<TypeConfig>, DecodeError> {
    Ok(TransferLeaderRequest::new(
        from_vote(r.from_leader.as_ref())?,
        r.to_node_id,
        r.last_log_id.as_ref().map(from_log_id),
    ))
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;
    use raftmq_storage::types::Entry;

    use super::*;

    fn lid(t: u64, n: u64, i: u64) -> LogId {
        LogId::new(CommittedLeaderId { term: t, node_id: n }, i)
    }

    #[test]
    fn append_round_trip() {
        let v = Vote::new_committed(3, 1);
        let rpc = AppendEntriesRequest::<TypeConfig> {
            vote: v,
            prev_log_id: Some(lid(2, 1, 9)),
            entries: vec![Entry { log_id: lid(3, 1, 10), payload: EntryPayload::Blank }],
            leader_commit: Some(lid(2, 1, 8)),
        };
        let back = from_append_request(append_request(GroupId(4), &rpc)).unwrap();
        assert_eq!(
            (back.vote, back.prev_log_id, back.leader_commit),
            (rpc.vote, rpc.prev_log_id, rpc.leader_commit)
        );
        assert_eq!(back.entries, rpc.entries);
        for r in [
            AppendEntriesResponse::Success,
            AppendEntriesResponse::PartialSuccess(Some(lid(1, 1, 1))),
            AppendEntriesResponse::PartialSuccess(None),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(Vote::new(9, 2)),
        ] {
            assert_eq!(from_append_response(append_response(&r)).unwrap(), r);
        }
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(from_vote(None).is_err());
        assert!(from_append_response(pb::AppendEntriesResponse { result: None }).is_err());
        let bad = pb::AppendEntriesRequest {
            group: 1,
            vote: Some(vote(&Vote::new(1, 1))),
            entries: vec![Bytes::from_static(b"\x09")],
            ..Default::default()
        };
        assert!(from_append_request(bad).is_err());
    }
}
