//! The checker on hand-made histories: each hard failure is found, and a clean history with
//! duplicates and redeliveries passes.

use super::check;
use crate::chaos::history::Event;
use crate::chaos::history::FaultPhase;

fn invoke(id: &str, body: &str, group: Option<&str>, at: i64) -> Event {
    Event::Invoke {
        id: id.into(),
        topic: if group.is_some() { "fifo".into() } else { "normal".into() },
        body: body.into(),
        group: group.map(Into::into),
        at,
    }
}

fn ok(id: &str, offset: u64, at: i64) -> Event {
    Event::Ok { id: id.into(), offset, at }
}

fn recv(topic: &str, queue: u32, offset: u64, body: &str) -> Event {
    Event::Recv { topic: topic.into(), queue, offset, body: body.into(), at: 0 }
}

fn clean() -> Vec<Event> {
    vec![
        invoke("a", "normal:0", None, 10),
        ok("a", 0, 11),
        invoke("b", "normal:1", None, 12),
        Event::Unknown { id: "b".into(), error: "timeout".into(), at: 20 },
        invoke("f0", "fifo:g0:0", Some("g0"), 13),
        ok("f0", 0, 14),
        invoke("f1", "fifo:g0:1", Some("g0"), 15),
        ok("f1", 1, 16),
        recv("normal", 0, 0, "normal:0"),
        recv("normal", 0, 1, "normal:1"),
        recv("normal", 0, 0, "normal:0"),
        recv("fifo", 3, 0, "fifo:g0:0"),
        recv("fifo", 3, 1, "fifo:g0:1"),
        Event::End { drained: true, at: 30 },
    ]
}

#[test]
fn a_clean_history_passes() {
    let r = check(&clean());
    assert!(!r.failed(), "{r:?}");
    assert_eq!((r.sends, r.acknowledged, r.unknown, r.consumed, r.redeliveries), (4, 3, 1, 4, 1));
}

#[test]
fn an_acknowledged_message_never_consumed_is_lost() {
    let mut h = clean();
    h.retain(|e| !matches!(e, Event::Recv { body, .. } if body == "fifo:g0:1"));
    let r = check(&h);
    assert_eq!(r.lost, vec!["fifo:g0:1".to_string()]);
    assert!(r.failed());
}

#[test]
fn a_message_never_sent_is_unexpected() {
    let mut h = clean();
    h.push(recv("normal", 0, 2, "normal:99"));
    let r = check(&h);
    assert_eq!(r.unexpected, vec!["normal:99".to_string()]);
}

#[test]
fn two_messages_at_one_offset_are_inconsistent() {
    let mut h = clean();
    h.push(recv("normal", 0, 1, "normal:0"));
    let r = check(&h);
    assert_eq!(r.inconsistent.len(), 1, "{r:?}");
}

#[test]
fn an_acknowledged_offset_holding_another_message_is_inconsistent() {
    let mut h = clean();
    h[1] = ok("a", 7, 11);
    assert!(check(&h).inconsistent.iter().any(|l| l.contains("offset 7")));
}

#[test]
fn fifo_order_going_back_is_a_violation() {
    let mut h = clean();
    h.retain(|e| !matches!(e, Event::Recv { topic, .. } if topic == "fifo"));
    h.push(recv("fifo", 3, 0, "fifo:g0:1"));
    h.push(recv("fifo", 3, 1, "fifo:g0:0"));
    assert_eq!(check(&h).order_violations.len(), 1);
}

#[test]
fn a_fifo_group_on_two_queues_is_a_violation() {
    let mut h = clean();
    h.retain(|e| !matches!(e, Event::Recv { body, .. } if body == "fifo:g0:1"));
    h.push(recv("fifo", 4, 0, "fifo:g0:1"));
    assert!(check(&h).order_violations.iter().any(|l| l.contains("queue 3 and on queue 4")));
}

#[test]
fn a_hole_in_a_queue_is_skipped() {
    let mut h = clean();
    h.push(invoke("c", "normal:2", None, 17));
    h.push(ok("c", 5, 18));
    h.push(recv("normal", 0, 5, "normal:2"));
    assert_eq!(check(&h).skipped, vec!["normal queue 0: offsets 2..4 never delivered".to_string()]);
}

#[test]
fn a_duplicate_after_an_unknown_send_is_reported_not_failed() {
    let mut h = clean();
    h.push(recv("normal", 1, 0, "normal:1"));
    let r = check(&h);
    assert!(!r.failed(), "{r:?}");
    assert_eq!(r.duplicates_after_unknown_send, 1);
}

#[test]
fn unavailability_runs_from_the_fault_to_the_first_ack_of_a_later_send() {
    let mut h = clean();
    h.insert(
        0,
        Event::Fault { phase: FaultPhase::Start, action: "kill".into(), target: "node2".into(), at: 12 },
    );
    h.push(Event::Fault { phase: FaultPhase::End, action: "restart".into(), target: "node2".into(), at: 40 });
    let r = check(&h);
    assert_eq!(r.windows.len(), 1);
    // The first send started at or after 12 that was acknowledged: f0, invoked 13, acked 14.
    assert_eq!(r.windows[0].first_ack_ms, Some(2));
    assert_eq!(r.windows[0].end, Some(40));
    // Started inside: b (12 -> unknown at 20), f0 (13 -> 14), f1 (15 -> 16).
    assert_eq!((r.windows[0].sends, r.windows[0].unknown), (3, 1));
    assert_eq!(r.windows[0].send_max_ms, Some(8));
    assert_eq!(r.windows[0].send_p50_ms, Some(1));
    assert_eq!(r.unavailable_max_ms, Some(8));
}

#[test]
fn a_send_longer_than_the_bound_fails_the_check() {
    let mut h = clean();
    h.insert(
        0,
        Event::Fault { phase: FaultPhase::Start, action: "partition".into(), target: "node3".into(), at: 12 },
    );
    h.push(Event::Fault { phase: FaultPhase::End, action: "heal".into(), target: "all".into(), at: 40 });
    let mut r = check(&h);
    assert!(!r.failed(), "no bound: {r:?}");
    // The longest send in the window took 8 ms.
    r.send_bound_ms = Some(8);
    assert!(!r.over_bound() && !r.failed());
    r.send_bound_ms = Some(7);
    assert!(r.over_bound() && r.failed());
}
