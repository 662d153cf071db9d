use std::os::unix::fs::FileExt;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::*;

const G1: GroupId = GroupId(1);
const G2: GroupId = GroupId(2);

fn opts(segment_bytes: u64) -> SegLogOptions {
    SegLogOptions { segment_bytes, queue_len: 64, before_sync: None }
}

fn payload(g: GroupId, i: u64) -> Bytes {
    Bytes::from(format!("g{}-entry-{i:06}-{}", g.0, "x".repeat(60)))
}

fn done() -> (Done, oneshot::Receiver<std::result::Result<(), String>>) {
    let (tx, rx) = oneshot::channel();
    (Done { on_written: None, on_durable: Box::new(move |r| drop(tx.send(r))) }, rx)
}

async fn append(log: &SegLog, g: GroupId, range: std::ops::Range<u64>) {
    let (d, rx) = done();
    let entries = range.map(|i| (i, payload(g, i))).collect();
    log.submit(LogOp::Append { group: g, entries, done: d }).await.unwrap();
    rx.await.unwrap().unwrap();
}

async fn sync(log: &SegLog) {
    let (d, rx) = done();
    log.submit(LogOp::Sync { done: d }).await.unwrap();
    rx.await.unwrap().unwrap();
}

/// Closes the log and waits for its writer to end (everything queued is written).
fn close(mut log: SegLog, h: std::thread::JoinHandle<()>) {
    log.close();
    drop(log);
    h.join().unwrap();
}

fn reopen(dir: &Path, seg: u64) -> (SegLog, std::thread::JoinHandle<()>) {
    SegLog::open(dir, opts(seg)).unwrap()
}

fn active_path(dir: &Path) -> PathBuf {
    segment::list(dir).unwrap().pop().unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_and_values_survive_rolls_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, h) = reopen(dir.path(), 4096);
    for chunk in 0..10 {
        append(&log, G1, chunk * 10..chunk * 10 + 10).await;
        append(&log, G2, chunk * 5..chunk * 5 + 5).await;
    }
    let (d, rx) = done();
    log.submit(LogOp::Vote { group: G1, vote: Bytes::from_static(b"vote-1"), done: d }).await.unwrap();
    rx.await.unwrap().unwrap();
    log.submit(LogOp::Committed { group: G1, index: 90, committed: Bytes::from_static(b"c-90") })
        .await
        .unwrap();
    sync(&log).await;
    assert!(log.segments().len() > 2, "small segments must have rolled: {:?}", log.segments());
    for i in 0..100 {
        assert_eq!(log.read(G1, i).unwrap(), Some(payload(G1, i)), "entry {i}");
    }
    assert_eq!(log.read(G1, 100).unwrap(), None);
    close(log, h);

    let (log, h) = reopen(dir.path(), 4096);
    for i in 0..100 {
        assert_eq!(log.read(G1, i).unwrap(), Some(payload(G1, i)), "entry {i} after reopen");
    }
    for i in 0..50 {
        assert_eq!(log.read(G2, i).unwrap(), Some(payload(G2, i)));
    }
    let s = log.group(G1);
    assert_eq!((s.first, s.last), (0, Some(99)));
    assert_eq!(s.vote.as_deref(), Some(&b"vote-1"[..]));
    assert_eq!(s.committed.as_deref(), Some(&b"c-90"[..]));
    // Writing goes on after a reopen, and a third open sees both boots' entries.
    append(&log, G1, 100..120).await;
    close(log, h);
    let (log, h) = reopen(dir.path(), 4096);
    assert_eq!(log.group(G1).last, Some(119));
    assert_eq!(log.read(G1, 110).unwrap(), Some(payload(G1, 110)));
    close(log, h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncations_and_purges_survive_reopen_and_purge_deletes_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (log, h) = reopen(dir.path(), 2048);
    append(&log, G1, 0..60).await;
    log.submit(LogOp::Truncate { group: G1, from: 50 }).await.unwrap();
    append(&log, G1, 50..55).await;
    assert_eq!(log.group(G1).last, Some(54));
    let before = log.segments();
    log.submit(LogOp::Purge { group: G1, first: 40, purged: Some(Bytes::from_static(b"p-39")) })
        .await
        .unwrap();
    sync(&log).await;
    let after = log.segments();
    assert!(after.len() < before.len(), "purge must delete segments: {before:?} -> {after:?}");
    assert_eq!(log.read(G1, 39).unwrap(), None);
    assert_eq!(log.read(G1, 40).unwrap(), Some(payload(G1, 40)));
    close(log, h);

    let (log, h) = reopen(dir.path(), 2048);
    let s = log.group(G1);
    assert_eq!((s.first, s.last, s.purged.as_deref()), (40, Some(54), Some(&b"p-39"[..])));
    for i in 40..55 {
        assert_eq!(log.read(G1, i).unwrap(), Some(payload(G1, i)));
    }
    // A truncation with nothing after it is durable with the next fsync.
    log.submit(LogOp::Truncate { group: G1, from: 52 }).await.unwrap();
    sync(&log).await;
    close(log, h);
    let (log, h) = reopen(dir.path(), 2048);
    assert_eq!(log.group(G1).last, Some(51));
    assert_eq!(log.read(G1, 52).unwrap(), None);
    close(log, h);
}

