#!/usr/bin/env node
// Advanced PubSub interop with autobahn-js: subscriber black/white listing, publisher
// identification and event retention, sessions on different shards.
//
// Usage: node pubsub_ab.js ws://127.0.0.1:PORT/ws json|msgpack|cbor
//
// Publisher P and subscribers S1..S3 are consecutive connections (alternating shards with
// --shards 2); late subscribers L0, L1 come after the retained publications. Prints
// "OK pubsub-js <url> <serializer>" on success.

'use strict';

const { collector, harness } = require('./ab_common');

const h = harness('pubsub-js', { timeoutMs: 20000 });
const { eq, serName } = h;
const connect = (name, ser) => h.connect(name, { ser });

async function main() {
  h.step = 'connect';
  const p = await connect('P', serName);
  const subs = [];
  for (const n of [1, 2, 3]) subs.push(await connect(`S${n}`, serName));
  const got = subs.map(() => collector());
  for (let i = 0; i < subs.length; i++) {
    await subs[i].session.subscribe('com.pubsub.js', (args, kw, d) => got[i].push([args[0], d.publisher || null]));
  }
  const sid = subs.map((s) => s.session.id);
  const ack = { acknowledge: true };

  h.step = 'publish with lists';
  await p.session.publish('com.pubsub.js', ['x1'], {}, { ...ack, exclude: [sid[0]] });
  await p.session.publish('com.pubsub.js', ['x2'], {}, { ...ack, eligible: [sid[0], sid[2]] });
  await p.session.publish('com.pubsub.js', ['x3'], {}, { ...ack, exclude_authid: [subs[1].authid] });
  await p.session.publish('com.pubsub.js', ['x4'], {}, { ...ack, eligible_authrole: ['anonymous'], exclude: [sid[2]] });
  await p.session.publish('com.pubsub.js', ['x5'], {}, { ...ack, disclose_me: true });
  await p.session.publish('com.pubsub.js', ['end'], {}, ack);
  const want = [
    [['x2', null], ['x3', null], ['x4', null], ['x5', p.session.id], ['end', null]],
    [['x1', null], ['x4', null], ['x5', p.session.id], ['end', null]],
    [['x1', null], ['x2', null], ['x3', null], ['x5', p.session.id], ['end', null]],
  ];
  for (let i = 0; i < subs.length; i++) {
    await got[i].until(want[i].length);
    eq(got[i].items, want[i], `events of S${i + 1}`);
  }

  h.step = 'publish retained';
  await p.session.publish('com.pubsub.js.ret', ['old'], {}, { ...ack, retain: true });
  await p.session.publish('com.pubsub.js.ret', ['new'], {}, { ...ack, retain: true, disclose_me: true });
  for (const n of [0, 1]) {
    h.step = `get_retained (L${n})`;
    const late = await connect(`L${n}`, serName === 'json' ? 'msgpack' : 'json');
    const ev = collector();
    await late.session.subscribe('com.pubsub.js.ret',
      (args, kw, d) => ev.push([args[0], d.retained, d.publisher || null]), { get_retained: true });
    await ev.until(1);
    eq(ev.items, [['new', true, p.session.id]], 'retained event');
    await p.session.publish('com.pubsub.js.ret', [`live${n}`], {}, ack);
    await ev.until(2);
    eq(ev.items[1], [`live${n}`, false, null], 'live event after the retained one');
  }
  h.finish();
}

h.run(main);
