//! The pure-Rust RocketMQ 4.x client (crates.io `rocketmq-client-rust`) against raftmq's Remoting
//! port, one scenario per run. Prints `ok <scenario>: <details>` and exits 0, or prints
//! `FAIL <scenario>: <why>` and exits 1 (2 on bad usage). Each run ends within ~90 s: every wait
//! polls its condition until one deadline, set at the start.
//!
//! ```text
//! raftmq-compat-rust SCENARIO NAMESRV TOPIC GROUP [N]   NAMESRV = host:port;host:port;...  N = 10
//!
//! send         sync, async, oneway and batch sends of N messages each (tag TagA); a push
//!              consumer (clustering, GROUP, from the first offset, "TagA") gets every message a
//!              sync, async or batch send acknowledged, and at least one oneway message
//! tags         N messages alternating TagA/TagB; a push consumer of "TagA" gets every TagA, no TagB
//! sql          N messages with user property a = i; a push consumer of SQL92 `a >= 5` gets
//!              exactly those with i >= 5 (N is raised to 10 when smaller)
//! broadcast    two push consumers of GROUP in BROADCASTING mode both get all N
//! orderly      N messages in 4 key groups, each key's messages to one queue (hash selector); an
//!              orderly push consumer gets them all, in send order per key
//! litepull     a lite pull consumer (subscribe mode) polls all N
//! transaction  half messages commit-now, rollback-now, commit-on-check, rollback-on-check; the
//!              consumer gets exactly commit-now and commit-on-check, the check-back resolves the
//!              two *-on-check ones
//! delay        a message of delay level 2 (5 s) is consumed no sooner than 4.5 s after its send
//! retry        a push consumer (max reconsume times 2) fails every delivery of one message: it
//!              sees reconsume times 0, 1, 2, then the message is in %DLQ%GROUP (read by a lite
//!              pull consumer of GROUP-dlq assigned to its queues) and not delivered again
//! bench        throughput of one producer with N sends in flight, 1 KiB each (bench.rs); not
//!              a test: used for BENCHMARKS.md
//! v5-create-send-consume
//!              the official 5.x Rust client (crate `rocketmq`, gRPC): NAMESRV is then a gRPC
//!              access point; N sends, then a simple consumer of GROUP (created by the caller
//!              beforehand) receives and acks all of them (v5.rs)
//! ```
//!
//! Every message carries the user property `run` (unique per run), and only messages of this run
//! count, so a topic or group reused across runs does not confuse a scenario.
//!
//! Known client limit: rocketmq-client-rust 1.0.0 requires `enableActingMaster` in each route's
//! BrokerData (RocketMQ 5.x NameServers and raftmq send it); a route from an Apache 4.9.x
//! NameServer, which lacks it, fails to decode ("missing field `enableActingMaster`").

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use rocketmq_client_rust::ClientConfig;
use rocketmq_client_rust::ClientError;
use rocketmq_client_rust::ClientResult;
use rocketmq_client_rust::ClientRuntime;
use rocketmq_client_rust::ClientRuntimeConfig;
use rocketmq_client_rust::ConsumeConcurrentlyContext;
use rocketmq_client_rust::ConsumeConcurrentlyStatus;
use rocketmq_client_rust::ConsumeOrderlyContext;
use rocketmq_client_rust::ConsumeOrderlyStatus;
use rocketmq_client_rust::DefaultLitePullConsumer;
use rocketmq_client_rust::DefaultMQProducer;
use rocketmq_client_rust::DefaultMQPushConsumer;
use rocketmq_client_rust::LocalTransactionState;
use rocketmq_client_rust::MQPushConsumer;
use rocketmq_client_rust::MessageListenerConcurrently;
use rocketmq_client_rust::MessageQueueSelector;
use rocketmq_client_rust::MessageSelector;
use rocketmq_client_rust::SelectMessageQueueByHash;
use rocketmq_client_rust::SendResult;
use rocketmq_client_rust::SendStatus;
use rocketmq_client_rust::TelemetryHandle;
use rocketmq_client_rust::TransactionListener;
use rocketmq_client_rust::TransactionMQProducer;
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;
use rocketmq_runtime::RuntimeConfig;
use rocketmq_runtime::RuntimeOwner;
use tokio::time::Instant;

mod bench;
mod v5;

/// Time for the scenario itself; client shutdown gets at most [`SHUTDOWN`] more.
const BUDGET: Duration = Duration::from_secs(80);
const SHUTDOWN: Duration = Duration::from_secs(6);
const START_TIMEOUT: Duration = Duration::from_secs(20);
const SEND_TIMEOUT_MS: u64 = 5_000;
/// How long a negative check ("no TagB arrived") keeps watching after the positive one passed.
const SETTLE: Duration = Duration::from_millis(1_500);
const POLL: Duration = Duration::from_millis(100);

type Outcome = Result<String, String>;

