package raftmq.compat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.LocalTransactionState;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.client.producer.TransactionListener;
import org.apache.rocketmq.client.producer.TransactionMQProducer;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * The official RocketMQ 4.9.8 Java client against raftmq, one scenario per run; the integration
 * tests run it (tests/it/t50_remoting_java.rs). Prints "ok <scenario>: ..." and exits 0, or prints
 * "FAIL ..." and exits 1.
 *
 * <pre>
 * quickstart  NAMESRV TOPIC GROUP COUNT    producer sends COUNT messages (TagA and TagB, alternating);
 *                                          a push consumer subscribed to TagA gets every TagA one
 * failover    NAMESRV TOPIC GROUP SECONDS  a send every 20 ms while a push consumer consumes; prints
 *                                          "ready" after 3 s (the test kills a leader then); every
 *                                          acknowledged message must be consumed
 * transaction NAMESRV TOPIC GROUP          half messages: one committed at once, one rolled back at
 *                                          once, one committed by check-back, one rolled back by
 *                                          check-back; the consumer gets exactly the two committed
 * produce     NAMESRV TOPIC GROUP COUNT    sends COUNT messages "java-i" (tag "x", key "k-i"),
 *                                          printing "id MSGID BODY" for each
 * consume     NAMESRV TOPIC GROUP COUNT    a push consumer gets COUNT messages whose body starts
 *                                          with "python-", printing "id MSGID BODY TAG" for each;
 *                                          its offsets are committed when it shuts down
 * </pre>
 */
