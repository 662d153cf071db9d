//! `raftmq chaos check`: judges a chaos run's history.
//!
//! Hard failures (exit status 1): an acknowledged message never consumed (lost); a consumed
//! message never sent (unexpected); one (topic, queue, offset) seen with two different messages,
//! or an acknowledged offset where the message was not found (inconsistent); a FIFO message group
//! out of order or spread over two queues; a hole in the offsets a consumer read from a queue
//! (skipped). Reported: duplicates, split into those that follow an unknown send and those
//! that are redeliveries of the same offset, and per fault window how long sends failed.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::history::Event;
use super::history::FaultPhase;
use crate::bench::stats::summarize;

/// Options of `raftmq chaos check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// History file written by `raftmq chaos workload` and the chaos scripts.
    pub history: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Fail when a send started during a fault took longer than this many ms (for faults that
    /// should cost a send little, such as isolating a node that leads no broker group).
    #[arg(long)]
    pub send_max_ms: Option<i64>,
}

/// How long sends failed in one fault window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    /// The fault (`kill node2`, ...).
    pub fault: String,
    /// Start, ms since the epoch.
    pub start: i64,
    /// Heal, ms since the epoch (`None`: never healed in the history).
    pub end: Option<i64>,
    /// From the fault to the first acknowledgment of a send started after it, ms; `None` if no
    /// send started after the fault was acknowledged.
    pub first_ack_ms: Option<i64>,
    /// Sends started in the window.
    pub sends: usize,
    /// Of those, sends whose outcome is unknown.
    pub unknown: usize,
    /// How long sends started in the window took to be acknowledged or given up, ms: p50.
    pub send_p50_ms: Option<i64>,
    /// p99 of the same.
    pub send_p99_ms: Option<i64>,
    /// Longest of the same: how long the fault kept one send waiting.
    pub send_max_ms: Option<i64>,
}

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Send attempts.
    pub sends: usize,
    /// Acknowledged logical messages.
    pub acknowledged: usize,
    /// Attempts whose outcome is unknown.
    pub unknown: usize,
    /// Attempts refused.
    pub failed: usize,
    /// Distinct messages consumed.
    pub consumed: usize,
    /// Acknowledged, never consumed (hard).
    pub lost: Vec<String>,
    /// Consumed, never sent (hard).
    pub unexpected: Vec<String>,
    /// Offsets with two messages, or acknowledged offsets that hold something else (hard).
    pub inconsistent: Vec<String>,
    /// FIFO order broken (hard).
    pub order_violations: Vec<String>,
    /// Holes in the offsets read from a queue (hard).
    pub skipped: Vec<String>,
    /// Messages stored more than once after an unknown or repeated send.
    pub duplicates_after_unknown_send: usize,
    /// Messages stored more than once although the application's one send was acknowledged:
    /// an attempt inside the SDK timed out after it was stored, and the SDK sent it again.
    pub duplicates_after_internal_retry: usize,
    /// Deliveries of an offset already delivered.
    pub redeliveries: usize,
    /// Whether the workload saw every acknowledged message before its deadline.
    pub drained: bool,
    /// Fault windows.
    pub windows: Vec<Window>,
    /// The longest send of any fault window, ms (see [`Window::send_max_ms`]).
    pub unavailable_max_ms: Option<i64>,
    /// The bound on that, when the check was given one.
    pub send_bound_ms: Option<i64>,
}

impl Report {
    /// Whether any hard failure was found.
    pub fn failed(&self) -> bool {
        !(self.lost.is_empty()
            && self.unexpected.is_empty()
            && self.inconsistent.is_empty()
            && self.order_violations.is_empty()
            && self.skipped.is_empty())
            || self.over_bound()
    }

    /// Whether the longest send during a fault took longer than the bound given.
    pub fn over_bound(&self) -> bool {
        self.send_bound_ms.zip(self.unavailable_max_ms).is_some_and(|(bound, max)| max > bound)
    }
}

struct Attempt<'a> {
    body: &'a str,
    invoked_at: i64,
}

