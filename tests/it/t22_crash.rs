//! Crash safety of the segment log on real node processes: a torn tail on a stopped node, and a
//! flipped byte inside a sealed segment of one replica.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use raftmq_client::Message;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_tests::START;
use raftmq_tests::TestCluster;

use raftmq_node::config::RawConfig;
use raftmq_tests::create_topic_when_ready;
use raftmq_tests::endpoints;
use raftmq_tests::eventually;
use raftmq_tests::powerfs::PowerFs;

use crate::node_bin;
use crate::t20_commitlog::Load;
use crate::t20_commitlog::assert_all_stored;
use crate::t20_commitlog::try_read_all;

/// Bytes of a record header in a segment (`len u32 | crc u32 | kind u8 | seq u32 | epoch u32 |
/// group u32 | index u64`, big-endian), as `storage::seglog::record` writes it.
const HEADER_LEN: usize = 29;

/// One record found in a segment file.
#[derive(Debug, Clone, Copy)]
struct Rec {
    off: u64,
    len: u64,
    kind: u8,
    group: u32,
}

/// The segment files of node `id`, oldest first.
fn segments(c: &TestCluster, id: u64) -> Vec<PathBuf> {
    let dir = c.dir().join(format!("node-{id}")).join("commitlog");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    files
}

/// The whole records at the start of `path`, walked by their length fields until one that is
/// not a record with a good checksum (zeros of the preallocated tail, a torn record, or a sealed
/// segment's index).
fn records(path: &Path) -> Vec<Rec> {
    let data = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + HEADER_LEN <= data.len() {
        let h = &data[off..off + HEADER_LEN];
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let kind = h[8];
        if len < HEADER_LEN || off + len > data.len() || !(1..=5).contains(&kind) {
            break;
        }
        let crc = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        if crc32fast::hash(&data[off + 8..off + len]) != crc {
            break;
        }
        let group = u32::from_be_bytes([h[17], h[18], h[19], h[20]]);
        out.push(Rec { off: off as u64, len: len as u64, kind, group });
        off += len;
    }
    out
}

async fn send_bodies(producer: &Producer, topic: &str, from: usize, n: usize, size: usize) -> Vec<String> {
    let mut acked = Vec::new();
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(50) {
        let bodies: Vec<String> = chunk.iter().map(|i| format!("m{i:06}-{}", "x".repeat(size))).collect();
        producer.send_batch(bodies.iter().map(|b| Message::new(topic, b.clone())).collect()).await.unwrap();
        acked.extend(bodies);
    }
    acked
}

/// Every message of `topic` by queue, retrying failed reads (a replica stepping down answers
/// UNAVAILABLE once) until `START`.
async fn read_whole(consumer: &PullConsumer, topic: &str) -> BTreeMap<u32, Vec<(u64, String)>> {
    eventually(START, "a whole read of the topic", || try_read_all(consumer, topic)).await.unwrap()
}

/// Reads `topic` whole (retrying failed reads until `START`) and checks it holds exactly
/// `acked`, gapless from offset 0 in every queue.
async fn assert_exactly(consumer: &PullConsumer, topic: &str, acked: &[String]) {
    let all = read_whole(consumer, topic).await;
    for (q, msgs) in &all {
        for (i, (o, _)) in msgs.iter().enumerate() {
            assert_eq!(*o, i as u64, "queue {q}: offsets start at 0 with no gap");
        }
    }
    let mut stored: Vec<&str> = all.values().flatten().map(|(_, b)| b.as_str()).collect();
    let mut want: Vec<&str> = acked.iter().map(String::as_str).collect();
    stored.sort_unstable();
    want.sort_unstable();
    assert_eq!(stored.len(), want.len(), "message count");
    assert!(stored == want, "every stored body is one that was acknowledged, unaltered");
}

/// Waits until node `id`'s replica of `group` has applied everything its leader committed.
async fn caught_up(c: &TestCluster, id: u64, group: &str) {
    let admin = c.admin(if id == 1 { 2 } else { 1 });
    let last = std::sync::Mutex::new(None);
    let r = eventually(START, &format!("node {id} caught up on {group}"), || {
        let (admin, last) = (&admin, &last);
        async move {
            let s = admin.cluster_status().await.ok()?;
            let g = s.groups.into_iter().find(|g| g.name == group)?;
            let leader = g.replicas.iter().find(|r| Some(r.node_id) == g.leader)?;
            let me = g.replicas.iter().find(|r| r.node_id == id)?;
            let done = me.applied.is_some() && me.applied >= leader.committed;
            *last.lock().unwrap() = Some(format!("{g:?}"));
            done.then_some(())
        }
    })
    .await;
    if let Err(e) = r {
        panic!("{e}; last status: {:?}\n{}", last.lock().unwrap(), c.log_tail(id, 30));
    }
}