/// Stops a log holding entries 0..n of G1 in one segment and returns the active segment's path
/// and the offset and length of entry `k`'s record.
async fn one_segment(dir: &Path, n: u64, k: u64) -> (PathBuf, u64, u64) {
    let (log, h) = reopen(dir, 1 << 20);
    append(&log, G1, 0..n).await;
    let loc = log.shared.view.read().unwrap().groups.groups[&1].locate(k);
    close(log, h);
    let Some(Loc::At { off, len, .. }) = loc else { panic!("entry {k} not in the active segment: {loc:?}") };
    (active_path(dir), u64::from(off), u64::from(len))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_at_the_last_whole_record() {
    // Cut mid-record (the file ends inside the last record).
    let dir = tempfile::tempdir().unwrap();
    let (path, off, len) = one_segment(dir.path(), 10, 9).await;
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(off + len / 2).unwrap();
    let (log, h) = reopen(dir.path(), 1 << 20);
    assert_eq!(log.group(G1).last, Some(8));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20, "the cut segment is reserved again");
    append(&log, G1, 9..12).await;
    close(log, h);
    let (log, h) = reopen(dir.path(), 1 << 20);
    assert_eq!(log.group(G1).last, Some(11));
    assert_eq!(log.read(G1, 9).unwrap(), Some(payload(G1, 9)));
    close(log, h);

    // Cut inside the last record's header.
    let dir = tempfile::tempdir().unwrap();
    let (path, off, _) = one_segment(dir.path(), 10, 9).await;
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(off + 10).unwrap();
    let (log, h) = reopen(dir.path(), 1 << 20);
    assert_eq!(log.group(G1).last, Some(8));
    close(log, h);

    // Zero-filled last record.
    let dir = tempfile::tempdir().unwrap();
    let (path, off, len) = one_segment(dir.path(), 10, 9).await;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&vec![0; len as usize], off)
        .unwrap();
    let (log, h) = reopen(dir.path(), 1 << 20);
    assert_eq!(log.group(G1).last, Some(8));
    close(log, h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_an_earlier_boot_behind_a_rewritten_tail_is_not_taken() {
    // Entries 0..3; entry 1 is torn (as if 2 reached the disk and 1 did not), so the next boot
    // ends the log after 0 and writes a new 1 of the same length where the torn one was. Entry 2
    // of the first boot follows it on disk, whole and with a good CRC: it must not come back.
    let dir = tempfile::tempdir().unwrap();
    let (path, off, _) = one_segment(dir.path(), 3, 1).await;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off + 40).unwrap();
    f.write_all_at(&[b[0] ^ 0xff], off + 40).unwrap();
    let (log, h) = reopen(dir.path(), 1 << 20);
    assert_eq!(log.group(G1).last, Some(0));
    append(&log, G1, 1..2).await;
    close(log, h);
    let (log, h) = reopen(dir.path(), 1 << 20);
    assert_eq!(log.group(G1).last, Some(1), "entry 2 of the earlier boot came back");
    close(log, h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_sealed_segment_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let (log, h) = reopen(dir.path(), 2048);
    append(&log, G1, 0..40).await;
    sync(&log).await;
    close(log, h);
    let first = segment::list(dir.path()).unwrap().remove(0).1;
    // Entry 0 is the first record of the first (sealed) segment: flip a byte of its payload.
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&first).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 35).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], 35).unwrap();
    let (log, h) = reopen(dir.path(), 2048);
    let err = log.read(G1, 0).unwrap_err().to_string();
    assert!(err.contains("checksum") && err.contains(&first.display().to_string()), "{err}");
    assert_eq!(log.read(G1, 1).unwrap(), Some(payload(G1, 1)));
    assert_eq!(log.read(G1, 39).unwrap(), Some(payload(G1, 39)));
    close(log, h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_fails_the_write_and_every_later_one() {
    let dir = tempfile::tempdir().unwrap();
    let (log, h) = reopen(dir.path(), 1 << 20);
    append(&log, G1, 0..2).await;
    let (d, rx) = done();
    log.submit(LogOp::Append { group: G1, entries: vec![(5, payload(G1, 5))], done: d }).await.unwrap();
    let err = rx.await.unwrap().unwrap_err();
    assert!(err.contains("hole"), "{err}");
    let (d, rx) = done();
    log.submit(LogOp::Append { group: G1, entries: vec![(2, payload(G1, 2))], done: d }).await.unwrap();
    assert!(rx.await.unwrap().is_err(), "a write after a failed one must fail too");
    assert!(log.failure().is_some());
    close(log, h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_come_after_the_fsync() {
    // Each completion reads the fsync count when it runs: an append's must see an fsync that
    // started after its bytes were written, i.e. one more than before the append was queued.
    let dir = tempfile::tempdir().unwrap();
    let (log, h) = reopen(dir.path(), 1 << 20);
    for i in 0..20u64 {
        let before = log.stats().sync_latency.count();
        let (tx, rx) = oneshot::channel();
        let stats = log.stats().clone();
        let done = Done {
            on_written: None,
            on_durable: Box::new(move |r| drop(tx.send((r, stats.sync_latency.count())))),
        };
        log.submit(LogOp::Append { group: G1, entries: vec![(i, payload(G1, i))], done }).await.unwrap();
        let (r, seen) = rx.await.unwrap();
        r.unwrap();
        assert!(seen > before, "entry {i} reported durable with no fsync after it was queued");
    }
    close(log, h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_id_waits_for_its_entry_and_rides_with_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let (log, h) = reopen(dir.path(), 1 << 20);
    append(&log, G1, 0..10).await;
    // Noted, not queued: nothing is written for it alone, and it names an entry not written yet.
    log.submit(LogOp::Committed { group: G1, index: 20, committed: Bytes::from_static(b"c-20") })
        .await
        .unwrap();
    sync(&log).await;
    assert_eq!(log.group(G1).committed, None, "a committed id never lands before its entry");
    append(&log, G1, 10..25).await;
    assert_eq!(log.group(G1).committed.as_deref(), Some(&b"c-20"[..]), "written with the next append");
    log.submit(LogOp::Committed { group: G1, index: 24, committed: Bytes::from_static(b"c-24") })
        .await
        .unwrap();
    close(log, h);
    // Closing writes what was noted last.
    let (log, h) = reopen(dir.path(), 1 << 20);
    assert_eq!(log.group(G1).committed.as_deref(), Some(&b"c-24"[..]));
    close(log, h);
}
