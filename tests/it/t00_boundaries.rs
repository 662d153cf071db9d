//! Architecture invariants about dependencies, checked on `Cargo.lock` (no cargo invocation):
//! `storage` pulls in no gRPC stack, `client` pulls in no RocksDB and no openraft.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

fn lock_graph() -> BTreeMap<String, Vec<String>> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).expect("Cargo.lock");
    let lock: toml::Table = text.parse().expect("Cargo.lock parses");
    let mut graph = BTreeMap::new();
    for p in lock["package"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("name").to_string();
        let deps = p
            .get("dependencies")
            .and_then(|d| d.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str())
                    .map(|d| d.split(' ').next().unwrap_or(d).to_string())
                    .collect()
            })
            .unwrap_or_default();
        graph.entry(name).or_insert_with(Vec::new).extend::<Vec<String>>(deps);
    }
    graph
}

/// Every crate `root` can reach in the lock file (dev-dependencies of workspace crates
/// included, so this over-approximates, which is the safe direction).
fn closure(graph: &BTreeMap<String, Vec<String>>, root: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_string()];
    while let Some(n) = todo.pop() {
        if seen.insert(n.clone())
            && let Some(deps) = graph.get(&n)
        {
            todo.extend(deps.iter().cloned());
        }
    }
    seen
}

#[test]
fn storage_knows_nothing_of_grpc() {
    let deps = closure(&lock_graph(), "raftmq-storage");
    assert!(deps.contains("rocksdb"), "the walk works: storage does use rocksdb");
    for banned in ["tonic", "prost", "hyper", "h2", "raftmq-proto", "clap"] {
        assert!(!deps.contains(banned), "raftmq-storage depends on {banned}");
    }
}

#[test]
fn client_knows_nothing_of_rocksdb_or_openraft() {
    let deps = closure(&lock_graph(), "raftmq-client");
    assert!(deps.contains("tonic"), "the walk works: client does use tonic");
    for banned in ["rocksdb", "librocksdb-sys", "openraft", "openraft-multi", "raftmq-storage", "raftmq-raft"]
    {
        assert!(!deps.contains(banned), "raftmq-client depends on {banned}");
    }
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_broker_core_names_no_protocol() {
    let core = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../node/src/broker"));
    let files = rust_files(core);
    assert!(files.len() > 10, "the walk works: {} files", files.len());
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        for banned in ["raftmq_proto", "crate::grpc", "crate::remoting", "tonic", "super::super::grpc"] {
            assert!(
                !text.contains(banned),
                "{} names {banned}: the core must stay protocol-free",
                f.display()
            );
        }
    }
}
