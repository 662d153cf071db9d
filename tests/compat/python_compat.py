"""Compatibility check: the official RocketMQ 5 Python client against a raftmq cluster.

Run by the integration test `t40_python_compat` (which starts the cluster and the virtualenv);
by hand: python_compat.py ENDPOINTS TOPIC SIMPLE_GROUP PUSH_GROUP TX_TOPIC TX_GROUP DELAY_TOPIC
DELAY_GROUP FIFO_TOPIC FIFO_GROUP RETRY_TOPIC RETRY_GROUP (the cluster's transaction
check interval and retry schedule should be short, e.g. `[broker] transaction_check_secs = 1`,
`retry_delays_ms = [1000, 1000]`; FIFO_GROUP a FIFO consumer group; RETRY_GROUP with 2 delivery
attempts; the topics after TOPIC with one queue each).

Scenarios, each asserted:
  1. Producer: sends normal messages with tag and keys; every send returns a message id.
  2. SimpleConsumer: receives all of them; changes the invisible duration of one and leaves it
     unacked, acks the rest; the unacked one comes back with delivery attempt 2 and is acked;
     after that nothing more is delivered.
  3. PushConsumer: a listener consumes every message (a second group, so all of them).
  4. Transactions on a TRANSACTION topic: a half message committed by the client and one rolled
     back; two left open, which the broker checks back through the producer's Telemetry stream
     and the checker commits one and rolls back the other. Exactly the two committed ones reach
     a consumer.
  5. Delay: a message scheduled 2 s ahead arrives once, not early, within a second of its time; a
     second one recalled by its recall handle never arrives.
  6. FIFO: messages of one message group, consumed by a FIFO group with a SimpleConsumer, arrive
     in send order, the next only after the previous is acked.
  7. Retry and dead letters: a PushConsumer listener fails one message every time; it comes back
     with attempt 2 after the group's retry delay and never a third time (2 attempts allowed); the
     others are consumed. Prints its id; the test finds it in the group's %DLQ% topic.
Prints one line per scenario and exits non-zero on the first failure.
"""

import contextlib
import sys
import threading
import time

from rocketmq import (ClientConfiguration, ConsumeResult, Credentials, FilterExpression, Message,
                      MessageListener, Producer, PushConsumer, SimpleConsumer, TransactionChecker,
                      TransactionResolution)

COUNT = 10


def fail(what):
    print(f"FAIL {what}", flush=True)
    sys.exit(1)


def produce(config, topic):
    producer = Producer(config, (topic,))
    producer.startup()
    ids = []
    try:
        for i in range(COUNT):
            msg = Message()
            msg.topic = topic
            msg.body = f"py-{i}".encode()
            msg.tag = "py"
            msg.keys = f"key-{i}"
            receipt = producer.send(msg)
            if not receipt.message_id:
                fail(f"send {i}: no message id in the receipt")
            ids.append(receipt.message_id)
    finally:
        producer.shutdown()
    print(f"ok producer: {len(ids)} messages sent", flush=True)
    return ids


def simple(config, topic, group, ids):
    consumer = SimpleConsumer(config, group, {topic: FilterExpression("*")}, await_duration=3)
    consumer.startup()
    try:
        got = {}
        deadline = time.time() + 60
        while len(got) < len(ids) and time.time() < deadline:
            for m in consumer.receive(16, 30):
                if m.message_id in got:
                    fail(f"simple: {m.message_id} delivered twice while invisible")
                got[m.message_id] = m
        if set(got) != set(ids):
            fail(f"simple: received {len(got)} of {len(ids)} messages")
        for m in got.values():
            if m.delivery_attempt != 1 or m.tag != "py" or not m.receipt_handle:
                fail(f"simple: first delivery of {m.message_id}: attempt {m.delivery_attempt}, tag {m.tag}")
        # One message is postponed (2 s) and left unacked; the rest are acked.
        postponed = got[ids[0]]
        consumer.change_invisible_duration(postponed, 2)
        for mid in ids[1:]:
            consumer.ack(got[mid])
        print("ok simple consumer: received all, changed invisible duration of one, acked the rest", flush=True)
        again = None
        deadline = time.time() + 30
        while again is None and time.time() < deadline:
            for m in consumer.receive(16, 30):
                if m.message_id != postponed.message_id:
                    fail(f"simple: acked message {m.message_id} delivered again")
                again = m
        if again is None:
            fail("simple: the unacked message did not come back")
        if again.delivery_attempt != 2:
            fail(f"simple: redelivery has attempt {again.delivery_attempt}, expected 2")
        consumer.ack(again)
        print("ok simple consumer: unacked message came back with attempt 2 and was acked", flush=True)
        extra = consumer.receive(16, 30)
        if extra:
            fail(f"simple: {len(extra)} messages delivered after every message was acked")
        print("ok simple consumer: nothing delivered after all acks", flush=True)
    finally:
        consumer.shutdown()