struct Ctx {
    rt: Arc<ClientRuntime>,
    ns: String,
    topic: String,
    group: String,
    n: usize,
    /// Unique per run: the `run` user property of every message, part of every body.
    run: String,
    deadline: Instant,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        println!(
            "usage: raftmq-compat-rust send|tags|sql|broadcast|orderly|litepull|transaction|delay|retry|\
             bench|v5-create-send-consume NAMESRV TOPIC GROUP [N]"
        );
        std::process::exit(2);
    }
    let scenario = args[0].clone();
    let n = match args.get(4).map(|s| s.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if n > 0 => n,
        _ => {
            println!("FAIL {scenario}: N must be a positive integer, got {:?}", args[4]);
            std::process::exit(2);
        }
    };
    let owner = match RuntimeOwner::plan(RuntimeConfig {
        thread_name: "raftmq-compat".to_string(),
        ..Default::default()
    })
    .map_err(|e| e.to_string())
    .and_then(|plan| plan.build().map_err(|e| e.to_string()))
    {
        Ok(owner) => owner,
        Err(e) => {
            println!("FAIL {scenario}: cannot build the client runtime: {e}");
            std::process::exit(1);
        }
    };
    let outcome = owner.block_on(async {
        let rt = ClientRuntime::try_new(
            owner.root_context().component("compat"),
            ClientRuntimeConfig::default(),
            TelemetryHandle::noop(),
        )
        .map_err(|e| format!("cannot create the client runtime: {}", err_text(&e)))?;
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let ctx = Ctx {
            rt,
            ns: args[1].clone(),
            topic: args[2].clone(),
            group: args[3].clone(),
            n,
            run: format!("{}-{}", std::process::id(), millis),
            deadline: Instant::now() + BUDGET,
        };
        match scenario.as_str() {
            "send" => send(&ctx).await,
            "tags" => tags(&ctx).await,
            "sql" => sql(&ctx).await,
            "broadcast" => broadcast(&ctx).await,
            "orderly" => orderly(&ctx).await,
            "litepull" => litepull(&ctx).await,
            "transaction" => transaction(&ctx).await,
            "delay" => delay(&ctx).await,
            "retry" => retry(&ctx).await,
            "bench" => bench::bench(&ctx).await,
            "v5-create-send-consume" => {
                v5::create_send_consume(&ctx.ns, &ctx.topic, &ctx.group, ctx.n, &ctx.run, ctx.deadline).await
            }
            other => Err(format!("unknown scenario {other}")),
        }
    });
    let code = match outcome {
        Ok(details) => {
            println!("ok {scenario}: {details}");
            0
        }
        Err(why) => {
            println!("FAIL {scenario}: {why}");
            1
        }
    };
    let _ = std::io::stdout().flush();
    // The clients were shut down (bounded) by the scenario; leave the runtime's teardown to exit.
    std::process::exit(code);
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Polls `cond` every 100 ms until it holds (true) or `deadline` passes (false).
async fn wait_until(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Awaits a client call for at most `limit`, and never past the run's deadline.
async fn bounded<T>(
    ctx: &Ctx,
    what: &str,
    limit: Duration,
    fut: impl Future<Output = ClientResult<T>>,
) -> Result<T, String> {
    let limit = limit.min(ctx.deadline.saturating_duration_since(Instant::now()));
    if limit.is_zero() {
        return Err(format!("{what}: out of time (the run's {} s budget is spent)", BUDGET.as_secs()));
    }
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {}", err_text(&e))),
        Err(_) => Err(format!("{what}: no answer within {} ms", limit.as_millis())),
    }
}

/// A client error with its causes (its Display alone is only a catalog code and a fixed message;
/// its context fields print redacted).
fn err_text(e: &ClientError) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(&**e);
    while let Some(c) = cause {
        s.push_str(&format!("; caused by: {c}"));
        cause = c.source();
    }
    s
}

fn body_of(m: &MessageExt) -> String {
    m.body().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

fn prop<'a>(m: &'a MessageExt, key: &str) -> Option<&'a str> {
    m.properties().get(key).map(|v| v.as_str())
}

fn tag_of(m: &MessageExt) -> String {
    m.get_tags().map(|t| t.to_string()).unwrap_or_default()
}

fn is_ok(r: &SendResult) -> bool {
    matches!(r.send_status, SendStatus::SendOk)
}

fn describe(r: &SendResult) -> String {
    format!("status {:?}, msg id {:?}", r.send_status, r.msg_id)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Shows at most a few entries of a set, for messages.
fn sample<T: std::fmt::Debug>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<T> = items.into_iter().take(5).collect();
    format!("{v:?}")
}

/// A message of this run: TOPIC, `tag`, `body`, the `run` user property and `props`.
fn message(ctx: &Ctx, tag: &str, body: &str, props: &[(&str, String)]) -> Result<Message, String> {
    let mut b = Message::builder()
        .topic(ctx.topic.as_str())
        .tags(tag)
        .body_slice(body.as_bytes())
        .raw_property("run", ctx.run.as_str())
        .map_err(|e| format!("message property: {e}"))?;
    for (k, v) in props {
        b = b.raw_property(*k, v.as_str()).map_err(|e| format!("message property {k}: {e}"))?;
    }
    b.build().map_err(|e| format!("message: {e}"))
}

fn client_config(ctx: &Ctx, instance: &str) -> ClientConfig {
    let mut c = ClientConfig::default();
    c.set_namesrv_addr(ctx.ns.as_str().into());
    c.set_instance_name(instance.into());
    c
}

