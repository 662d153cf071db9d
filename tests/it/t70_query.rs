//! Query through `raftmq admin message`: by id, by key and by store time, with each consumer
//! group's state (consumed, in flight with its attempt, not consumed); bad lookups refused.

use std::time::Duration;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use raftmq_client::Message;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::SimpleConsumer;
use raftmq_client::SimpleConsumerOptions;
use raftmq_client::Subscription;
use raftmq_tests::cluster_with_topic;
use raftmq_tests::create_groups;
use raftmq_tests::endpoints;
use raftmq_tests::receive_n;
use serde_json::Value;

use crate::node_bin;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_found_by_id_key_and_time_with_their_consumption() {
    let c = cluster_with_topic(node_bin(), "q", 2).await;
    create_groups(&c, &["g-q"]).await;
    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();
    let before = now_ms();
    let mut ids = Vec::new();
    for i in 0..4 {
        let m = Message::new("q", format!("body-{i}"))
            .with_key(format!("order-{}", i % 2))
            .with_property("n", i.to_string());
        ids.push(producer.send(m).await.unwrap().message_id);
    }
    let after = now_ms() + 1;

    // One message in flight (not acked), the others acked.
    let mut o = SimpleConsumerOptions::new(endpoints(&c), "g-q");
    o.await_duration = Duration::from_millis(300);
    let s = SimpleConsumer::new(o).unwrap();
    s.subscribe("q", Subscription::All);
    let got = receive_n(&s, 4, Duration::from_secs(60), Duration::from_secs(20)).await;
    assert_eq!(got.len(), 4);
    let inflight = got.iter().find(|r| r.message.message_id == ids[0]).unwrap().clone();
    for r in got.iter().filter(|r| r.message.message_id != ids[0]) {
        s.ack(r).await.unwrap();
    }

    let server = c.cluster.node(2).client_addr.clone();
    let cli = |args: &[&str]| {
        std::process::Command::new(node_bin())
            .args(["admin", "--server", &server, "--json", "message"])
            .args(args)
            .output()
            .unwrap()
    };
    let json = |args: &[&str]| {
        let out = cli(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
    };
    let state = |m: &Value| {
        let c = m["consumption"].as_array().unwrap();
        let g = c.iter().find(|c| c["group"] == "g-q").unwrap_or_else(|| panic!("no g-q in {m}"));
        (g["state"].as_str().unwrap().to_string(), g["attempt"].as_u64().unwrap())
    };

    // By id: the one in flight, attempt 1; an acked one consumed.
    let m = json(&["get", "--topic", "q", "--id", &ids[0]]);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["body_preview"], "body-0");
    assert_eq!(m[0]["properties"]["n"], "0");
    assert_eq!(state(&m[0]), ("IN_FLIGHT".into(), 1));
    let m = json(&["get", "--topic", "q", "--id", &ids[1]]);
    assert_eq!(state(&m[0]), ("CONSUMED".into(), 0));
    s.ack(&inflight).await.unwrap();

    // By key: two of four.
    let m = json(&["find", "--topic", "q", "--key", "order-1"]);
    let mut found: Vec<String> = m.iter().map(|m| m["message_id"].as_str().unwrap().to_string()).collect();
    found.sort();
    let mut want = vec![ids[1].clone(), ids[3].clone()];
    want.sort();
    assert_eq!(found, want);

    // By time: all four inside, none before.
    let m = json(&["find", "--topic", "q", "--from", &before.to_string(), "--to", &after.to_string()]);
    assert_eq!(m.len(), 4);
    assert!(json(&["find", "--topic", "q", "--from", "0", "--to", &(before - 1).to_string()]).is_empty());
    let m = json(&["find", "--topic", "q", "--from", "1h", "--to", "now"]);
    assert_eq!(m.len(), 4);

    // Bad lookups: a clear error, no panic.
    for args in [
        &["find", "--topic", "q"][..],
        &["find", "--topic", "q", "--from", "yesterday", "--to", "now"],
        &["get", "--topic", "nope", "--id", "x"],
    ] {
        let out = cli(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.len() > 10, "{args:?}: {err}");
    }
}