class Collect(MessageListener):
    def __init__(self):
        self.lock = threading.Lock()
        self.ids = set()

    def consume(self, message):
        with self.lock:
            self.ids.add(message.message_id)
        return ConsumeResult.SUCCESS


def push(config, topic, group, ids):
    listener = Collect()
    consumer = PushConsumer(config, group, listener, {topic: FilterExpression("py")})
    consumer.startup()
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with listener.lock:
                if listener.ids >= set(ids):
                    break
            time.sleep(0.1)
        with listener.lock:
            missing = set(ids) - listener.ids
        if missing:
            fail(f"push: {len(missing)} of {len(ids)} messages never reached the listener")
        print(f"ok push consumer: listener consumed all {len(ids)} messages", flush=True)
    finally:
        consumer.shutdown()


class Checker(TransactionChecker):
    """Answers check-backs: commit what the body says to commit, roll back the rest."""

    def __init__(self):
        self.checked = []

    def check(self, message):
        body = message.body.decode()
        self.checked.append(body)
        return TransactionResolution.COMMIT if body.startswith("commit") else TransactionResolution.ROLLBACK


@contextlib.contextmanager
def pair(config, topic, group, checker=None):
    """A started producer of `topic` and simple consumer of `group` on it; both shut down after."""
    producer = Producer(config, (topic,), checker)
    producer.startup()
    consumer = SimpleConsumer(config, group, {topic: FilterExpression()})
    consumer.startup()
    try:
        yield producer, consumer
    finally:
        consumer.shutdown()
        producer.shutdown()


def receive_acked(consumer, count, seconds):
    """Receives and acks until `count` messages came or `seconds` passed; their bodies in order."""
    got = []
    deadline = time.time() + seconds
    while time.time() < deadline and len(got) < count:
        for m in consumer.receive(16, 15):
            got.append(m.body.decode())
            consumer.ack(m)
    return got


def expect_quiet(consumer, seconds, what):
    """Fails if any message comes within `seconds`."""
    quiet = time.time() + seconds
    while time.time() < quiet:
        for m in consumer.receive(16, 15):
            fail(f"{what}: also consumed {m.body.decode()}")


def transactions(config, topic, group):
    checker = Checker()
    with pair(config, topic, group, checker) as (producer, consumer):
        def half(body):
            msg = Message()
            msg.topic = topic
            msg.body = body.encode()
            t = producer.begin_transaction()
            producer.send(msg, t)
            return t

        half("client-commit").commit()
        half("client-rollback").rollback()
        half("commit-by-check")
        half("rollback-by-check")
        want = {"client-commit", "commit-by-check"}
        got = receive_acked(consumer, len(want), 30)
        if sorted(got) != sorted(want):
            fail(f"transactions: consumed {got}, wanted {sorted(want)} (checked back: {checker.checked})")
        # The rolled-back ones never come, the committed ones only once.
        expect_quiet(consumer, 4, "transactions")
        if "commit-by-check" not in checker.checked or "rollback-by-check" not in checker.checked:
            fail(f"transactions: the broker did not check back both open ones: {checker.checked}")
        print("ok transactions: client commit and rollback, check-back commit and rollback", flush=True)