/// A 3-node, 2-group cluster whose leaders stay where elections and transfers put them (no
/// leader balancer), with topic `topic` of `queues` queues.
async fn unbalanced_cluster(topic: &str, queues: u32, tune: &dyn Fn(&mut RawConfig)) -> TestCluster {
    let mut c = TestCluster::start_with(node_bin(), 3, 2, &|r: &mut RawConfig| {
        r.broker.balance_leaders = false;
        tune(r);
    })
    .unwrap();
    for g in ["nameserver", "broker-a", "broker-b"] {
        if let Err(e) = c.cluster.wait_leader(g, None, START).await {
            panic!("{e}\n{}", c.log_tail(1, 40));
        }
    }
    create_topic_when_ready(&c, topic, queues).await;
    c
}

/// Makes node `to` the leader of `group`.
async fn lead(c: &mut TestCluster, group: &str, to: u64) {
    let admin = c.admin(to);
    eventually(START, &format!("node {to} leads {group}"), || {
        let admin = &admin;
        async move {
            let s = admin.cluster_status().await.ok()?;
            let g = s.groups.into_iter().find(|g| g.name == group)?;
            if g.leader == Some(to) {
                return Some(());
            }
            let _ = admin.transfer_leader(group, to).await;
            None
        }
    })
    .await
    .unwrap();
}

/// A node killed in the middle of a write leaves a torn last record: cut short where the file
/// ends, or with zeros where its body should be (pages that never reached the disk). Such a
/// record was never fsynced, so never acknowledged nor applied; the test tears a copy of the
/// node's last record written after it. On restart the node recovers to the last whole record,
/// says so, rejoins, catches up, and can lead with a whole log: every acknowledged message
/// readable through it. (Losing a record that *was* fsynced is disk damage, not a crash: the
/// node then refuses to start, see `log_store::rules`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_recovers_to_the_last_whole_record_and_rejoins() {
    let mut c = unbalanced_cluster("torn", 4, &|_| {}).await;
    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();
    let consumer = PullConsumer::new(PullConsumerOptions::new(endpoints(&c), "torn-reader")).unwrap();
    let (leader, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    let victim = (1..=3).find(|n| *n != leader).unwrap();
    let mut acked = send_bodies(&producer, "torn", 0, 300, 200).await;

    for (round, damage) in ["cut mid-record", "zero-filled body"].into_iter().enumerate() {
        c.cluster.kill(victim).await.unwrap();
        let active = segments(&c, victim).pop().expect("an active segment");
        let last = *records(&active).last().expect("records in the active segment");
        let end = last.off + last.len;
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&active).unwrap();
        let mut copy = vec![0u8; last.len as usize];
        f.read_exact_at(&mut copy, last.off).unwrap();
        if round == 0 {
            // The write of a record got halfway: the file ends inside it.
            let half = (last.len / 2).max(HEADER_LEN as u64 + 1) as usize;
            f.write_all_at(&copy[..half.min(copy.len())], end).unwrap();
            f.set_len(end + half as u64).unwrap();
        } else {
            // Its header reached the disk, its body did not.
            f.write_all_at(&copy[..HEADER_LEN], end).unwrap();
            f.write_all_at(&vec![0u8; copy.len() - HEADER_LEN], end + HEADER_LEN as u64).unwrap();
        }
        f.sync_all().unwrap();
        drop(f);
        assert_eq!(
            records(&active).last().map(|r| r.off + r.len),
            Some(end),
            "{damage}: the torn record is not taken for a whole one"
        );
        // Sends go on while the node is down, and after it is back.
        acked.extend(send_bodies(&producer, "torn", 1000 * (round + 1), 100, 200).await);
        c.cluster.start(victim).unwrap();
        acked.extend(send_bodies(&producer, "torn", 1000 * (round + 1) + 500, 100, 200).await);
        for g in ["broker-a", "broker-b"] {
            caught_up(&c, victim, g).await;
        }
        {
            let log = c.log_tail(victim, usize::MAX);
            assert!(
                log.matches("segment log tail is torn").count() == round + 1,
                "{damage}: the node said it recovered from a torn tail:\n{log}"
            );
        }
        // The recovered node leads broker-a: its own log serves every read.
        lead(&mut c, "broker-a", victim).await;
        assert_exactly(&consumer, "torn", &acked).await;
    }
}

