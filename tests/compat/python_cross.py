"""Cross-protocol check with the official RocketMQ 5 Python client (the other side is a 4.x
client over Remoting).

python_cross.py send ENDPOINTS TOPIC COUNT: sends COUNT messages "python-i" with tag "py" and
prints "id MESSAGE_ID BODY" for each.
python_cross.py receive ENDPOINTS TOPIC GROUP COUNT: a SimpleConsumer of GROUP receives (and
acks) COUNT messages whose body starts with "java-", printing "id MESSAGE_ID BODY TAG KEYS ORIGIN"
for each.
Prints `ok ...` at the end, or `FAIL ...` and exits 1. Run by `t47_remoting_cross`.
"""

import sys
import time

from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "send" and len(sys.argv) == 5:
        endpoints, topic, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
        producer = Producer(ClientConfiguration(endpoints, Credentials()), (topic,))
        producer.startup()
        try:
            for i in range(count):
                msg = Message()
                msg.topic = topic
                msg.body = f"python-{i}".encode()
                msg.tag = "py"
                print(f"id {producer.send(msg).message_id} python-{i}", flush=True)
        finally:
            producer.shutdown()
        print(f"ok send: {count} sent", flush=True)
    elif mode == "receive" and len(sys.argv) == 6:
        endpoints, topic, group, count = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
        consumer = SimpleConsumer(ClientConfiguration(endpoints, Credentials()), group,
                                  {topic: FilterExpression("*")}, await_duration=3)
        consumer.startup()
        got = {}
        try:
            deadline = time.time() + 90
            while len(got) < count and time.time() < deadline:
                for m in consumer.receive(16, 30):
                    body = m.body.decode()
                    if body.startswith("java-"):
                        origin = (m.properties or {}).get("origin", "-")
                        keys = ",".join(m.keys or []) or "-"
                        got[body] = f"{m.message_id} {body} {m.tag} {keys} {origin}"
                    consumer.ack(m)
        finally:
            consumer.shutdown()
        for line in sorted(got.values()):
            print(f"id {line}", flush=True)
        if len(got) < count:
            print(f"FAIL receive: {len(got)} of {count} received", flush=True)
            sys.exit(1)
        print(f"ok receive: {count} received", flush=True)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
