//! Traces: one message's life is one trace. An OTLP/gRPC receiver runs in this test; the nodes
//! export to it (`[log] otlp_endpoint`) and so does this process, as the client. A send to a
//! node that leads no broker group must show up as one connected trace: the client's `send`, the
//! first node's `SendMessage` and `forward`, the leader's `SendMessage` and `commitlog.append`,
//! and the consumer's `deliver`, each span's parent being the one before it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_client::proto::rocketmq as pb;
use raftmq_client::trace;
use raftmq_node::telemetry::Export;
use raftmq_tests::cluster_with_topic_tuned;
use raftmq_tests::create_groups;
use raftmq_tests::endpoints;
use raftmq_tests::eventually;
use raftmq_tests::idle_node;
use tracing_subscriber::layer::SubscriberExt;

use crate::node_bin;

/// One received span.
#[derive(Debug, Clone)]
struct Got {
    instance: String,
    name: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Got>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            let attr = |k: &str| {
                rs.resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == k))
                    .map(|a| format!("{:?}", a.value))
            };
            let instance = attr("service.instance.id").unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push(Got {
                        instance: instance.clone(),
                        name: s.name,
                        trace: s.trace_id,
                        id: s.span_id,
                        parent: s.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test]
async fn one_send_is_one_connected_trace_across_client_and_nodes() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(receiver.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);

    let otlp = endpoint.clone();
    let mut c = cluster_with_topic_tuned(node_bin(), "traced", 4, &move |raw| {
        raw.log.otlp_endpoint = Some(otlp.clone());
    })
    .await;
    create_groups(&c, &["traced-readers"]).await;

    // This process is the client: its spans go to the same receiver.
    let provider = raftmq_node::telemetry::provider(&Export {
        endpoint,
        service_name: "raftmq-test-client".into(),
        instance: "client".into(),
    })
    .unwrap();
    let subscriber =
        tracing_subscriber::registry().with(raftmq_node::telemetry::trace_layer(&provider, "test"));
    let _guard = tracing::subscriber::set_default(subscriber);

    // Send through the node that leads no broker group, as an official client with an old route
    // would: it must forward to the leader.
    let idle = idle_node(&mut c).await;
    let send = tracing::info_span!(target: trace::TARGET, "send", otel.kind = "producer");
    let tp = trace::traceparent(&send).expect("the client span is recorded");
    let mut raw = pb::messaging_service_client::MessagingServiceClient::connect(format!(
        "http://{}",
        c.cluster.node(idle).client_addr
    ))
    .await
    .unwrap();
    let msg = pb::Message {
        topic: Some(pb::Resource { resource_namespace: String::new(), name: "traced".into() }),
        system_properties: Some(pb::SystemProperties {
            message_id: raftmq_client::message::new_message_id(),
            trace_context: Some(tp.clone()),
            ..Default::default()
        }),
        body: bytes::Bytes::from_static(b"follow me"),
        ..Default::default()
    };
    let mut req = tonic::Request::new(pb::SendMessageRequest { messages: vec![msg] });
    req.metadata_mut().insert("x-mq-client-id", tonic::metadata::MetadataValue::from_static("trace-test"));
    req.metadata_mut().insert(trace::TRACEPARENT, tp.parse().unwrap());
    let r = raw.send_message(req).await.unwrap().into_inner();
    assert_eq!(r.status.as_ref().unwrap().code, pb::Code::Ok as i32, "{r:?}");
    drop(send);

    // Consume it: the delivery joins the trace.
    let consumer = PullConsumer::new(PullConsumerOptions::new(endpoints(&c), "traced-readers")).unwrap();
    let mut found = false;
    for q in 0..4 {
        let p = consumer.pull("traced", q, 0, 10, Duration::ZERO).await.unwrap();
        if let Some(m) = p.messages.first() {
            assert_eq!(m.trace_context.as_deref(), Some(tp.as_str()));
            found = true;
        }
    }
    assert!(found, "the message was not found in any queue");
    // The flush waits on the export, which needs this (single-threaded) runtime to run.
    let flushing = provider.clone();
    tokio::task::spawn_blocking(move || flushing.force_flush()).await.unwrap().unwrap();

    let trace_id = trace::parse(&tp).unwrap().trace_id().to_bytes().to_vec();
    let spans = eventually(Duration::from_secs(20), "the nodes' spans arrive", || {
        let spans = receiver.spans.lock().unwrap().clone();
        let mine: Vec<Got> = spans.into_iter().filter(|s| s.trace == trace_id).collect();
        let names: Vec<&str> = mine.iter().map(|s| s.name.as_str()).collect();
        let complete = ["send", "forward", "commitlog.append", "deliver"].iter().all(|n| names.contains(n))
            && names.iter().filter(|n| **n == "SendMessage").count() == 2;
        async move { complete.then_some(mine) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: got {:#?}", receiver.spans.lock().unwrap()));

    // Connected: every span but the root has its parent in the trace; the chain goes client ->
    // first node -> leader.
    let by_id: HashMap<&[u8], &Got> = spans.iter().map(|s| (s.id.as_slice(), s)).collect();
    let root = spans.iter().find(|s| s.name == "send").unwrap();
    assert!(root.parent.is_empty(), "the client's send is the root");
    for s in &spans {
        if s.id != root.id {
            assert!(by_id.contains_key(s.parent.as_slice()), "{} has no parent in the trace", s.name);
        }
    }
    let parent = |s: &Got| by_id[s.parent.as_slice()].clone();
    let append = spans.iter().find(|s| s.name == "commitlog.append").unwrap();
    let leader_send = parent(append);
    let forward = parent(&leader_send);
    let first_send = parent(&forward);
    assert_eq!((leader_send.name.as_str(), forward.name.as_str()), ("SendMessage", "forward"));
    assert_eq!(first_send.name, "SendMessage");
    assert_eq!(parent(&first_send).id, root.id);
    let deliver = spans.iter().find(|s| s.name == "deliver").unwrap();
    assert_eq!(deliver.parent, root.id);
    // Spans from the client and from two different nodes.
    let nodes: std::collections::BTreeSet<&str> =
        [&first_send, &leader_send, append].iter().map(|s| s.instance.as_str()).collect();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(first_send.instance.contains(&format!("node-{idle}")), "{first_send:?}");
    assert!(root.instance.contains("client"), "{root:?}");
    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
}