def delay(config, topic, group):
    with pair(config, topic, group) as (producer, consumer):
        def scheduled(body, ahead_s):
            msg = Message()
            msg.topic = topic
            msg.body = body.encode()
            # This client sends delivery_timestamp as whole seconds since the epoch.
            at = int(time.time()) + ahead_s
            msg.delivery_timestamp = at
            return producer.send(msg), at * 1000

        _, due = scheduled("scheduled", 2)
        receipt, _ = scheduled("recalled", 3)
        producer.recall_message(topic, receipt.recall_handle)
        got = []
        deadline = time.time() + 25
        while time.time() < deadline and not got:
            for m in consumer.receive(16, 15):
                now = int(time.time() * 1000)
                got.append((m.body.decode(), now - due))
                consumer.ack(m)
        if [g[0] for g in got] != ["scheduled"]:
            fail(f"delay: consumed {got}, wanted only 'scheduled'")
        late = got[0][1]
        if late < 0 or late > 1000:
            fail(f"delay: delivered {late} ms after its time (must be 0-1000)")
        expect_quiet(consumer, 3, "delay (recalled or twice)")
        print(f"ok delay: scheduled message {late} ms after its time, recalled one never delivered", flush=True)


def fifo(config, topic, group):
    with pair(config, topic, group) as (producer, consumer):
        want = [f"fifo-{i}" for i in range(COUNT)]
        for body in want:
            msg = Message()
            msg.topic = topic
            msg.body = body.encode()
            msg.message_group = "order-1"
            producer.send(msg)
        got = receive_acked(consumer, len(want), 30)
        if got != want:
            fail(f"fifo: consumed {got}, wanted {want}")
        print(f"ok fifo: {len(got)} messages of one message group in send order", flush=True)


class FailOne(MessageListener):
    """Fails the message with body `fail-me` every time; records its attempts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempts = []
        self.ok = set()

    def consume(self, message):
        with self.lock:
            if message.body == b"fail-me":
                self.attempts.append(message.delivery_attempt)
                return ConsumeResult.FAILURE
            self.ok.add(message.body.decode())
        return ConsumeResult.SUCCESS


def retry_and_dlq(config, topic, group):
    listener = FailOne()
    producer = Producer(config, (topic,))
    producer.startup()
    consumer = PushConsumer(config, group, listener, {topic: FilterExpression()})
    consumer.startup()
    try:
        failing = None
        for body in ["ok-1", "fail-me", "ok-2"]:
            msg = Message()
            msg.topic = topic
            msg.body = body.encode()
            receipt = producer.send(msg)
            if body == "fail-me":
                failing = receipt.message_id
        deadline = time.time() + 40
        while time.time() < deadline:
            with listener.lock:
                if len(listener.attempts) >= 2 and listener.ok == {"ok-1", "ok-2"}:
                    break
            time.sleep(0.1)
        with listener.lock:
            attempts, ok = list(listener.attempts), set(listener.ok)
        if attempts[:2] != [1, 2] or ok != {"ok-1", "ok-2"}:
            fail(f"retry: attempts {attempts}, consumed {ok}")
        # Let a third delivery show if there were one; the broker moves the message to the
        # group's %DLQ% topic when it comes due after its last attempt (the test reads it there).
        quiet = time.time() + 3
        while time.time() < quiet:
            time.sleep(0.1)
        with listener.lock:
            attempts = list(listener.attempts)
        if attempts != [1, 2]:
            fail(f"retry: deliveries of the failing message {attempts}, wanted [1, 2]")
        print(f"ok retry: attempts {attempts}; dead letter {failing}", flush=True)
    finally:
        consumer.shutdown()
        producer.shutdown()


def main():
    if len(sys.argv) != 13:
        print(__doc__)
        sys.exit(2)
    endpoints, topic, simple_group, push_group, tx_topic, tx_group = sys.argv[1:7]
    delay_topic, delay_group, fifo_topic, fifo_group = sys.argv[7:11]
    retry_topic, retry_group = sys.argv[11:]
    config = ClientConfiguration(endpoints, Credentials())
    ids = produce(config, topic)
    simple(config, topic, simple_group, ids)
    push(config, topic, push_group, ids)
    transactions(config, tx_topic, tx_group)
    delay(config, delay_topic, delay_group)
    fifo(config, fifo_topic, fifo_group)
    retry_and_dlq(config, retry_topic, retry_group)
    print("ok all scenarios", flush=True)


if __name__ == "__main__":
    main()
