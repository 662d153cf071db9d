//! Log engine probe: raft-engine 0.4.2 against a minimal segment writer (the design in
//! ARCHITECTURE.md "The log engine"), driven by one thread the way raftmq's log writer is: each
//! round, every group appends `k` entries of `size` bytes, then one fsync covers the round.
//!
//! Usage: `log-engine-probe <dir> write <engine> <groups> <k> <size> <secs>`
//!        `log-engine-probe <dir> index <engine> <entries>`      (RSS per retained entry)
//!        `log-engine-probe <dir> read <engine> <groups> <k> <size> <secs> <reads>`
//! where `<engine>` is `raft-engine` or `segment`.

use std::fs::File;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::time::Duration;
use std::time::Instant;

use protobuf::well_known_types::BytesValue;
use raft_engine::Config;
use raft_engine::Engine;
use raft_engine::LogBatch;
use raft_engine::MessageExt;
use raft_engine::ReadableSize;

struct Ext;
impl MessageExt for Ext {
    type Entry = BytesValue;
    fn index(e: &BytesValue) -> u64 {
        u64::from_be_bytes(e.value[..8].try_into().unwrap())
    }
}

fn cpu_micros() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

trait Log {
    /// Appends `k` entries per group (indexes from `next[g]`), then one fsync if `sync`.
    fn round(&mut self, groups: u32, next: &mut [u64], k: u32, payload: &[u8], sync: bool);
    /// Reads entry `index` of `group`; returns its length.
    fn read(&mut self, group: u32, index: u64) -> usize;
}

struct RaftEngineLog {
    engine: Engine,
}

impl RaftEngineLog {
    fn open(dir: &str) -> Self {
        let cfg = Config {
            dir: dir.to_string(),
            batch_compression_threshold: ReadableSize(0),
            recovery_threads: 1,
            target_file_size: ReadableSize::mb(64),
            purge_threshold: ReadableSize::gb(100),
            ..Default::default()
        };
        Self { engine: Engine::open(cfg).unwrap() }
    }
}

impl Log for RaftEngineLog {
    fn round(&mut self, groups: u32, next: &mut [u64], k: u32, payload: &[u8], sync: bool) {
        for g in 0..groups {
            let mut entries = Vec::with_capacity(k as usize);
            for _ in 0..k {
                let mut v = Vec::with_capacity(8 + payload.len());
                v.extend_from_slice(&next[g as usize].to_be_bytes());
                v.extend_from_slice(payload);
                let mut e = BytesValue::new();
                e.value = v;
                entries.push(e);
                next[g as usize] += 1;
            }
            let mut batch = LogBatch::default();
            batch.add_entries::<Ext>(g as u64 + 1, &entries).unwrap();
            self.engine.write(&mut batch, sync && g + 1 == groups).unwrap();
        }
    }

    fn read(&mut self, group: u32, index: u64) -> usize {
        let e = self.engine.get_entry::<Ext>(group as u64 + 1, index).unwrap().unwrap();
        e.value.len()
    }
}

const SEG_BYTES: u64 = 64 << 20;
const HEADER: usize = 4 + 4 + 4 + 8 + 8;

/// Minimal segment writer: records `len | crc | group | index | term | payload` appended to
/// preallocated 64 MiB files with one `pwrite` per round and one `fdatasync`. Its index is what
/// the real design keeps on disk (a trailer per sealed segment); here it is a `Vec` only so the
/// read test can find records.
struct SegmentLog {
    dir: String,
    file: File,
    seg: u64,
    off: u64,
    buf: Vec<u8>,
    index: Vec<Vec<(u64, u64, u32)>>,
    sealed: Vec<File>,
}

fn open_segment(dir: &str, seg: u64) -> File {
    let f =
        OpenOptions::new().create(true).read(true).write(true).open(format!("{dir}/{seg:08}.seg")).unwrap();
    let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, SEG_BYTES as libc::off_t) };
    assert_eq!(r, 0, "fallocate");
    f
}

impl SegmentLog {
    fn open(dir: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        Self {
            dir: dir.to_string(),
            file: open_segment(dir, 0),
            seg: 0,
            off: 0,
            buf: Vec::with_capacity(1 << 20),
            index: Vec::new(),
            sealed: Vec::new(),
        }
    }
}