/// `raftmq admin group lag` and `/metrics`: a receive/ack group with one message in flight and a
/// pull group that committed part of a queue show their lag per queue; every stored and
/// delivered message shows in the per-queue traffic counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_lag_and_queue_traffic_are_reported() {
    use raftmq_client::PullConsumer;
    use raftmq_client::PullConsumerOptions;
    use raftmq_tests::metric_sum;
    use raftmq_tests::metrics;

    let c = cluster_with_topic(node_bin(), "lag", 2).await;
    create_groups(&c, &["g-ack", "g-pull"]).await;
    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();
    let mut body_bytes = 0;
    for i in 0..6 {
        let body = format!("lag-body-{i}");
        body_bytes += body.len();
        producer.send(Message::new("lag", body)).await.unwrap();
    }
    // g-ack: receives everything, acks all but one.
    let mut o = SimpleConsumerOptions::new(endpoints(&c), "g-ack");
    o.await_duration = Duration::from_millis(300);
    let s = SimpleConsumer::new(o).unwrap();
    s.subscribe("lag", Subscription::All);
    let got = receive_n(&s, 6, Duration::from_secs(60), Duration::from_secs(20)).await;
    assert_eq!(got.len(), 6);
    for r in &got[1..] {
        s.ack(r).await.unwrap();
    }
    // g-pull: commits offset 1 of queue 0 only.
    let pull = PullConsumer::new(PullConsumerOptions::new(endpoints(&c), "g-pull")).unwrap();
    pull.commit("lag", 0, 1).await.unwrap();
    let end0 = pull.query_offset("lag", 0, raftmq_client::OffsetPolicy::End).await.unwrap();

    let server = c.cluster.node(3).client_addr.clone();
    let lag = |group: &str| {
        std::process::Command::new(node_bin())
            .args(["admin", "--server", &server, "--json", "group", "lag", group])
            .output()
            .unwrap()
    };
    // Followers apply a moment after the leader answers: wait for the node's replicas.
    // Its rows: the two queues of `lag` and those of its retry topic.
    let want_ack = |v: &Value| {
        v["total_lag"] == 1
            && v["queues"].as_array().is_some_and(|q| q.iter().filter(|q| q["topic"] == "lag").count() == 2)
    };
    let mut ack_view = Value::Null;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !want_ack(&ack_view) && std::time::Instant::now() < deadline {
        let out = lag("g-ack");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        ack_view = serde_json::from_slice(&out.stdout).unwrap();
        if !want_ack(&ack_view) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(want_ack(&ack_view), "g-ack: one message in flight: {ack_view}");
    let inflight: u64 =
        ack_view["queues"].as_array().unwrap().iter().map(|q| q["inflight"].as_u64().unwrap()).sum();
    assert_eq!(inflight, 1, "{ack_view}");

    let out = lag("g-pull");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let q = v["queues"].as_array().unwrap();
    assert_eq!(q.len(), 1, "g-pull consumed one queue: {v}");
    assert_eq!((q[0]["topic"].as_str(), q[0]["queue"].as_u64()), (Some("lag"), Some(0)));
    assert_eq!(q[0]["consumed_offset"], 1);
    assert_eq!(q[0]["lag"].as_u64(), Some(end0 - 1), "{v}");

    // The table form and a clear refusal of a group that does not exist.
    let out = std::process::Command::new(node_bin())
        .args(["admin", "--server", &server, "group", "lag", "g-ack"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("total lag: 1") && table.contains("INFLIGHT"), "{table}");
    let out = lag("g-nobody");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("g-nobody") && !err.contains("panicked"), "{err}");

    // Traffic: six messages and their body bytes stored (counted once, by the leaders), and at
    // least six handed out.
    let (mut put, mut put_bytes, mut get, mut lag_metric) = (0.0, 0.0, 0.0, 0.0);
    for n in 0..3 {
        let page = metrics(&c, n).await;
        put += metric_sum(&page, "raftmq_queue_put_messages_total", &["topic=\"lag\""]);
        put_bytes += metric_sum(&page, "raftmq_queue_put_bytes_total", &["topic=\"lag\""]);
        get += metric_sum(&page, "raftmq_queue_get_messages_total", &["topic=\"lag\""]);
        // Reported by the leader of each queue's group only.
        lag_metric += metric_sum(&page, "raftmq_consumer_lag", &["consumer_group=\"g-pull\""]);
    }
    assert_eq!(lag_metric, (end0 - 1) as f64);
    assert_eq!(put, 6.0);
    assert_eq!(put_bytes, body_bytes as f64);
    assert!(get >= 6.0, "{get}");
}
