use super::*;

const FULL: &str = r#"
node_id = 2
data_dir = "/tmp/x"
raft_addr = "127.0.0.1:7082"
client_addr = "127.0.0.1:8082"
broker_groups = 3

[[initial_members]]
id = 1
raft_addr = "127.0.0.1:7081"
client_addr = "127.0.0.1:8081"

[[initial_members]]
id = 2
raft_addr = "127.0.0.1:7082"
client_addr = "127.0.0.1:8082"

[raft]
heartbeat_ms = 300
election_min_ms = 1500
election_max_ms = 3000
"#;

#[test]
fn full_file_parses() {
    let c = RawConfig::from_toml(FULL).unwrap().validate().unwrap();
    assert_eq!(c.node_id, 2);
    assert_eq!(c.broker_groups, 3);
    assert_eq!(c.initial_members.len(), 2);
    assert_eq!(c.raft.heartbeat, Duration::from_millis(300));
    assert_eq!(c.client_advertise, "127.0.0.1:8082");
}

#[test]
fn defaults_follow_the_node_id() {
    let c = RawConfig::from_toml("node_id = 3").unwrap().validate().unwrap();
    assert_eq!(c.raft_listen.to_string(), "127.0.0.1:7083");
    assert_eq!(c.client_listen.to_string(), "127.0.0.1:8083");
    assert_eq!(c.data_dir, PathBuf::from("./data/node-3"));
    assert_eq!(c.initial_members, default_members(3));
    assert_eq!(c.broker_groups, 2);
}

#[test]
fn env_overrides_the_file() {
    let mut raw = RawConfig::from_toml(FULL).unwrap();
    raw.apply_env(|k| match k {
        "RAFTMQ_CLIENT_ADDR" => Some("127.0.0.1:9999".into()),
        "RAFTMQ_NODE_ID" => Some("1".into()),
        _ => None,
    })
    .unwrap();
    let c = raw.validate().unwrap();
    assert_eq!(c.node_id, 1);
    assert_eq!(c.client_listen.to_string(), "127.0.0.1:9999");
    let mut raw = RawConfig::from_toml(FULL).unwrap();
    let e = raw.apply_env(|k| (k == "RAFTMQ_NODE_ID").then(|| "x".into())).unwrap_err();
    assert!(e.contains("RAFTMQ_NODE_ID"), "{e}");
}

#[test]
fn bad_configs_say_what_to_fix() {
    let cases = [
        ("", "node_id is missing"),
        ("node_id = 0", "node_id must be 1 or more"),
        ("node_id = 1\nbroker_groups = 0", "broker_groups must be 1-64"),
        ("node_id = 1\nclient_addr = \"nope\"", "client_addr \"nope\" is not a host:port"),
        ("node_id = 1\nclient_addr = \"127.0.0.1:7081\"", "internal RPCs need their own port"),
        (
            "node_id = 1\n[raft]\nheartbeat_ms = 900\nelection_min_ms = 1000\nelection_max_ms = 2000",
            "at least twice",
        ),
        ("node_id = 1\n[raft]\nelection_min_ms = 2000\nelection_max_ms = 1000", "must be above the minimum"),
        (
            "node_id = 1\n[[initial_members]]\nid=1\nraft_addr=\"127.0.0.1:1\"\nclient_addr=\"127.0.0.1:2\"\n[[initial_members]]\nid=1\nraft_addr=\"127.0.0.1:3\"\nclient_addr=\"127.0.0.1:4\"",
            "listed twice",
        ),
    ];
    for (text, want) in cases {
        let e = RawConfig::from_toml(text).and_then(RawConfig::validate).unwrap_err();
        assert!(e.contains(want), "{text:?}: {e}");
    }
    let e = RawConfig::from_toml("node_id = 1\nnode_idd = 2").unwrap_err();
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn host_map_rewrites_every_address_and_nothing_else() {
    let text = "node_id = 2\nraft_addr = \"node2:7080\"\nclient_addr = \"node2:8080\"\n\
                advertise_client_addr = \"node2:8080\"\n\
                [[initial_members]]\nid = 1\nraft_addr = \"node1:7080\"\nclient_addr = \"node1:8080\"\n\
                [[initial_members]]\nid = 2\nraft_addr = \"node2:7080\"\nclient_addr = \"node2:8080\"\n\
                [[initial_members]]\nid = 3\nraft_addr = \"other:7080\"\nclient_addr = \"node3:8080\"\n";
    let mut raw = RawConfig::from_toml(text).unwrap();
    raw.apply_env(|k| {
        (k == "RAFTMQ_HOST_MAP").then(|| "node1=127.0.0.11, node2=127.0.0.12,node3=127.0.0.13".into())
    })
    .unwrap();
    assert_eq!(raw.raft_addr.as_deref(), Some("127.0.0.12:7080"));
    assert_eq!(raw.advertise_client_addr.as_deref(), Some("127.0.0.12:8080"));
    assert_eq!(raw.initial_members[0].raft_addr, "127.0.0.11:7080");
    assert_eq!(raw.initial_members[2].raft_addr, "other:7080", "unmapped hosts stay");
    assert_eq!(raw.initial_members[2].client_addr, "127.0.0.13:8080");
    assert_eq!(raw.node_id, Some(2));
    let e = parse_host_map("node1").unwrap_err();
    assert!(e.contains("node1=127.0.0.11"), "{e}");
}