/// Judges `events`.
pub fn check(events: &[Event]) -> Report {
    let mut r = Report::default();
    let mut attempts: HashMap<&str, Attempt<'_>> = HashMap::new();
    let mut invoked_bodies: HashMap<&str, usize> = HashMap::new();
    let mut unsure_bodies: HashSet<&str> = HashSet::new();
    let mut fifo_group: HashMap<&str, &str> = HashMap::new();
    let mut acked: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut done: Vec<(i64, i64, bool)> = Vec::new(); // (invoked_at, finished_at, known)
    // (topic, queue, offset) -> body
    let mut at_offset: BTreeMap<(&str, u32, u64), &str> = BTreeMap::new();
    let mut body_places: HashMap<&str, BTreeSet<(&str, u32, u64)>> = HashMap::new();
    let mut open: Vec<(String, String, i64)> = Vec::new(); // (target, fault, start)
    let mut windows: Vec<(String, i64, Option<i64>)> = Vec::new();

    for ev in events {
        match ev {
            Event::Invoke { id, body, group, at, .. } => {
                r.sends += 1;
                attempts.insert(id, Attempt { body, invoked_at: *at });
                *invoked_bodies.entry(body).or_default() += 1;
                if let Some(g) = group {
                    fifo_group.insert(body, g);
                }
            }
            Event::Ok { id, offset, at } => {
                if let Some(a) = attempts.get(id.as_str()) {
                    acked.entry(a.body).or_default().push(*offset);
                    done.push((a.invoked_at, *at, true));
                }
            }
            Event::Unknown { id, at, .. } => {
                r.unknown += 1;
                if let Some(a) = attempts.get(id.as_str()) {
                    unsure_bodies.insert(a.body);
                    done.push((a.invoked_at, *at, false));
                }
            }
            Event::Fail { .. } => r.failed += 1,
            Event::Recv { topic, queue, offset, body, .. } => {
                let key = (topic.as_str(), *queue, *offset);
                match at_offset.get(&key) {
                    Some(b) if *b != body => r.inconsistent.push(format!(
                        "{topic} queue {queue} offset {offset} delivered as {b:?} and as {body:?}"
                    )),
                    Some(_) => r.redeliveries += 1,
                    None => {
                        at_offset.insert(key, body);
                    }
                }
                body_places.entry(body).or_default().insert(key);
            }
            Event::Fault { phase: FaultPhase::Start, action, target, at } => {
                open.push((target.clone(), format!("{action} {target}"), *at));
            }
            Event::Fault { phase: FaultPhase::End, target, at, .. } => {
                let (closed, still): (Vec<_>, Vec<_>) =
                    open.drain(..).partition(|(t, _, _)| target == "all" || t == target);
                open = still;
                windows.extend(closed.into_iter().map(|(_, f, s)| (f, s, Some(*at))));
            }
            Event::End { drained, .. } => r.drained = *drained,
        }
    }
    windows.extend(open.into_iter().map(|(_, f, s)| (f, s, None)));
    windows.sort_by_key(|w| w.1);

    r.acknowledged = acked.len();
    r.consumed = body_places.len();
    for (body, offsets) in &acked {
        let Some(places) = body_places.get(body) else {
            r.lost.push((*body).to_string());
            continue;
        };
        for o in offsets {
            if !places.iter().any(|p| p.2 == *o) {
                r.inconsistent
                    .push(format!("{body:?} acknowledged at offset {o} but delivered at {places:?}"));
            }
        }
    }
    for (body, places) in &body_places {
        if !invoked_bodies.contains_key(body) {
            r.unexpected.push((*body).to_string());
        } else if places.len() > 1 {
            if unsure_bodies.contains(body) || invoked_bodies[body] > 1 {
                r.duplicates_after_unknown_send += places.len() - 1;
            } else {
                r.duplicates_after_internal_retry += places.len() - 1;
            }
        }
    }
    r.skipped = holes(&at_offset);
    r.order_violations = fifo_order(&at_offset, &fifo_group);

    r.windows = windows
        .into_iter()
        .map(|(fault, start, end)| {
            let first_ack_ms =
                done.iter().filter(|(inv, _, ok)| *ok && *inv >= start).map(|(_, fin, _)| fin - start).min();
            let inside: Vec<&(i64, i64, bool)> =
                done.iter().filter(|(inv, _, _)| *inv >= start && end.is_none_or(|e| *inv <= e)).collect();
            let took: Vec<Duration> =
                inside.iter().map(|(inv, fin, _)| Duration::from_millis((fin - inv).max(0) as u64)).collect();
            let s = summarize(&took);
            let pick = |d: Duration| (s.n > 0).then_some(d.as_millis() as i64);
            Window {
                fault,
                start,
                end,
                first_ack_ms,
                sends: inside.len(),
                unknown: inside.iter().filter(|d| !d.2).count(),
                send_p50_ms: pick(s.p50),
                send_p99_ms: pick(s.p99),
                send_max_ms: pick(s.max),
            }
        })
        .collect();
    r.unavailable_max_ms = r.windows.iter().filter_map(|w| w.send_max_ms).max();
    r.lost.sort();
    r.unexpected.sort();
    r
}

