//! The Remoting port at the frame level, with a real node: routes, a 4.x send received by a
//! 5.x (gRPC) consumer and a 5.x send pulled over 4.x, unknown codes, missing header fields,
//! and hostile frames (2 GiB lengths, truncated frames, headers that are not JSON), after each
//! of which the node keeps serving and nothing stored is lost.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Buf;
use futures::SinkExt;
use futures::StreamExt;
use raftmq_client::Message;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::SimpleConsumer;
use raftmq_client::SimpleConsumerOptions;
use raftmq_client::Subscription;
use raftmq_node::remoting::codec::Command;
use raftmq_node::remoting::codec::RemotingCodec;
use raftmq_node::remoting::message::write_properties;
use raftmq_tests::TestCluster;
use raftmq_tests::cluster_with_topic;
use raftmq_tests::create_groups;
use raftmq_tests::endpoints;
use raftmq_tests::receive_n;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::node_bin;

type Conn = Framed<TcpStream, RemotingCodec>;

async fn connect(c: &TestCluster, node: u64) -> Conn {
    let addr = c.cluster.node(node).remoting_addr.clone();
    Framed::new(TcpStream::connect(&addr).await.expect("connect to the remoting port"), RemotingCodec)
}

/// Sends `req` and waits for its answer.
async fn call(conn: &mut Conn, req: Command) -> Command {
    let opaque = req.opaque;
    conn.send(req).await.expect("send");
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let c = conn.next().await.expect("connection open").expect("a frame");
            if c.is_response() && c.opaque == opaque {
                return c;
            }
        }
    })
    .await
    .expect("an answer within 30 s")
}

/// The route of `topic` as JSON, asked of node `node`.
async fn route(c: &TestCluster, node: u64, topic: &str) -> Command {
    let mut conn = connect(c, node).await;
    call(&mut conn, Command::request(105, 1).with("topic", topic)).await
}