/// A flipped byte inside a sealed segment of one replica: that node never serves the corrupt
/// message (every body read back is one that was sent), says which file and group are damaged,
/// steps down when it leads, and the group keeps serving from the other replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_sealed_segment_is_never_served() {
    let mut c = unbalanced_cluster("flip", 2, &|r| {
        r.broker.segment_mib = 1;
        r.broker.tail_cache_mib = 1;
    })
    .await;
    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();
    let consumer = PullConsumer::new(PullConsumerOptions::new(endpoints(&c), "flip-reader")).unwrap();
    // About 5 MiB: every node seals several 1 MiB segments.
    let acked = send_bodies(&producer, "flip", 0, 5000, 1000).await;
    let (leader, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    let victim = (1..=3).find(|n| *n != leader).unwrap();
    c.cluster.stop(victim, Duration::from_secs(20)).await.unwrap();

    // A broker-a entry in the oldest sealed segment: flip a byte in the middle of its payload.
    let files = segments(&c, victim);
    assert!(files.len() >= 3, "several segments were sealed: {files:?}");
    let sealed = &files[0];
    let rec = records(sealed)
        .into_iter()
        .find(|r| r.kind == 1 && r.group == 1 && r.len > 4096)
        .expect("a broker-a entry in the first segment");
    let at = rec.off + HEADER_LEN as u64 + (rec.len - HEADER_LEN as u64) / 2;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(sealed).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
    f.sync_all().unwrap();
    drop(f);

    c.cluster.start(victim).unwrap();
    for g in ["broker-a", "broker-b"] {
        caught_up(&c, victim, g).await;
    }
    // With a healthy leader the damaged follower is never read.
    assert_exactly(&consumer, "flip", &acked).await;
    // Made leader, it finds the damage on the first read of that entry, answers UNAVAILABLE,
    // and hands the group to a healthy replica; the retried reads are served there.
    lead(&mut c, "broker-a", victim).await;
    assert_exactly(&consumer, "flip", &acked).await;
    let log = c.log_tail(victim, 2000);
    let name = sealed.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        log.lines().any(|l| l.contains("stored data failed its check")
            && l.contains(&name)
            && l.contains("broker-a")),
        "the node named the damaged file {name} and group:\n{log}"
    );
    let (now, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    assert_ne!(now, victim, "the damaged replica gave up leading broker-a");
    let metrics = raftmq_tests::metrics(&c, victim as usize - 1).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("raftmq_replica_damaged{") && l.contains("broker-a") && l.ends_with(" 1")),
        "the damage shows in /metrics"
    );
    // The group keeps taking writes.
    let more = send_bodies(&producer, "flip", 90_000, 50, 100).await;
    assert_eq!(more.len(), 50);
}

/// Nodes whose data directories are on [`PowerFs`] mounts; the nodes die before the mounts go.
struct PoweredCluster {
    c: TestCluster,
    mounts: Vec<PowerFs>,
}

/// Each node's term of each group, as the nodes report them.
async fn terms(c: &TestCluster) -> BTreeMap<(String, u64), u64> {
    let s = eventually(START, "cluster status", || async { c.admin(1).cluster_status().await.ok() })
        .await
        .unwrap();
    s.groups
        .iter()
        .flat_map(|g| g.replicas.iter().map(move |r| ((g.name.clone(), r.node_id), r.term)))
        .collect()
}