/// Offsets missing between the first and last offset read from each queue; every queue of a
/// fresh topic starts at 0.
fn holes(at_offset: &BTreeMap<(&str, u32, u64), &str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut expect: Option<((&str, u32), u64)> = None;
    for (topic, queue, offset) in at_offset.keys() {
        let next = match expect {
            Some((q, next)) if q == (*topic, *queue) => next,
            _ => 0,
        };
        if *offset > next {
            out.push(format!("{topic} queue {queue}: offsets {next}..{} never delivered", offset - 1));
        }
        expect = Some(((*topic, *queue), offset + 1));
    }
    out
}

/// FIFO bodies are `<topic>:<group>:<k>`: in each queue, in offset order, a group's `k` never goes
/// back (the same `k` twice is a duplicate of an unknown send), and a group stays on one queue.
fn fifo_order(at_offset: &BTreeMap<(&str, u32, u64), &str>, fifo_group: &HashMap<&str, &str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut last: HashMap<&str, (u32, u64, u64)> = HashMap::new(); // group -> (queue, offset, k)
    let mut first = HashSet::new();
    for ((topic, queue, offset), body) in at_offset {
        let Some(group) = fifo_group.get(body) else { continue };
        // A later copy of a body (a resend after an unknown outcome that landed late) is a
        // duplicate, reported as such; the order is that of first copies.
        if !first.insert(*body) {
            continue;
        }
        let Some(k) = body.rsplit(':').next().and_then(|k| k.parse::<u64>().ok()) else { continue };
        if let Some((q, o, prev)) = last.get(group) {
            if q != queue {
                out.push(format!("{topic} group {group} on queue {q} and on queue {queue}"));
            } else if k < *prev {
                out.push(format!(
                    "{topic} queue {queue} group {group}: message {k} at offset {offset} after message {prev} at offset {o}"
                ));
            }
        }
        last.insert(group, (*queue, *offset, k));
    }
    out
}

/// Reads the history, prints the report; fails if a hard failure was found.
pub fn run(args: CheckArgs) -> anyhow::Result<()> {
    let events = super::history::read(&args.history)?;
    let mut r = check(&events);
    r.send_bound_ms = args.send_max_ms;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_report(&r);
    }
    if r.failed() {
        anyhow::bail!(
            "{} lost, {} unexpected, {} inconsistent, {} order violations, {} skipped{}",
            r.lost.len(),
            r.unexpected.len(),
            r.inconsistent.len(),
            r.order_violations.len(),
            r.skipped.len(),
            if r.over_bound() { ", a send during a fault took longer than the bound" } else { "" }
        );
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!(
        "sends {} · acknowledged {} · unknown {} · failed {} · consumed {} · drained {}",
        r.sends, r.acknowledged, r.unknown, r.failed, r.consumed, r.drained
    );
    println!(
        "lost {} · unexpected {} · inconsistent {} · order violations {} · skipped {}",
        r.lost.len(),
        r.unexpected.len(),
        r.inconsistent.len(),
        r.order_violations.len(),
        r.skipped.len()
    );
    println!(
        "duplicates after unknown sends {} · after retries inside the SDK {} · redeliveries {}",
        r.duplicates_after_unknown_send, r.duplicates_after_internal_retry, r.redeliveries
    );
    let show = |v: Option<i64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
    for w in &r.windows {
        println!(
            "fault {:<24} lasted {:>9} · first ack after {} · {} sends started, {} unknown, took p50 {} p99 {} max {}",
            w.fault,
            w.end.map_or("unhealed".to_string(), |e| format!("{} ms", e - w.start)),
            show(w.first_ack_ms),
            w.sends,
            w.unknown,
            show(w.send_p50_ms),
            show(w.send_p99_ms),
            show(w.send_max_ms)
        );
    }
    if !r.windows.is_empty() {
        let bound = match r.send_bound_ms {
            Some(b) if r.over_bound() => format!(" (bound {b} ms: EXCEEDED)"),
            Some(b) => format!(" (bound {b} ms: kept)"),
            None => String::new(),
        };
        println!("longest send started during a fault: {}{bound}", show(r.unavailable_max_ms));
    }
    for (what, list) in [
        ("lost", &r.lost),
        ("unexpected", &r.unexpected),
        ("inconsistent", &r.inconsistent),
        ("order", &r.order_violations),
        ("skipped", &r.skipped),
    ] {
        for line in list.iter().take(20) {
            println!("{what}: {line}");
        }
        if list.len() > 20 {
            println!("{what}: ... {} more", list.len() - 20);
        }
    }
}

#[cfg(test)]
mod tests;