public final class Compat {
    private static final long WAIT_MS = 90_000;

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.out.println("usage: Compat quickstart|failover|transaction NAMESRV TOPIC GROUP [N]");
            System.exit(2);
        }
        String scenario = args[0];
        String ns = args[1];
        String topic = args[2];
        String group = args[3];
        boolean ok;
        switch (scenario) {
            case "quickstart":
                ok = quickstart(ns, topic, group, Integer.parseInt(args[4]));
                break;
            case "failover":
                ok = failover(ns, topic, group, Double.parseDouble(args[4]));
                break;
            case "transaction":
                ok = transaction(ns, topic, group);
                break;
            case "produce":
                ok = produce(ns, topic, group, Integer.parseInt(args[4]));
                break;
            case "consume":
                ok = consume(ns, topic, group, Integer.parseInt(args[4]));
                break;
            default:
                System.out.println("FAIL unknown scenario " + scenario);
                ok = false;
        }
        System.out.flush();
        System.exit(ok ? 0 : 1);
    }

    /** A push consumer of TOPIC that records each body it gets (first time) and its tag. */
    private static DefaultMQPushConsumer consumer(String ns, String topic, String group, String expr,
            Map<String, String> got) throws Exception {
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group);
        c.setNamesrvAddr(ns);
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.subscribe(topic, expr);
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                String tag = m.getTags() == null ? "" : m.getTags();
                got.putIfAbsent(new String(m.getBody(), StandardCharsets.UTF_8), tag);
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        return c;
    }

    private static DefaultMQProducer producer(String ns, String group) throws Exception {
        DefaultMQProducer p = new DefaultMQProducer(group);
        p.setNamesrvAddr(ns);
        p.start();
        return p;
    }

    /** Waits until every body of `want` is in `got`. */
    private static boolean await(Map<String, String> got, Set<String> want) throws InterruptedException {
        long deadline = System.currentTimeMillis() + WAIT_MS;
        while (System.currentTimeMillis() < deadline) {
            if (got.keySet().containsAll(want)) {
                return true;
            }
            Thread.sleep(100);
        }
        return got.keySet().containsAll(want);
    }

    static boolean quickstart(String ns, String topic, String group, int count) throws Exception {
        Map<String, String> got = new ConcurrentHashMap<>();
        DefaultMQPushConsumer c = consumer(ns, topic, group, "TagA", got);
        DefaultMQProducer p = producer(ns, group + "-producer");
        Set<String> want = ConcurrentHashMap.newKeySet();
        for (int i = 0; i < count; i++) {
            String tag = i % 2 == 0 ? "TagA" : "TagB";
            String body = "qs-" + i;
            Message m = new Message(topic, tag, ("" + i).getBytes(StandardCharsets.UTF_8));
            m.setBody(body.getBytes(StandardCharsets.UTF_8));
            m.setKeys("key-" + i);
            SendResult r = p.send(m);
            if (r.getSendStatus() != SendStatus.SEND_OK) {
                System.out.println("FAIL quickstart: send " + i + " answered " + r);
                return false;
            }
            if (tag.equals("TagA")) {
                want.add(body);
            }
        }
        boolean all = await(got, want);
        Thread.sleep(500);
        long wrongTag = got.values().stream().filter(t -> !t.equals("TagA")).count();
        p.shutdown();
        c.shutdown();
        if (!all || wrongTag > 0) {
            Set<String> missing = new java.util.TreeSet<>(want);
            missing.removeAll(got.keySet());
            System.out.println("FAIL quickstart: missing " + missing.size() + " of " + want.size()
                + " TagA messages, " + wrongTag + " of another tag delivered");
            return false;
        }
        System.out.println("ok quickstart: sent " + count + ", received all " + want.size() + " TagA messages");
        return true;
    }

    static boolean failover(String ns, String topic, String group, double seconds) throws Exception {
        Map<String, String> got = new ConcurrentHashMap<>();
        DefaultMQPushConsumer c = consumer(ns, topic, group, "*", got);
        DefaultMQProducer p = producer(ns, group + "-producer");
        p.setRetryTimesWhenSendFailed(4);
        Set<String> acked = ConcurrentHashMap.newKeySet();
        int failed = 0;
        int i = 0;
        long start = System.currentTimeMillis();
        boolean ready = false;
        while (System.currentTimeMillis() - start < seconds * 1000) {
            if (!ready && System.currentTimeMillis() - start >= 3000) {
                System.out.println("ready");
                System.out.flush();
                ready = true;
            }
            String body = "fo-" + i++;
            try {
                SendResult r = p.send(new Message(topic, "T", body.getBytes(StandardCharsets.UTF_8)));
                if (r.getSendStatus() == SendStatus.SEND_OK) {
                    acked.add(body);
                } else {
                    failed++;
                }
            } catch (Exception e) {
                failed++;
                System.err.println("send " + body + " failed: " + e);
            }
            Thread.sleep(20);
        }
        boolean all = await(got, acked);
        p.shutdown();
        c.shutdown();
        if (!all) {
            Set<String> missing = new java.util.TreeSet<>(acked);
            missing.removeAll(got.keySet());
            System.out.println("FAIL failover: " + missing.size() + " of " + acked.size()
                + " acknowledged messages never consumed, e.g. " + missing.stream().limit(5).toList());
            return false;
        }
        System.out.println("ok failover: " + acked.size() + " acknowledged, all consumed; " + failed + " of " + i
            + " sends failed");
        return true;
    }

    static boolean transaction(String ns, String topic, String group) throws Exception {
        Map<String, String> got = new ConcurrentHashMap<>();
        DefaultMQPushConsumer c = consumer(ns, topic, group, "*", got);
        TransactionMQProducer p = new TransactionMQProducer(group + "-producer");
        p.setNamesrvAddr(ns);
        Set<String> checked = ConcurrentHashMap.newKeySet();
        p.setTransactionListener(new TransactionListener() {
            @Override
            public LocalTransactionState executeLocalTransaction(Message msg, Object arg) {
                String body = new String(msg.getBody(), StandardCharsets.UTF_8);
                switch (body) {
                    case "commit-now": return LocalTransactionState.COMMIT_MESSAGE;
                    case "rollback-now": return LocalTransactionState.ROLLBACK_MESSAGE;
                    default: return LocalTransactionState.UNKNOW;
                }
            }

            @Override
            public LocalTransactionState checkLocalTransaction(MessageExt msg) {
                String body = new String(msg.getBody(), StandardCharsets.UTF_8);
                checked.add(body);
                return body.equals("commit-on-check") ? LocalTransactionState.COMMIT_MESSAGE
                    : LocalTransactionState.ROLLBACK_MESSAGE;
            }
        });
        p.start();
        List<String> bodies = List.of("commit-now", "rollback-now", "commit-on-check", "rollback-on-check");
        for (String b : bodies) {
            SendResult r = p.sendMessageInTransaction(new Message(topic, "T", b.getBytes(StandardCharsets.UTF_8)), null);
            if (r.getSendStatus() != SendStatus.SEND_OK) {
                System.out.println("FAIL transaction: half message " + b + " answered " + r);
                return false;
            }
        }
        Set<String> want = Set.of("commit-now", "commit-on-check");
        boolean all = await(got, want);
        long deadline = System.currentTimeMillis() + WAIT_MS;
        while (!checked.contains("rollback-on-check") && System.currentTimeMillis() < deadline) {
            Thread.sleep(100);
        }
        Thread.sleep(1000);
        p.shutdown();
        c.shutdown();
        List<String> extra = new ArrayList<>(got.keySet());
        extra.removeAll(want);
        if (!all || !extra.isEmpty() || !checked.containsAll(Set.of("commit-on-check", "rollback-on-check"))) {
            System.out.println("FAIL transaction: consumed " + got.keySet() + ", checked back " + checked);
            return false;
        }
        System.out.println("ok transaction: consumed " + new java.util.TreeSet<>(got.keySet()) + ", checked back "
            + new java.util.TreeSet<>(checked));
        return true;
    }

    static boolean produce(String ns, String topic, String group, int count) throws Exception {
        DefaultMQProducer p = producer(ns, group);
        for (int i = 0; i < count; i++) {
            String body = "java-" + i;
            Message m = new Message(topic, "x", body.getBytes(StandardCharsets.UTF_8));
            m.setKeys("k-" + i);
            m.putUserProperty("origin", "java");
            SendResult r = p.send(m);
            if (r.getSendStatus() != SendStatus.SEND_OK) {
                System.out.println("FAIL produce: send " + i + " answered " + r);
                return false;
            }
            System.out.println("id " + r.getMsgId() + " " + body);
        }
        p.shutdown();
        System.out.println("ok produce: " + count + " sent");
        return true;
    }

    static boolean consume(String ns, String topic, String group, int count) throws Exception {
        Map<String, String> ids = new ConcurrentHashMap<>();
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group);
        c.setNamesrvAddr(ns);
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                String body = new String(m.getBody(), StandardCharsets.UTF_8);
                if (body.startsWith("python-")) {
                    ids.putIfAbsent(body, m.getMsgId() + " " + body + " " + m.getTags());
                }
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        long deadline = System.currentTimeMillis() + WAIT_MS;
        while (ids.size() < count && System.currentTimeMillis() < deadline) {
            Thread.sleep(100);
        }
        // Shutting down persists the consumed offsets to the brokers.
        c.shutdown();
        for (String line : new java.util.TreeSet<>(ids.values())) {
            System.out.println("id " + line);
        }
        if (ids.size() < count) {
            System.out.println("FAIL consume: " + ids.size() + " of " + count + " received");
            return false;
        }
        System.out.println("ok consume: " + count + " received");
        return true;
    }
}