/// The broker name and leader address of the broker holding `topic` (the first one listed).
fn first_broker(route: &serde_json::Value) -> (String, String) {
    let b = &route["brokerDatas"][0];
    (b["brokerName"].as_str().unwrap().to_string(), b["brokerAddrs"]["0"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_sends_and_pulls_cross_both_protocols() {
    let c = cluster_with_topic(node_bin(), "wire-t", 4).await;
    create_groups(&c, &["wire-g5", "wire-g4"]).await;
    // Routes: every broker group of the topic, its leader at id 0, the same answer on every node.
    let r = route(&c, 2, "wire-t").await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let queues: usize = json["queueDatas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["readQueueNums"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(queues, 4);
    assert_eq!(json["brokerDatas"].as_array().unwrap().len(), 2);
    assert!(json["filterServerTable"].is_object());
    let missing = route(&c, 1, "no-such-topic").await;
    assert_eq!(missing.code, 17, "TOPIC_NOT_EXIST");

    // A 4.x send to queue 0 of the first broker: the node it reaches serves or forwards it.
    let (broker, leader_addr) = first_broker(&json);
    let props = write_properties([
        ("UNIQ_KEY", "AB12CD34EF56AB12CD34EF56AB12CD34"),
        ("TAGS", "t4"),
        ("color", "red"),
    ]);
    let send = Command::request(310, 2)
        .with("a", "wire-p")
        .with("b", "wire-t")
        .with("c", "TBW102")
        .with("d", 4)
        .with("e", 0)
        .with("f", 0)
        .with("g", 1_700_000_000_000_i64)
        .with("h", 0)
        .with("i", &props)
        .with("j", 0)
        .with("k", false)
        .with("n", &broker)
        .with_body(&b"from 4.x"[..]);
    for node in 1..=3 {
        let mut s = send.clone();
        s.opaque = 10 + node as i32;
        let mut conn = connect(&c, node).await;
        let r = call(&mut conn, s).await;
        assert_eq!(r.code, 0, "send through node {node}: {:?}", r.remark);
        assert_eq!(r.ext.get("queueId").map(String::as_str), Some("0"));
        assert_eq!(r.ext["msgId"].len(), 32, "an offset message id: {:?}", r.ext);
    }
    // Received over gRPC with the same id, tag and property.
    let mut o = SimpleConsumerOptions::new(endpoints(&c), "wire-g5");
    o.await_duration = Duration::from_millis(500);
    let s = SimpleConsumer::new(o).unwrap();
    s.subscribe("wire-t", Subscription::All);
    let got = receive_n(&s, 3, Duration::from_secs(30), Duration::from_secs(30)).await;
    assert_eq!(got.len(), 3);
    for g in &got {
        assert_eq!(g.message.message_id, "AB12CD34EF56AB12CD34EF56AB12CD34");
        assert_eq!(g.message.tag.as_deref(), Some("t4"));
        assert_eq!(g.message.body.as_ref(), b"from 4.x");
        assert_eq!(g.message.properties.get("color").map(String::as_str), Some("red"));
        assert!(!g.message.properties.contains_key("UNIQ_KEY"), "4.x system properties stay hidden");
    }

    // A 5.x send, pulled over 4.x from the leader, in the 4.x stored layout.
    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();
    let mut sent = BTreeSet::new();
    for i in 0..8 {
        sent.insert(
            producer
                .send(Message::new("wire-t", format!("from 5.x {i}")).with_tag("t5"))
                .await
                .unwrap()
                .message_id,
        );
    }
    let mut conn = Framed::new(TcpStream::connect(&leader_addr).await.unwrap(), RemotingCodec);
    let hb = serde_json::json!({
        "clientID": "wire-client",
        "producerDataSet": [],
        "consumerDataSet": [{"groupName": "wire-g4", "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_FIRST_OFFSET",
            "subscriptionDataSet": [{"topic": "wire-t", "subString": "t5", "expressionType": "TAG", "tagsSet": ["t5"]}]}]
    });
    let r = call(&mut conn, Command::request(34, 30).with_body(serde_json::to_vec(&hb).unwrap())).await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let pull = |opaque: i32, offset: u64| {
        Command::request(11, opaque)
            .with("consumerGroup", "wire-g4")
            .with("topic", "wire-t")
            .with("queueId", 0)
            .with("queueOffset", offset)
            .with("maxMsgNums", 32)
            .with("sysFlag", 0)
            .with("commitOffset", 0)
            .with("suspendTimeoutMillis", 1000)
            .with("subVersion", 0)
            .with("bname", &broker)
    };
    let r = call(&mut conn, pull(31, 0)).await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_eq!(r.ext["suggestWhichBrokerId"], "0");
    let mut body = r.body.clone();
    let mut pulled = 0;
    while body.has_remaining() {
        let total = body.get_i32() as usize;
        assert_eq!(body.get_i32(), 0xDAA3_20A7_u32 as i32, "4.x magic");
        body.advance(total - 8);
        pulled += 1;
    }
    // Queue 0 of this broker got the three 4.x sends (tag t4, filtered out) and some 5.x ones.
    assert!(pulled >= 1, "the tag filter of the heartbeat passes t5 messages");
    let next: u64 = r.ext["nextBeginOffset"].parse().unwrap();
    assert!(next >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_answer_or_a_closed_connection() {
    let c = cluster_with_topic(node_bin(), "wire-bad", 2).await;
    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();
    let before = producer.send(Message::new("wire-bad", "kept")).await.unwrap().message_id;

    // An unknown code: REQUEST_CODE_NOT_SUPPORTED, naming it.
    let mut conn = connect(&c, 1).await;
    let r = call(&mut conn, Command::request(9999, 1)).await;
    assert_eq!(r.code, 3);
    assert!(r.remark.as_deref().unwrap_or("").contains("9999"), "{:?}", r.remark);
    // A pull without its topic: an error that names the field.
    let r = call(&mut conn, Command::request(11, 2).with("consumerGroup", "g")).await;
    assert_ne!(r.code, 0);
    assert!(r.remark.as_deref().unwrap_or("").contains("topic"), "{:?}", r.remark);
    // A heartbeat whose body is not JSON.
    let r = call(&mut conn, Command::request(34, 3).with_body(&b"{not json"[..])).await;
    assert_ne!(r.code, 0);

    // Hostile frames: each closes its connection.
    let hostile: Vec<Vec<u8>> = vec![
        0x7fff_ffffu32.to_be_bytes().to_vec(), // a 2 GiB frame
        [&20u32.to_be_bytes()[..], &8u32.to_be_bytes()[..], b"notjson!", &[0u8; 8][..]].concat(), // header not JSON
        [&100u32.to_be_bytes()[..], &4u32.to_be_bytes()[..]].concat(), // truncated, then EOF
        [&8u32.to_be_bytes()[..], &0x00ff_ffffu32.to_be_bytes()[..], &[0u8; 4][..]].concat(), // header longer than the frame
    ];
    for bytes in hostile {
        let addr = c.cluster.node(2).remoting_addr.clone();
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        // Nothing more comes: a frame still short of its length is truncated for good.
        s.shutdown().await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "the node closes the connection: {n:?}");
    }
    // The node still serves, and what was stored is still there.
    let r = route(&c, 2, "wire-bad").await;
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let mut o = SimpleConsumerOptions::new(endpoints(&c), "wire-bad-g");
    o.await_duration = Duration::from_millis(500);
    let s = SimpleConsumer::new(o).unwrap();
    s.subscribe("wire-bad", Subscription::All);
    let got = receive_n(&s, 1, Duration::from_secs(30), Duration::from_secs(30)).await;
    assert_eq!(got.first().map(|g| g.message.message_id.clone()), Some(before));
}

/// `raftmq admin client list` shows the 4.x clients connected anywhere in the cluster, merged by
/// client id over the nodes they heartbeat; `/metrics` counts Remoting requests by code and gRPC
/// requests by method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lists_remoting_clients_and_metrics_count_requests_per_protocol() {
    let c = cluster_with_topic(node_bin(), "wire-admin", 2).await;
    // A 5.x send, so the gRPC side has a SendMessage to count.
    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();
    producer.send(Message::new("wire-admin", b"x".to_vec())).await.unwrap();

    // A producer heartbeats node 1; a consumer heartbeats nodes 1 and 2 (as 4.x consumers beat
    // every broker), each connection kept open.
    let beat = |client: &str, producers: &[&str], consumers: &[&str]| {
        let hb = serde_json::json!({
            "clientID": client,
            "producerDataSet": producers.iter().map(|g| serde_json::json!({"groupName": g})).collect::<Vec<_>>(),
            "consumerDataSet": consumers.iter().map(|g| serde_json::json!({"groupName": g,
                "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING",
                "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
                "subscriptionDataSet": [{"topic": "wire-admin", "subString": "*", "expressionType": "TAG"}]}))
                .collect::<Vec<_>>(),
        });
        Command::request(34, 7).with_body(serde_json::to_vec(&hb).unwrap())
    };
    let mut p1 = connect(&c, 1).await;
    assert_eq!(call(&mut p1, beat("10.0.0.1@prod", &["wire-pg"], &[])).await.code, 0);
    let (mut c1, mut c2) = (connect(&c, 1).await, connect(&c, 2).await);
    for conn in [&mut c1, &mut c2] {
        assert_eq!(call(conn, beat("10.0.0.2@cons", &[], &["wire-cg"])).await.code, 0);
    }

    let server = c.cluster.node(3).client_addr.clone();
    let out = tokio::process::Command::new(node_bin())
        .args(["admin", "--server", &server, "--json", "client", "list"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_id = |id: &str| {
        listed.as_array().and_then(|a| a.iter().find(|c| c["client_id"] == id)).cloned().unwrap_or_else(
            || {
                panic!("client {id} not listed: {listed}");
            },
        )
    };
    let prod = by_id("10.0.0.1@prod");
    assert_eq!(prod["protocol"], "remoting");
    assert_eq!(prod["producer_groups"], serde_json::json!(["wire-pg"]));
    assert_eq!(prod["nodes"], serde_json::json!([1]));
    let cons = by_id("10.0.0.2@cons");
    assert_eq!(
        cons["consumer_groups"],
        serde_json::json!(["wire-cg:CLUSTERING"]),
        "the group and its message model"
    );
    assert_eq!(cons["nodes"], serde_json::json!([1, 2]), "merged over the nodes it heartbeats");

    // Once its connection closes, a client is gone from the list.
    drop(p1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = tokio::process::Command::new(node_bin())
            .args(["admin", "--server", &server, "--json", "client", "list"])
            .output()
            .await
            .unwrap();
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids: Vec<_> = listed.as_array().unwrap().iter().map(|c| c["client_id"].clone()).collect();
        if !ids.contains(&serde_json::json!("10.0.0.1@prod")) {
            assert!(ids.contains(&serde_json::json!("10.0.0.2@cons")), "{listed}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a closed client is still listed: {listed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Node 1 (index 0) served two heartbeats (code 34); some node served the 5.x send.
    let page = raftmq_tests::metrics(&c, 0).await;
    let sample = |page: &str, labels: &str| -> u64 {
        page.lines()
            .find(|l| l.starts_with("raftmq_requests_total{") && l.contains(labels))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(sample(&page, r#"protocol="remoting",code="34""#) >= 2, "{page}");
    let mut sends = 0;
    for index in 0..3 {
        sends += sample(&raftmq_tests::metrics(&c, index).await, r#"protocol="grpc",code="SendMessage""#);
    }
    assert!(sends >= 1, "the 5.x send is counted by method");
}