/// Power fails on all three nodes at once during a send load, twice. After each restart every
/// acknowledged message is stored at a gapless offset, and no node's term went back (a vote
/// granted before the cut was durable). Nodes run with their data on a file system that drops
/// whatever was not fsynced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_of_every_node_keeps_every_acknowledged_message() {
    let c = TestCluster::configure(node_bin(), 3, 2, &|r| {
        r.broker.direct_io = false;
        r.broker.segment_mib = 2;
    })
    .unwrap();
    let mounts = (1..=3)
        .map(|i| {
            PowerFs::mount(&c.dir().join(format!("power-{i}")), &c.dir().join(format!("node-{i}"))).unwrap()
        })
        .collect();
    let mut p = PoweredCluster { c, mounts };
    p.c.cluster.start_all().unwrap();
    for g in ["nameserver", "broker-a", "broker-b"] {
        if let Err(e) = p.c.cluster.wait_leader(g, None, START).await {
            panic!("{e}\n{}", p.c.log_tail(1, 40));
        }
    }
    create_topic_when_ready(&p.c, "power", 4).await;
    let producer = Producer::new(ProducerOptions::new(endpoints(&p.c))).unwrap();
    let consumer = PullConsumer::new(PullConsumerOptions::new(endpoints(&p.c), "power-reader")).unwrap();
    let mut acked = Vec::new();
    for round in 0..2 {
        let load = Load::start(&producer, "power");
        eventually(START, "sends acknowledged under load", || async {
            (load.acked_since(std::time::Instant::now() - Duration::from_secs(60)) > 300).then_some(())
        })
        .await
        .unwrap();
        let before = terms(&p.c).await;
        // The cut: every node dies at once, and what none of them fsynced is gone.
        let cut_at = std::time::Instant::now();
        for id in 1..=3 {
            p.c.cluster.kill(id).await.unwrap();
        }
        let dead_at = std::time::Instant::now();
        let times = load.acked_at();
        // What the cut takes from the Raft logs and from RocksDB (its WAL is written unsynced).
        let lost_log: u64 = p.mounts.iter().map(|m| m.dirty_bytes("commitlog")).sum();
        let lost_db: u64 = p.mounts.iter().map(|m| m.dirty_bytes("rocksdb")).sum();
        for m in &p.mounts {
            m.power_cut().unwrap();
        }
        acked.extend(load.stop().await);
        assert!(
            lost_db > 0,
            "round {round}: the cut dropped unsynced state-machine writes (else it tests nothing); log {lost_log} B"
        );
        p.c.cluster.start_all().unwrap();
        for g in ["nameserver", "broker-a", "broker-b"] {
            if let Err(e) = p.c.cluster.wait_leader(g, None, START).await {
                panic!("round {round}: {e}\n{}", p.c.log_tail(1, 60));
            }
        }
        for g in ["broker-a", "broker-b"] {
            applied_all(&p.c, g).await;
        }
        let after = terms(&p.c).await;
        for (k, t) in &before {
            let now = after.get(k).copied().unwrap_or(0);
            assert!(now >= *t, "round {round}: {k:?} term went back from {t} to {now}: a vote was lost");
        }
        if let Some(lost) = missing(&consumer, "power", &acked).await {
            let when: Vec<String> = times
                .iter()
                .filter(|(b, _)| lost.contains(b))
                .map(|(b, t)| {
                    format!(
                        "{b} acked {:?} after the first kill (all dead after {:?})",
                        t.duration_since(cut_at),
                        dead_at.duration_since(cut_at)
                    )
                })
                .collect();
            panic!("round {round}: {} acknowledged messages lost: {when:?}", lost.len());
        }
        assert_all_stored(&consumer, "power", &acked).await;
    }
    // Nodes first, then the file systems under them.
    for id in 1..=3 {
        p.c.cluster.kill(id).await.unwrap();
    }
    drop(p);
}

/// Acknowledged bodies not stored in `topic`, if any.
async fn missing(consumer: &PullConsumer, topic: &str, acked: &[String]) -> Option<Vec<String>> {
    let all = read_whole(consumer, topic).await;
    let stored: std::collections::HashSet<&str> = all.values().flatten().map(|(_, b)| b.as_str()).collect();
    let lost: Vec<String> = acked.iter().filter(|b| !stored.contains(b.as_str())).cloned().collect();
    (!lost.is_empty()).then_some(lost)
}

/// Waits until the leader of `group` has applied every entry of its log (after a restart the
/// newest entries become readable once the new leader's first entry commits them).
async fn applied_all(c: &TestCluster, group: &str) {
    let admin = c.admin(1);
    eventually(START, &format!("the leader of {group} applied its whole log"), || {
        let admin = &admin;
        async move {
            let s = admin.cluster_status().await.ok()?;
            let g = s.groups.into_iter().find(|g| g.name == group)?;
            let l = g.replicas.iter().find(|r| Some(r.node_id) == g.leader && r.role == "leader")?;
            (l.applied.is_some() && l.applied == l.last_log_index).then_some(())
        }
    })
    .await
    .unwrap();
}
