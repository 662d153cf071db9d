//! [`Members`]: who is alive in each consumer group, for queue-level consumers that rebalance on
//! the client (pull consumers, broadcasting push consumers).
//!
//! Kept in memory on the NameServer leader only: it is soft state that every member re-sends
//! every 400 ms, so a new leader knows the whole group again one heartbeat after it is elected.
//! Nothing here is worth a Raft entry per heartbeat.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

/// A member that has not beaten for this long has left (three missed heartbeats).
pub const MEMBER_TTL: Duration = Duration::from_millis(1200);

/// Live members per consumer group.
#[derive(Default)]
pub struct Members {
    groups: Mutex<HashMap<String, BTreeMap<String, Instant>>>,
}

impl Members {
    /// Records a heartbeat of `client` in `group` (or its leaving) at `now`; returns the group's
    /// live members, sorted.
    pub fn beat(&self, group: &str, client: &str, leaving: bool, now: Instant) -> Vec<String> {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let members = groups.entry(group.to_string()).or_default();
        if leaving {
            members.remove(client);
        } else {
            members.insert(client.to_string(), now);
        }
        members.retain(|_, seen| now.saturating_duration_since(*seen) < MEMBER_TTL);
        let live: Vec<String> = members.keys().cloned().collect();
        if members.is_empty() {
            groups.remove(group);
        }
        live
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;
    use std::time::Instant;

    use super::MEMBER_TTL;
    use super::Members;

    #[test]
    fn members_join_leave_and_expire() {
        let m = Members::default();
        let t0 = Instant::now();
        assert_eq!(m.beat("g", "b", false, t0), vec!["b"]);
        assert_eq!(m.beat("g", "a", false, t0), vec!["a", "b"]);
        assert_eq!(m.beat("other", "z", false, t0), vec!["z"], "groups are separate");
        // `b` stops beating: gone once its heartbeats are overdue, not before.
        let t1 = t0 + MEMBER_TTL - Duration::from_millis(1);
        assert_eq!(m.beat("g", "a", false, t1), vec!["a", "b"]);
        let t2 = t0 + MEMBER_TTL + Duration::from_millis(1);
        assert_eq!(m.beat("g", "a", false, t2), vec!["a"]);
        // Leaving takes effect at once.
        assert_eq!(m.beat("g", "c", false, t2), vec!["a", "c"]);
        assert_eq!(m.beat("g", "c", true, t2), vec!["a"]);
    }
}