impl Log for SegmentLog {
    fn round(&mut self, groups: u32, next: &mut [u64], k: u32, payload: &[u8], sync: bool) {
        if self.index.len() < groups as usize {
            self.index.resize(groups as usize, Vec::new());
        }
        self.buf.clear();
        let need = (groups * k) as u64 * (HEADER + payload.len()) as u64;
        if self.off + need > SEG_BYTES {
            self.file.sync_data().unwrap();
            self.seg += 1;
            let f = open_segment(&self.dir, self.seg);
            self.sealed.push(std::mem::replace(&mut self.file, f));
            self.off = 0;
        }
        for g in 0..groups {
            for _ in 0..k {
                let idx = next[g as usize];
                next[g as usize] += 1;
                let start = self.buf.len();
                self.buf.extend_from_slice(&((HEADER + payload.len()) as u32).to_le_bytes());
                self.buf.extend_from_slice(&[0; 4]);
                self.buf.extend_from_slice(&g.to_le_bytes());
                self.buf.extend_from_slice(&idx.to_le_bytes());
                self.buf.extend_from_slice(&1u64.to_le_bytes());
                self.buf.extend_from_slice(payload);
                let crc = crc32fast::hash(&self.buf[start + 8..]);
                self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
                self.index[g as usize].push((
                    self.seg,
                    self.off + start as u64,
                    (self.buf.len() - start) as u32,
                ));
            }
        }
        self.file.write_all_at(&self.buf, self.off).unwrap();
        self.off += self.buf.len() as u64;
        if sync {
            self.file.sync_data().unwrap();
        }
    }

    fn read(&mut self, group: u32, index: u64) -> usize {
        let (seg, off, len) = self.index[group as usize][index as usize];
        let f = if seg == self.seg { &self.file } else { &self.sealed[seg as usize] };
        let mut b = vec![0u8; len as usize];
        f.read_exact_at(&mut b, off).unwrap();
        let crc = u32::from_le_bytes(b[4..8].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(&b[8..]), "crc");
        b.len() - HEADER
    }
}

fn open(engine: &str, dir: &str) -> Box<dyn Log> {
    match engine {
        "raft-engine" => Box::new(RaftEngineLog::open(dir)),
        "segment" => Box::new(SegmentLog::open(dir)),
        e => panic!("unknown engine {e}"),
    }
}

fn write(log: &mut dyn Log, groups: u32, k: u32, size: usize, secs: u64) -> Vec<u64> {
    let payload = vec![0xa5u8; size];
    let mut next = vec![0u64; groups as usize];
    let (t0, c0) = (Instant::now(), cpu_micros());
    let mut rounds = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        log.round(groups, &mut next, k, &payload, true);
        rounds += 1;
    }
    let (el, cpu) = (t0.elapsed().as_secs_f64(), cpu_micros() - c0);
    let entries = next.iter().sum::<u64>();
    println!(
        "write groups={groups} k={k} size={size}: {:.0} entries/s, {:.1} MB/s, {:.0} fsyncs/s, {:.1} cpu-us/entry, rss {} MiB",
        entries as f64 / el,
        entries as f64 * size as f64 / el / 1e6,
        rounds as f64 / el,
        cpu as f64 / entries as f64,
        rss_kib() / 1024
    );
    next
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (dir, cmd, engine) = (&a[1], a[2].as_str(), a[3].as_str());
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut log = open(engine, dir);
    let n = |i: usize| a[i].parse::<u64>().unwrap();
    match cmd {
        "write" => {
            write(log.as_mut(), n(4) as u32, n(5) as u32, n(6) as usize, n(7));
        }
        "read" => {
            let groups = n(4) as u32;
            let next = write(log.as_mut(), groups, n(5) as u32, n(6) as usize, n(7));
            let reads = n(8);
            let mut x: u64 = 0x9e3779b97f4a7c15;
            let (t0, c0) = (Instant::now(), cpu_micros());
            let mut bytes = 0;
            for _ in 0..reads {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let g = (x % groups as u64) as u32;
                bytes += log.read(g, (x >> 8) % next[g as usize]);
            }
            println!(
                "read {reads}: {:.1} us/read, {:.1} cpu-us/read, {bytes} bytes",
                t0.elapsed().as_secs_f64() * 1e6 / reads as f64,
                (cpu_micros() - c0) as f64 / reads as f64
            );
        }
        "index" => {
            let total = n(4);
            let payload = vec![0x5au8; 64];
            let mut next = vec![0u64; 3];
            let r0 = rss_kib();
            let mut written = 0;
            while written < total {
                log.round(3, &mut next, 1000, &payload, false);
                written += 3000;
            }
            let r1 = rss_kib();
            println!(
                "index {written} entries: rss {} -> {} MiB, {:.1} bytes per retained entry",
                r0 / 1024,
                r1 / 1024,
                (r1 - r0) as f64 * 1024.0 / written as f64
            );
        }
        c => panic!("unknown command {c}"),
    }
}
