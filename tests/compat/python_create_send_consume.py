"""Compatibility check: the official RocketMQ 5 Python client sends COUNT messages to TOPIC, then
a SimpleConsumer of GROUP (created by the caller before the sends) receives and acks every one.

Run by the integration test `t32_group_start`; by hand:
python_create_send_consume.py ENDPOINTS TOPIC GROUP COUNT. Prints `ok python ...` or `FAIL ...`
and exits 1.
"""

import sys
import time

from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer


def fail(what):
    print(f"FAIL {what}", flush=True)
    sys.exit(1)


def main():
    if len(sys.argv) != 5:
        print(__doc__)
        sys.exit(2)
    endpoints, topic, group, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    config = ClientConfiguration(endpoints, Credentials())
    producer = Producer(config, (topic,))
    producer.startup()
    sent = set()
    try:
        for i in range(count):
            msg = Message()
            msg.topic = topic
            msg.body = f"python-{i}".encode()
            sent.add(producer.send(msg).message_id)
    finally:
        producer.shutdown()
    print(f"ok python producer: {len(sent)} messages sent", flush=True)
    consumer = SimpleConsumer(config, group, {topic: FilterExpression("*")}, await_duration=3)
    consumer.startup()
    got = set()
    try:
        deadline = time.time() + 60
        while len(got) < len(sent) and time.time() < deadline:
            for m in consumer.receive(16, 30):
                got.add(m.message_id)
                consumer.ack(m)
    finally:
        consumer.shutdown()
    missing = sent - got
    if missing:
        fail(f"python consumer: {len(missing)} of {len(sent)} never received")
    print(f"ok python consumer: all {len(sent)} received", flush=True)


if __name__ == "__main__":
    main()
