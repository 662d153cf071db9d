// Compatibility check: the official RocketMQ 5 Node.js client (rocketmq-client-nodejs) sends
// COUNT messages to TOPIC, then a SimpleConsumer of GROUP (created by the caller before the
// sends) receives and acks every one of them.
//
// Run by the integration test `t32_group_start`; by hand:
//   NODE_PATH=$(tests/compat/node/setup.sh) node create_send_consume.js ENDPOINTS TOPIC GROUP COUNT
// Prints `ok node: ...` or `FAIL ...` and exits 1.
'use strict';
const { Producer, SimpleConsumer } = require('rocketmq-client-nodejs');

function fail(what) {
  console.log(`FAIL ${what}`);
  process.exit(1);
}

async function main() {
  const [endpoints, topic, group, countText] = process.argv.slice(2);
  const count = Number(countText);
  if (!endpoints || !topic || !group || !(count > 0)) {
    console.log('usage: create_send_consume.js ENDPOINTS TOPIC GROUP COUNT');
    process.exit(2);
  }
  const producer = new Producer({ endpoints, topic });
  await producer.startup();
  const sent = new Set();
  for (let i = 0; i < count; i++) {
    const receipt = await producer.send({ topic, tag: 'node', body: Buffer.from(`node-${i}`) });
    if (!receipt.messageId) fail(`send ${i}: no message id`);
    sent.add(receipt.messageId);
  }
  await producer.shutdown();
  console.log(`ok node producer: ${sent.size} messages sent`);

  const consumer = new SimpleConsumer({
    consumerGroup: group,
    endpoints,
    subscriptions: new Map().set(topic, '*'),
    awaitDuration: 3000,
  });
  await consumer.startup();
  const got = new Set();
  const deadline = Date.now() + 60000;
  while (got.size < sent.size && Date.now() < deadline) {
    for (const m of await consumer.receive(16, 30000)) {
      got.add(m.messageId);
      await consumer.ack(m);
    }
  }
  await consumer.shutdown();
  const missing = [...sent].filter((id) => !got.has(id));
  if (missing.length > 0) fail(`node consumer: ${missing.length} of ${sent.size} never received`);
  console.log(`ok node consumer: all ${sent.size} received`);
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
