#!/usr/bin/env node
// The meta API and testaments against autobahn-js (WebSocket).
//
// Usage: node meta_ab.js ws://127.0.0.1:PORT/ws json|msgpack|cbor
//
// Consecutive connections land on different shards of a --shards 2 router.
// Checks wamp.session.count/get, wamp.session.on_join from another shard,
// wamp.session.kill (closed with wamp.close.killed) and a testament published
// after the session's transport closes without GOODBYE, and the event history of a prefix
// subscription (the router keeps prefix:com.metajs.hist) filled from both shards.
// Prints "OK meta-js <url> <serializer>" on success.

'use strict';

const { collector, harness } = require('./ab_common');

const h = harness('meta-js', { timeoutMs: 20000 });
const { check } = h;
// A session here may be closed on purpose (killed, or dropped for its testament); `left` resolves
// with the close details when it ends.
const connect = (name) => h.connect(name, { dieOnClose: false });

async function main() {
  h.step = 'connect';
  const a = await connect('A');
  const b = await connect('B');
  const sa = a.session;
  h.step = 'count and get';
  check(await sa.call('wamp.session.count') === 2, 'count is not 2');
  const got = await sa.call('wamp.session.get', [b.session.id]);
  check(got.session === b.session.id && got.authrole === 'anonymous', `get: ${JSON.stringify(got)}`);

  h.step = 'on_join from another shard';
  const joins = collector();
  await sa.subscribe('wamp.session.on_join', (args) => joins.push(args[0].session));
  const c = await connect('C');
  await joins.until(1);
  check(joins.items.includes(c.session.id), `on_join: ${joins.items}`);

  h.step = 'kill';
  const cId = c.session.id;
  await sa.call('wamp.session.kill', [cId], { message: 'bye' });
  const details = await c.left;
  check(details.reason === 'wamp.close.killed', `kill reason: ${JSON.stringify(details)}`);
  check(details.message === 'bye', `kill message: ${JSON.stringify(details)}`);

  h.step = 'testament';
  const d = await connect('D');
  const will = collector();
  await sa.subscribe('com.metajs.will', (args, kwargs) => will.push([args, kwargs]));
  await d.session.call('wamp.session.add_testament', ['com.metajs.will', ['gone'], { n: 1 }]);
  d.session._socket.close(1000, 'drop'); // the transport ends; no GOODBYE was sent
  await will.until(1);
  check(will.items[0][0][0] === 'gone' && will.items[0][1].n === 1, `testament: ${JSON.stringify(will.items)}`);

  h.step = 'event history';
  const sub = await b.session.subscribe('com.metajs.hist', () => {}, { match: 'prefix' });
  const ack = { acknowledge: true };
  const p1 = await sa.publish('com.metajs.hist.x', [1], {}, ack);
  const p2 = await b.session.publish('com.metajs.hist.y', [2], {}, ack);
  const evs = await sa.call('wamp.subscription.get_events', [sub.id], { limit: 5 });
  check(evs.length === 2 && evs[0].args[0] === 1 && evs[1].args[0] === 2, `history: ${JSON.stringify(evs)}`);
  check(evs[0].publication === p1.id && evs[1].publication === p2.id, `history ids: ${JSON.stringify(evs)}`);
  check(evs[1].details.topic === 'com.metajs.hist.y', `history topic: ${JSON.stringify(evs[1])}`);
  const last = await b.session.call('wamp.subscription.get_events', [sub.id], { reverse: true, limit: 1 });
  check(last.length === 1 && last[0].args[0] === 2, `newest: ${JSON.stringify(last)}`);

  h.finish([a, b]);
}

h.run(main);
