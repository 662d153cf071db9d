"""Failover check: the official RocketMQ 5 Python client while a broker group's leader is killed.

Run by the integration tests `t40_python_compat::official_python_client_follows_a_leader_kill`
and `..._with_every_endpoint_survives_the_first_one_dying`; by hand: python_failover.py ENDPOINTS
TOPIC GROUP SECONDS [strict]. ENDPOINTS is the client's access point: one `host:port`, or several
joined by `;`. A producer sends one message every 20 ms for SECONDS seconds while a PushConsumer
of GROUP consumes the topic. After 3 s it prints `ready`: that is when the test kills a node. At
the end every message whose send succeeded must have reached the listener; with `strict`, every
send must also have succeeded (within the client's own retries). Prints `ok failover:` with the
counts and the longest pause between two consumed messages, or `FAIL ...` and exits 1.
"""

import sys
import threading
import time

from rocketmq import (ClientConfiguration, ConsumeResult, Credentials, FilterExpression, Message,
                      MessageListener, Producer, PushConsumer)


class Collect(MessageListener):
    def __init__(self):
        self.lock = threading.Lock()
        self.bodies = {}

    def consume(self, message):
        with self.lock:
            self.bodies.setdefault(message.body.decode(), time.time())
        return ConsumeResult.SUCCESS


def main():
    if len(sys.argv) not in (5, 6) or sys.argv[5:] not in ([], ["strict"]):
        print(__doc__)
        sys.exit(2)
    endpoint, topic, group, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    strict = sys.argv[5:] == ["strict"]
    config = ClientConfiguration(endpoint, Credentials())
    listener = Collect()
    consumer = PushConsumer(config, group, listener, {topic: FilterExpression()})
    consumer.startup()
    producer = Producer(config, (topic,))
    producer.startup()
    acked, failed = [], 0
    start = time.time()
    said_ready = False
    i = 0
    try:
        while time.time() - start < seconds:
            if not said_ready and time.time() - start >= 3:
                print("ready", flush=True)
                said_ready = True
            msg = Message()
            msg.topic = topic
            msg.body = f"fo-{i}".encode()
            try:
                producer.send(msg)
                acked.append(msg.body.decode())
            except Exception as e:  # the outcome of a failed send is unknown: not counted
                failed += 1
                print(f"send fo-{i} failed: {e}", file=sys.stderr, flush=True)
            i += 1
            time.sleep(0.02)
        deadline = time.time() + 60
        while time.time() < deadline:
            with listener.lock:
                if all(b in listener.bodies for b in acked):
                    break
            time.sleep(0.1)
        with listener.lock:
            missing = [b for b in acked if b not in listener.bodies]
            times = sorted(listener.bodies.values())
    finally:
        producer.shutdown()
        consumer.shutdown()
    if strict and failed:
        print(f"FAIL failover: {failed} of {i} sends failed after the client's retries", flush=True)
        sys.exit(1)
    if missing:
        print(f"FAIL failover: {len(missing)} of {len(acked)} acknowledged messages never reached the "
              f"listener, e.g. {missing[:5]}", flush=True)
        sys.exit(1)
    gaps = [b - a for a, b in zip(times, times[1:])]
    print(f"ok failover: {i} sent, {len(acked)} acknowledged, {failed} failed, all acknowledged consumed; "
          f"longest pause between consumed messages {max(gaps, default=0):.2f} s", flush=True)


if __name__ == "__main__":
    main()
