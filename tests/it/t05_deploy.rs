//! `deploy/`: compose.yml parses and describes three nodes (stable host names, one config file
//! each, named data volumes, health checks, a restart policy), Jaeger with OTLP and its UI, and
//! Prometheus scraping every node; every node config passes `raftmq node --check`; and the same
//! configs run as a cluster on this machine (`raftmq cluster --config-dir deploy --host-map`),
//! nodes on 127.0.0.11-13.

use std::path::Path;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use raftmq_client::admin::AdminClient;
use yaml_rust2::Yaml;
use yaml_rust2::YamlLoader;

use crate::node_bin;

const HOST_MAP: &str = "node1=127.0.0.11,node2=127.0.0.12,node3=127.0.0.13";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// A service with the keys of its `<<` merge (the shared node settings) filled in.
fn service(doc: &Yaml, name: &str) -> yaml_rust2::yaml::Hash {
    let s = doc["services"][name].as_hash().unwrap_or_else(|| panic!("service {name} is missing")).clone();
    let mut merged = s.get(&Yaml::from_str("<<")).and_then(Yaml::as_hash).cloned().unwrap_or_default();
    for (k, v) in s {
        merged.insert(k, v);
    }
    merged
}

fn strings(y: Option<&Yaml>) -> Vec<String> {
    y.and_then(Yaml::as_vec)
        .map(|v| v.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[test]
fn compose_file_describes_three_nodes_jaeger_and_prometheus() {
    let dir = deploy_dir();
    let text = std::fs::read_to_string(dir.join("compose.yml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let doc = &docs[0];
    let key = |k: &str| Yaml::from_str(k);
    for n in 1..=3 {
        let name = format!("node{n}");
        let s = service(doc, &name);
        assert_eq!(
            s.get(&key("hostname")).and_then(Yaml::as_str),
            Some(name.as_str()),
            "{name}: stable host name"
        );
        assert!(s.get(&key("restart")).and_then(Yaml::as_str).is_some(), "{name}: restart policy");
        assert!(s.get(&key("healthcheck")).is_some(), "{name}: health check");
        let published = strings(s.get(&key("ports")));
        assert!(
            published.iter().any(|p| p.ends_with(":9876")),
            "{name}: Remoting port 9876 published: {published:?}"
        );
        let volumes = strings(s.get(&key("volumes")));
        let config = volumes
            .iter()
            .find_map(|v| v.strip_suffix(":/etc/raftmq/node.toml:ro"))
            .unwrap_or_else(|| panic!("{name}: no config file mounted: {volumes:?}"));
        let config = dir.join(config);
        assert!(config.exists(), "{name}: {} is missing", config.display());
        let data = volumes
            .iter()
            .find_map(|v| v.strip_suffix(":/data"))
            .unwrap_or_else(|| panic!("{name}: no data volume"));
        assert!(
            doc["volumes"][data].is_null() || doc["volumes"][data].as_hash().is_some(),
            "{name}: {data} is not a named volume"
        );
        assert!(doc["volumes"].as_hash().unwrap().contains_key(&key(data)), "{name}: {data} is not declared");

        // The config passes `raftmq node --check` (its host names mapped: they resolve only in
        // the compose network) and is the node it claims to be.
        let out = std::process::Command::new(node_bin())
            .args(["node", "--check", "--config"])
            .arg(&config)
            .env("RAFTMQ_HOST_MAP", HOST_MAP)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", config.display(), String::from_utf8_lossy(&out.stderr));
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(printed.contains(&format!("node_id: {n},")), "{printed}");
        assert!(printed.contains(":9876"), "{name}: serves Remoting on 9876: {printed}");
    }
    let jaeger = service(doc, "jaeger");
    let ports = strings(jaeger.get(&key("ports")));
    assert!(
        ports.iter().any(|p| p.ends_with(":16686")) && ports.iter().any(|p| p.ends_with(":4317")),
        "{ports:?}"
    );
    let prometheus = service(doc, "prometheus");
    let mounted = strings(prometheus.get(&key("volumes")));
    let file = mounted.iter().find_map(|v| v.split(':').next()).unwrap();
    let scrape = std::fs::read_to_string(dir.join(file)).unwrap();
    for n in 1..=3 {
        assert!(scrape.contains(&format!("node{n}:8080")), "prometheus does not scrape node{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_configs_run_as_a_local_cluster_on_loopback_aliases() {
    let data = tempfile::tempdir().unwrap();
    let mut cluster = tokio::process::Command::new(node_bin())
        .args(["cluster", "--config-dir"])
        .arg(deploy_dir())
        .args(["--host-map", HOST_MAP, "--data-dir"])
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let led = raftmq_tests::eventually(
        Duration::from_secs(60),
        "leaders of every group on 127.0.0.11-13",
        || async {
            let admin = AdminClient::connect("127.0.0.11:8080", Duration::from_secs(2)).ok()?;
            let status = admin.cluster_status().await.ok()?;
            let names: Vec<String> =
                status.groups.iter().filter(|g| g.leader.is_some()).map(|g| g.name.clone()).collect();
            // The answering node may not have applied the membership yet: wait for all three.
            (status.members.len() == 3
                && ["nameserver", "broker-a", "broker-b"].iter().all(|g| names.iter().any(|n| n == g)))
            .then_some(status)
        },
    )
    .await
    .unwrap();
    let addrs: Vec<String> = led.members.iter().map(|n| n.client_addr.clone()).collect();
    for n in 1..=3 {
        assert!(addrs.contains(&format!("127.0.0.1{n}:8080")), "{addrs:?}");
    }
    // SIGTERM stops every node cleanly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(cluster.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), cluster.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}