async fn producer(ctx: &Ctx) -> Result<DefaultMQProducer, String> {
    let mut p = DefaultMQProducer::builder(ctx.rt.clone())
        .producer_group(format!("{}-producer", ctx.group))
        .name_server_addr(ctx.ns.as_str())
        .send_msg_timeout(SEND_TIMEOUT_MS as u32)
        .build();
    bounded(ctx, "producer start", START_TIMEOUT, p.start()).await?;
    Ok(p)
}

/// A push consumer of TOPIC (from the first offset, one message per listener call), not started.
fn push_builder(ctx: &Ctx, group: &str) -> rocketmq_client_rust::DefaultMQPushConsumerBuilder {
    DefaultMQPushConsumer::builder(ctx.rt.clone())
        .consumer_group(group)
        .name_server_addr(ctx.ns.as_str())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .consume_message_batch_max_size(1)
}

enum Sub {
    Tag(&'static str),
    Sql(&'static str),
}

async fn subscribe(ctx: &Ctx, c: &mut DefaultMQPushConsumer, sub: Sub) -> Result<(), String> {
    match sub {
        Sub::Tag(expr) => c.subscribe(ctx.topic.as_str(), expr).await,
        Sub::Sql(sql) => c.subscribe_with_selector(&ctx.topic, Some(MessageSelector::by_sql(sql))).await,
    }
    .map_err(|e| format!("subscribe: {}", err_text(&e)))
}

async fn start_push<L>(
    ctx: &Ctx,
    mut c: DefaultMQPushConsumer,
    sub: Sub,
    listener: L,
) -> Result<DefaultMQPushConsumer, String>
where
    L: MessageListenerConcurrently + Send + Sync + 'static,
{
    subscribe(ctx, &mut c, sub).await?;
    c.register_message_listener_concurrently(listener);
    bounded(ctx, "push consumer start", START_TIMEOUT, c.start()).await?;
    Ok(c)
}

/// Bodies of this run's messages a listener got (first delivery of each), with their tag.
type Got = Arc<Mutex<HashMap<String, String>>>;

/// A concurrently listener that records this run's messages into `got` and acknowledges all.
fn recorder(run: &str, got: &Got) -> impl MessageListenerConcurrently + 'static {
    let run = run.to_string();
    let got = got.clone();
    move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
        for m in msgs {
            if prop(m, "run") == Some(run.as_str()) {
                lock(&got).entry(body_of(m)).or_insert_with(|| tag_of(m));
            }
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

fn missing(got: &Got, want: &BTreeSet<String>) -> Vec<String> {
    let g = lock(got);
    want.iter().filter(|b| !g.contains_key(*b)).cloned().collect()
}

async fn shutdown_push(cs: Vec<DefaultMQPushConsumer>) {
    let _ = tokio::time::timeout(SHUTDOWN, async {
        for mut c in cs {
            c.shutdown().await;
        }
    })
    .await;
}

async fn shutdown_all(p: Option<DefaultMQProducer>, cs: Vec<DefaultMQPushConsumer>) {
    if let Some(mut p) = p {
        let _ = tokio::time::timeout(Duration::from_secs(2), p.shutdown()).await;
    }
    shutdown_push(cs).await;
}

/// Sends `m` synchronously; an error or a status other than SEND_OK is an error.
async fn send_sync(ctx: &Ctx, p: &DefaultMQProducer, m: Message, what: &str) -> Result<SendResult, String> {
    match bounded(
        ctx,
        what,
        Duration::from_millis(SEND_TIMEOUT_MS + 2_000),
        p.send_with_timeout(m, SEND_TIMEOUT_MS),
    )
    .await?
    {
        Some(r) if is_ok(&r) => Ok(r),
        Some(r) => Err(format!("{what}: {}", describe(&r))),
        None => Err(format!("{what}: no send result")),
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

async fn send(ctx: &Ctx) -> Outcome {
    let got: Got = Default::default();
    let c =
        start_push(ctx, push_builder(ctx, &ctx.group).build(), Sub::Tag("TagA"), recorder(&ctx.run, &got))
            .await?;
    let p = match producer(ctx).await {
        Ok(p) => p,
        Err(e) => {
            shutdown_push(vec![c]).await;
            return Err(e);
        }
    };
    let result = send_body(ctx, &p, &got).await;
    shutdown_all(Some(p), vec![c]).await;
    result
}

async fn send_body(ctx: &Ctx, p: &DefaultMQProducer, got: &Got) -> Outcome {
    let n = ctx.n;
    let body = |kind: &str, i: usize| format!("send-{}-{kind}-{i}", ctx.run);
    let mut want = BTreeSet::new();

    // sync
    for i in 0..n {
        let b = body("sync", i);
        send_sync(ctx, p, message(ctx, "TagA", &b, &[])?, &format!("sync send {i}")).await?;
        want.insert(b);
    }

    // async: each callback records its body as acknowledged, or its error
    let acked: Arc<Mutex<Vec<String>>> = Default::default();
    let failed: Arc<Mutex<Vec<String>>> = Default::default();
    for i in 0..n {
        let b = body("async", i);
        let (acked, failed, b2) = (acked.clone(), failed.clone(), b.clone());
        let what = format!("async send {i}");
        let submission = p.send_with_callback_timeout(
            message(ctx, "TagA", &b, &[])?,
            move |r: Option<&SendResult>, e: Option<&ClientError>| match (r, e) {
                (Some(r), _) if is_ok(r) => lock(&acked).push(b2.clone()),
                (Some(r), _) => lock(&failed).push(format!("{b2}: {}", describe(r))),
                (None, Some(e)) => lock(&failed).push(format!("{b2}: {}", err_text(e))),
                (None, None) => lock(&failed).push(format!("{b2}: callback without result or error")),
            },
            SEND_TIMEOUT_MS,
        );
        bounded(ctx, &what, Duration::from_millis(SEND_TIMEOUT_MS), submission).await?;
    }
    let all_back = wait_until(ctx.deadline, || lock(&acked).len() + lock(&failed).len() >= n).await;
    let failed_async = lock(&failed).clone();
    if !failed_async.is_empty() {
        return Err(format!("{} of {n} async sends failed: {}", failed_async.len(), sample(&failed_async)));
    }
    if !all_back {
        return Err(format!("only {} of {n} async send callbacks came back", lock(&acked).len()));
    }
    want.extend(lock(&acked).iter().cloned());

    // oneway
    for i in 0..n {
        let m = message(ctx, "TagA", &body("oneway", i), &[])?;
        bounded(ctx, &format!("oneway send {i}"), Duration::from_millis(SEND_TIMEOUT_MS), p.send_oneway(m))
            .await?;
    }

    // batch, in batches of at most 32 messages
    let mut i = 0;
    while i < n {
        let end = (i + 32).min(n);
        let mut batch = Vec::new();
        let mut bodies = Vec::new();
        for j in i..end {
            let b = body("batch", j);
            batch.push(message(ctx, "TagA", &b, &[])?);
            bodies.push(b);
        }
        let what = format!("batch send of messages {i}..{end}");
        let r = bounded(
            ctx,
            &what,
            Duration::from_millis(SEND_TIMEOUT_MS + 2_000),
            p.send_batch_with_timeout(batch, SEND_TIMEOUT_MS),
        )
        .await?;
        if !is_ok(&r) {
            return Err(format!("{what}: {}", describe(&r)));
        }
        want.extend(bodies);
        i = end;
    }

    let oneway_prefix = format!("send-{}-oneway-", ctx.run);
    let oneways = || lock(got).keys().filter(|b| b.starts_with(&oneway_prefix)).count();
    let all = wait_until(ctx.deadline, || missing(got, &want).is_empty() && oneways() >= 1).await;
    if !all {
        let miss = missing(got, &want);
        return Err(format!(
            "missing {} of {} acknowledged messages (sync/async/batch), e.g. {}; {} of {n} oneway messages arrived",
            miss.len(),
            want.len(),
            sample(&miss),
            oneways()
        ));
    }
    // The oneway sends went out before the batches, which all arrived: give the rest a moment.
    let settle = (Instant::now() + SETTLE).min(ctx.deadline);
    wait_until(settle, || oneways() >= n).await;
    Ok(format!(
        "{n} each of sync, async, oneway and batch sends; received all {} acknowledged sync/async/batch messages and {} of {n} oneway",
        want.len(),
        oneways()
    ))
}

async fn tags(ctx: &Ctx) -> Outcome {
    let got: Got = Default::default();
    let c =
        start_push(ctx, push_builder(ctx, &ctx.group).build(), Sub::Tag("TagA"), recorder(&ctx.run, &got))
            .await?;
    let p = match producer(ctx).await {
        Ok(p) => p,
        Err(e) => {
            shutdown_push(vec![c]).await;
            return Err(e);
        }
    };
    let result = async {
        let mut want = BTreeSet::new();
        for i in 0..ctx.n {
            let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
            let b = format!("tags-{}-{i}", ctx.run);
            send_sync(ctx, &p, message(ctx, tag, &b, &[])?, &format!("send {i}")).await?;
            if tag == "TagA" {
                want.insert(b);
            }
        }
        let all = wait_until(ctx.deadline, || missing(&got, &want).is_empty()).await;
        // Nothing of TagB may follow either.
        tokio::time::sleep(SETTLE.min(ctx.deadline.saturating_duration_since(Instant::now()))).await;
        let wrong: Vec<String> = lock(&got)
            .iter()
            .filter(|(_, t)| t.as_str() != "TagA")
            .map(|(b, t)| format!("{b} ({t})"))
            .collect();
        let miss = missing(&got, &want);
        if !all || !wrong.is_empty() {
            return Err(format!(
                "missing {} of {} TagA messages (e.g. {}), {} of another tag delivered (e.g. {})",
                miss.len(),
                want.len(),
                sample(&miss),
                wrong.len(),
                sample(&wrong)
            ));
        }
        Ok(format!("sent {} (TagA/TagB alternating), received all {} TagA and no TagB", ctx.n, want.len()))
    }
    .await;
    shutdown_all(Some(p), vec![c]).await;
    result
}

async fn sql(ctx: &Ctx) -> Outcome {
    let n = ctx.n.max(10);
    let got: Got = Default::default();
    let c =
        start_push(ctx, push_builder(ctx, &ctx.group).build(), Sub::Sql("a >= 5"), recorder(&ctx.run, &got))
            .await?;
    let p = match producer(ctx).await {
        Ok(p) => p,
        Err(e) => {
            shutdown_push(vec![c]).await;
            return Err(e);
        }
    };
    let result = async {
        let mut want = BTreeSet::new();
        for i in 0..n {
            let b = format!("sql-{}-{i}", ctx.run);
            send_sync(ctx, &p, message(ctx, "TagA", &b, &[("a", i.to_string())])?, &format!("send {i}"))
                .await?;
            if i >= 5 {
                want.insert(b);
            }
        }
        let all = wait_until(ctx.deadline, || missing(&got, &want).is_empty()).await;
        tokio::time::sleep(SETTLE.min(ctx.deadline.saturating_duration_since(Instant::now()))).await;
        let extra: Vec<String> = lock(&got).keys().filter(|b| !want.contains(*b)).cloned().collect();
        let miss = missing(&got, &want);
        if !all || !extra.is_empty() {
            return Err(format!(
                "missing {} of {} messages with a >= 5 (e.g. {}), {} not matching delivered (e.g. {})",
                miss.len(),
                want.len(),
                sample(&miss),
                extra.len(),
                sample(&extra)
            ));
        }
        Ok(format!("sent {n} with a = 0..{n}, received exactly the {} with a >= 5", want.len()))
    }
    .await;
    shutdown_all(Some(p), vec![c]).await;
    result
}

async fn broadcast(ctx: &Ctx) -> Outcome {
    let got1: Got = Default::default();
    let got2: Got = Default::default();
    let mut consumers = Vec::new();
    // Two consumers of one group in one process need client instances of their own.
    for (k, got) in [(1, &got1), (2, &got2)] {
        let b = push_builder(ctx, &ctx.group)
            .client_config(client_config(ctx, &format!("raftmq-compat-{}-b{k}", ctx.run)))
            .name_server_addr(ctx.ns.as_str())
            .message_model(MessageModel::Broadcasting);
        match start_push(ctx, b.build(), Sub::Tag("*"), recorder(&ctx.run, got)).await {
            Ok(c) => consumers.push(c),
            Err(e) => {
                shutdown_push(consumers).await;
                return Err(format!("consumer {k}: {e}"));
            }
        }
    }
    let p = match producer(ctx).await {
        Ok(p) => p,
        Err(e) => {
            shutdown_push(consumers).await;
            return Err(e);
        }
    };
    let result = async {
        let mut want = BTreeSet::new();
        for i in 0..ctx.n {
            let b = format!("broadcast-{}-{i}", ctx.run);
            send_sync(ctx, &p, message(ctx, "TagA", &b, &[])?, &format!("send {i}")).await?;
            want.insert(b);
        }
        let all =
            wait_until(ctx.deadline, || missing(&got1, &want).is_empty() && missing(&got2, &want).is_empty())
                .await;
        if !all {
            let (m1, m2) = (missing(&got1, &want), missing(&got2, &want));
            return Err(format!(
                "consumer 1 misses {} of {} (e.g. {}), consumer 2 misses {} (e.g. {})",
                m1.len(),
                want.len(),
                sample(&m1),
                m2.len(),
                sample(&m2)
            ));
        }
        Ok(format!("sent {}, both broadcasting consumers of one group received all", ctx.n))
    }
    .await;
    shutdown_all(Some(p), consumers).await;
    result
}

/// What the orderly listener saw, per key.
#[derive(Default)]
struct OrderLog {
    /// Highest sequence number seen so far per key (-1: none).
    max_seq: BTreeMap<String, i64>,
    received: HashSet<(String, i64)>,
    violations: Vec<String>,
    redeliveries: usize,
}

async fn orderly(ctx: &Ctx) -> Outcome {
    const KEYS: usize = 4;
    let log: Arc<Mutex<OrderLog>> = Default::default();
    let mut c = push_builder(ctx, &ctx.group).build();
    subscribe(ctx, &mut c, Sub::Tag("*")).await?;
    let (run, log2) = (ctx.run.clone(), log.clone());
    c.register_message_listener_orderly(move |msgs: &[&MessageExt], octx: &mut ConsumeOrderlyContext| {
        octx.set_auto_commit(true);
        for m in msgs {
            if prop(m, "run") != Some(run.as_str()) {
                continue;
            }
            let key = prop(m, "k").unwrap_or("").to_string();
            let seq: i64 = prop(m, "seq").and_then(|s| s.parse().ok()).unwrap_or(-1);
            let mut l = lock(&log2);
            let max = *l.max_seq.get(&key).unwrap_or(&-1);
            if seq > max + 1 {
                let v = format!("key {key}: got #{seq} after #{max} (queue {})", m.queue_id());
                l.violations.push(v);
            }
            if seq <= max {
                l.redeliveries += 1;
            } else {
                l.max_seq.insert(key.clone(), seq);
            }
            l.received.insert((key, seq));
        }
        Ok(ConsumeOrderlyStatus::Success)
    });
    bounded(ctx, "orderly push consumer start", START_TIMEOUT, c.start()).await?;
    let p = match producer(ctx).await {
        Ok(p) => p,
        Err(e) => {
            shutdown_push(vec![c]).await;
            return Err(e);
        }
    };
    let result = async {
        let selector = SelectMessageQueueByHash;
        let mut queue_of_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for i in 0..ctx.n {
            let key = format!("k{}", i % KEYS);
            let seq = (i / KEYS).to_string();
            let b = format!("orderly-{}-{i}", ctx.run);
            let m = message(ctx, "TagA", &b, &[("k", key.clone()), ("seq", seq)])?;
            let what = format!("send {i}");
            let r = bounded(
                ctx,
                &what,
                Duration::from_millis(SEND_TIMEOUT_MS + 2_000),
                p.send_with_selector_timeout(
                    m,
                    move |mqs: &[MessageQueue], msg: &Message, arg: &String| selector.select(mqs, msg, arg),
                    format!("{}-{key}", ctx.run),
                    SEND_TIMEOUT_MS,
                ),
            )
            .await?;
            match r {
                Some(r) if is_ok(&r) => {
                    let q = r.message_queue.as_ref().map(|q| format!("{}:{}", q.broker_name(), q.queue_id()));
                    let q = q.unwrap_or_else(|| "?".to_string());
                    queue_of_key.entry(key).or_default().insert(q);
                }
                Some(r) => return Err(format!("{what}: {}", describe(&r))),
                None => return Err(format!("{what}: no send result")),
            }
        }
        let split: Vec<String> = queue_of_key
            .iter()
            .filter(|(_, qs)| qs.len() > 1)
            .map(|(k, qs)| format!("{k} -> queues {qs:?}"))
            .collect();
        if !split.is_empty() {
            return Err(format!(
                "the hash selector spread one key over several queues: {}",
                split.join(", ")
            ));
        }
        let all = wait_until(ctx.deadline, || lock(&log).received.len() >= ctx.n).await;
        let l = lock(&log);
        if !all || !l.violations.is_empty() {
            return Err(format!(
                "received {} of {}; {} order violations (e.g. {})",
                l.received.len(),
                ctx.n,
                l.violations.len(),
                sample(&l.violations)
            ));
        }
        Ok(format!(
            "sent {} over {KEYS} keys (queues {:?}), received all in order per key ({} redeliveries)",
            ctx.n,
            queue_of_key.values().flatten().collect::<Vec<_>>(),
            l.redeliveries
        ))
    }
    .await;
    shutdown_all(Some(p), vec![c]).await;
    result
}

async fn litepull(ctx: &Ctx) -> Outcome {
    let c = DefaultLitePullConsumer::builder(ctx.rt.clone())
        .consumer_group(ctx.group.as_str())
        .name_server_addr(ctx.ns.as_str())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .auto_commit(true)
        .poll_timeout_millis(1_000)
        .build()
        .map_err(|e| format!("lite pull consumer: {}", err_text(&e)))?;
    bounded(ctx, "subscribe", START_TIMEOUT, c.subscribe_with_expression(&ctx.topic, "*")).await?;
    bounded(ctx, "lite pull consumer start", START_TIMEOUT, c.start()).await?;
    let p = match producer(ctx).await {
        Ok(p) => p,
        Err(e) => {
            let _ = tokio::time::timeout(SHUTDOWN, c.shutdown()).await;
            return Err(e);
        }
    };
    let result = async {
        let mut want = BTreeSet::new();
        for i in 0..ctx.n {
            let b = format!("litepull-{}-{i}", ctx.run);
            send_sync(ctx, &p, message(ctx, "TagA", &b, &[])?, &format!("send {i}")).await?;
            want.insert(b);
        }
        let mut got = BTreeSet::new();
        let mut polled = 0usize;
        while !want.is_subset(&got) && Instant::now() < ctx.deadline {
            let left = ctx.deadline.saturating_duration_since(Instant::now());
            let batch = c.poll_with_timeout(left.min(Duration::from_secs(1)).as_millis() as u64).await;
            polled += batch.len();
            for m in &batch {
                if prop(m, "run") == Some(ctx.run.as_str()) {
                    got.insert(body_of(m));
                }
            }
        }
        let miss: Vec<&String> = want.difference(&got).collect();
        if !miss.is_empty() {
            return Err(format!(
                "polled {} of {} (e.g. missing {})",
                ctx.n - miss.len(),
                ctx.n,
                sample(miss)
            ));
        }
        Ok(format!("sent {}, polled all ({polled} messages polled in all)", ctx.n))
    }
    .await;
    let mut p = p;
    let _ = tokio::time::timeout(Duration::from_secs(2), p.shutdown()).await;
    let _ = tokio::time::timeout(SHUTDOWN, c.shutdown()).await;
    result
}

/// Decides half messages by body; records each check-back of this run.
struct TxListener {
    run: String,
    checked: Arc<Mutex<BTreeSet<String>>>,
}

fn decide(body: &str, on_check: bool) -> LocalTransactionState {
    match body {
        "commit-now" => LocalTransactionState::CommitMessage,
        "rollback-now" => LocalTransactionState::RollbackMessage,
        "commit-on-check" if on_check => LocalTransactionState::CommitMessage,
        "rollback-on-check" if on_check => LocalTransactionState::RollbackMessage,
        _ if on_check => LocalTransactionState::RollbackMessage,
        _ => LocalTransactionState::Unknown,
    }
}

impl TransactionListener for TxListener {
    fn execute_local_transaction(
        &self,
        msg: &dyn MessageTrait,
        _arg: Option<&(dyn std::any::Any + Send + Sync)>,
    ) -> LocalTransactionState {
        let body = msg.get_body().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        decide(&body, false)
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let body = body_of(msg);
        if prop(msg, "run") == Some(self.run.as_str()) {
            lock(&self.checked).insert(body.clone());
        }
        decide(&body, true)
    }
}

async fn transaction(ctx: &Ctx) -> Outcome {
    let got: Got = Default::default();
    let c = start_push(ctx, push_builder(ctx, &ctx.group).build(), Sub::Tag("*"), recorder(&ctx.run, &got))
        .await?;
    let checked: Arc<Mutex<BTreeSet<String>>> = Default::default();
    let mut p = TransactionMQProducer::builder(ctx.rt.clone())
        .producer_group(format!("{}-producer", ctx.group))
        .name_server_addr(ctx.ns.as_str())
        .send_msg_timeout(SEND_TIMEOUT_MS as u32)
        .transaction_listener(TxListener { run: ctx.run.clone(), checked: checked.clone() })
        .build();
    if let Err(e) = bounded(ctx, "transaction producer start", START_TIMEOUT, p.start()).await {
        shutdown_push(vec![c]).await;
        return Err(e);
    }
    let result = async {
        let bodies = ["commit-now", "rollback-now", "commit-on-check", "rollback-on-check"];
        let mut states = Vec::new();
        for b in bodies {
            let what = format!("half message {b}");
            let r = bounded(ctx,
                &what,
                Duration::from_millis(SEND_TIMEOUT_MS + 2_000),
                p.send_message_in_transaction::<(), _>(message(ctx, "TagA", b, &[])?, None),
            )
            .await?;
            match &r.send_result {
                Some(s) if is_ok(s) => {}
                Some(s) => return Err(format!("{what}: {}", describe(s))),
                None => return Err(format!("{what}: no send result")),
            }
            states.push(format!("{b}={:?}", r.local_transaction_state));
        }
        let want: BTreeSet<String> = ["commit-now", "commit-on-check"].iter().map(|s| s.to_string()).collect();
        let want_checked = ["commit-on-check", "rollback-on-check"];
        let done = wait_until(ctx.deadline, || {
            missing(&got, &want).is_empty() && want_checked.iter().all(|b| lock(&checked).contains(*b))
        })
        .await;
        // A rolled-back message must not show up late either.
        tokio::time::sleep(SETTLE.min(ctx.deadline.saturating_duration_since(Instant::now()))).await;
        let consumed: BTreeSet<String> = lock(&got).keys().cloned().collect();
        let checked_now = lock(&checked).clone();
        if !done || consumed != want {
            return Err(format!(
                "consumed {consumed:?} (want {want:?}), checked back {checked_now:?} (want {want_checked:?}); local states {}",
                states.join(", ")
            ));
        }
        Ok(format!("consumed {consumed:?}, checked back {checked_now:?}"))
    }
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(2), p.shutdown()).await;
    shutdown_push(vec![c]).await;
    result
}

async fn delay(ctx: &Ctx) -> Outcome {
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let (run, arr2) = (ctx.run.clone(), arrivals.clone());
    let listener = move |msgs: &[&MessageExt], _c: &ConsumeConcurrentlyContext| {
        for m in msgs {
            if prop(m, "run") == Some(run.as_str()) {
                lock(&arr2).entry(body_of(m)).or_insert_with(Instant::now);
            }
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    };
    let c = start_push(ctx, push_builder(ctx, &ctx.group).build(), Sub::Tag("*"), listener).await?;
    let p = match producer(ctx).await {
        Ok(p) => p,
        Err(e) => {
            shutdown_push(vec![c]).await;
            return Err(e);
        }
    };
    let result = async {
        // First a plain message, so the consumer is surely consuming when the delayed one is sent:
        // an early delivery would then show.
        let warm = format!("delay-{}-warmup", ctx.run);
        send_sync(ctx, &p, message(ctx, "TagA", &warm, &[])?, "warm-up send").await?;
        if !wait_until(ctx.deadline, || lock(&arrivals).contains_key(&warm)).await {
            return Err("the warm-up message (no delay) was never consumed".to_string());
        }
        let delayed = format!("delay-{}-level2", ctx.run);
        let m = Message::builder()
            .topic(ctx.topic.as_str())
            .tags("TagA")
            .body_slice(delayed.as_bytes())
            .delay_level(2)
            .raw_property("run", ctx.run.as_str())
            .and_then(|b| b.build())
            .map_err(|e| format!("message: {e}"))?;
        let sent_at = Instant::now();
        send_sync(ctx, &p, m, "delayed send").await?;
        if !wait_until(ctx.deadline, || lock(&arrivals).contains_key(&delayed)).await {
            return Err(format!(
                "the delay level 2 message was not consumed within {:.1} s of its send",
                sent_at.elapsed().as_secs_f64()
            ));
        }
        let took = lock(&arrivals)[&delayed].saturating_duration_since(sent_at);
        if took < Duration::from_millis(4_500) {
            return Err(format!(
                "the delay level 2 (5 s) message was consumed {:.2} s after its send",
                took.as_secs_f64()
            ));
        }
        Ok(format!("the delay level 2 (5 s) message was consumed {:.2} s after its send", took.as_secs_f64()))
    }
    .await;
    shutdown_all(Some(p), vec![c]).await;
    result
}

async fn retry(ctx: &Ctx) -> Outcome {
    const MAX_RECONSUME: i32 = 2;
    // (reconsume times, seconds since the send) of each delivery of the message
    let deliveries: Arc<Mutex<Vec<(i32, f64)>>> = Default::default();
    let start = Instant::now();
    let (run, d2) = (ctx.run.clone(), deliveries.clone());
    let listener = move |msgs: &[&MessageExt], _c: &ConsumeConcurrentlyContext| {
        for m in msgs {
            if prop(m, "run") == Some(run.as_str()) {
                lock(&d2).push((m.reconsume_times(), start.elapsed().as_secs_f64()));
            }
        }
        Ok(ConsumeConcurrentlyStatus::ReconsumeLater)
    };
    let b = push_builder(ctx, &ctx.group).max_reconsume_times(MAX_RECONSUME);
    let c = start_push(ctx, b.build(), Sub::Tag("*"), listener).await?;
    let p = match producer(ctx).await {
        Ok(p) => p,
        Err(e) => {
            shutdown_push(vec![c]).await;
            return Err(e);
        }
    };
    let body = format!("retry-{}", ctx.run);
    let result = async {
        send_sync(ctx, &p, message(ctx, "TagA", &body, &[])?, "send").await?;
        let seen = || lock(&deliveries).iter().map(|d| d.0).collect::<Vec<i32>>();
        let three = wait_until(ctx.deadline, || seen().len() >= (MAX_RECONSUME + 1) as usize).await;
        let times = seen();
        let growing = times.first() == Some(&0) && times.windows(2).all(|w| w[1] >= w[0]);
        let reached = times.iter().collect::<BTreeSet<_>>().into_iter().copied().collect::<Vec<i32>>()
            == (0..=MAX_RECONSUME).collect::<Vec<i32>>();
        if !three || !growing || !reached {
            return Err(format!(
                "deliveries (reconsume times, s after send): {:?}; want reconsume times 0, 1, 2",
                lock(&deliveries)
            ));
        }
        // After the last failure the broker moves the message to the dead-letter queue.
        let dlq_topic = format!("%DLQ%{}", ctx.group);
        let dlq = dead_letter(ctx, &dlq_topic, &body).await;
        let after = lock(&deliveries).clone();
        if after.iter().any(|d| d.0 > MAX_RECONSUME) {
            return Err(format!("delivered again after max reconsume times {MAX_RECONSUME}: {after:?}"));
        }
        let found = dlq?;
        Ok(format!("deliveries (reconsume times, s after send): {after:?}; then in {dlq_topic} ({found})"))
    }
    .await;
    shutdown_all(Some(p), vec![c]).await;
    result
}

/// Finds `body` (of this run) in `dlq_topic` with a lite pull consumer of GROUP-dlq assigned to
/// all of its queues (assignment needs no rebalance, so a topic that appears late is found soon).
async fn dead_letter(ctx: &Ctx, dlq_topic: &str, body: &str) -> Outcome {
    let c = DefaultLitePullConsumer::builder(ctx.rt.clone())
        .consumer_group(format!("{}-dlq", ctx.group))
        .name_server_addr(ctx.ns.as_str())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .auto_commit(true)
        .poll_timeout_millis(1_000)
        .build()
        .map_err(|e| format!("dead-letter consumer: {}", err_text(&e)))?;
    bounded(
        ctx,
        "dead-letter consumer subscription",
        START_TIMEOUT,
        c.set_sub_expression_for_assign(dlq_topic, "*"),
    )
    .await?;
    bounded(ctx, "dead-letter consumer start", START_TIMEOUT, c.start()).await?;
    let result = async {
        let mut last_error = String::new();
        let mut queues = Vec::new();
        while Instant::now() < ctx.deadline {
            match tokio::time::timeout(Duration::from_secs(5), c.fetch_message_queues(dlq_topic)).await {
                Ok(Ok(q)) if !q.is_empty() => {
                    queues = q;
                    break;
                }
                Ok(Ok(_)) => last_error = "no readable queues".to_string(),
                Ok(Err(e)) => last_error = err_text(&e),
                Err(_) => last_error = "route lookup timed out".to_string(),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if queues.is_empty() {
            return Err(format!("no route to the dead-letter topic {dlq_topic}: {last_error}"));
        }
        let nq = queues.len();
        bounded(ctx, "dead-letter assign", START_TIMEOUT, c.assign(queues)).await?;
        while Instant::now() < ctx.deadline {
            let left = ctx.deadline.saturating_duration_since(Instant::now());
            for m in c.poll_with_timeout(left.min(Duration::from_secs(1)).as_millis() as u64).await {
                if prop(&m, "run") == Some(ctx.run.as_str()) && body_of(&m) == body {
                    return Ok(format!("{nq} queue(s), read back by group {}-dlq", ctx.group));
                }
            }
        }
        Err(format!("the message never showed up in the dead-letter topic {dlq_topic} ({nq} queues)"))
    }
    .await;
    let _ = tokio::time::timeout(SHUTDOWN, c.shutdown()).await;
    result
}
