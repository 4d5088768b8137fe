#!/usr/bin/env node
// Call routing beyond the plain invocation policies, with autobahn-js (WebSocket): the
// `least_loaded` policy, sharded registration (`rkey` in the CALL options) and call rerouting
// (a callee's `wamp.error.unavailable`). autobahn-js passes these options through unchanged.
//
// Usage: node rpc_routing_ab.js ws://127.0.0.1:PORT/ws json|msgpack|cbor
//
// Sessions A, B, C, D are consecutive connections, so with --shards 2 A and C live on one shard
// and B and D on the other; the callees are A and D, the callers B and C.
// Prints "OK routing-js <url> <serializer>" on success.

'use strict';

const { autobahn, fmt, harness, sleep } = require('./ab_common');

const h = harness('routing-js', { timeoutMs: 30000 });
const { check, connect, expectError } = h;

async function main() {
  h.step = 'connect';
  const [A, B, C, D] = [await connect('A'), await connect('B'), await connect('C'), await connect('D')];
  const [a, b, c, d] = [A.session, B.session, C.session, D.session];

  h.step = 'least_loaded';
  // A holds every call until released; D answers at once. With one call held by A, every
  // further call goes to D, whichever shard it is on.
  let release;
  const released = new Promise((r) => (release = r));
  let heldByA = 0;
  await a.register('routing.js.ll', async () => {
    heldByA += 1;
    await released;
    return 'A';
  }, { invoke: 'least_loaded' });
  await d.register('routing.js.ll', () => 'D', { invoke: 'least_loaded' });
  const first = [b.call('routing.js.ll'), b.call('routing.js.ll')];
  for (let i = 0; i < 50 && heldByA === 0; i++) await sleep(20);
  check(heldByA === 1, `A got ${heldByA} of the first two calls`);
  const later = [];
  for (let i = 0; i < 6; i++) later.push(await b.call('routing.js.ll'));
  check(later.every((x) => x === 'D'), `calls while A is busy went to ${fmt(later)}`);
  release();
  const firstGot = (await Promise.all(first)).sort();
  check(JSON.stringify(firstGot) === '["A","D"]', `the first two calls ${fmt(firstGot)}`);
  check(heldByA === 1, `A got ${heldByA} calls`);

  h.step = 'sharded registration (rkey)';
  await a.register('routing.js.sharded', () => 'A', { invoke: 'roundrobin' });
  await d.register('routing.js.sharded', () => 'D', { invoke: 'roundrobin' });
  const owners = new Set();
  for (let k = 0; k < 12; k++) {
    const got = [];
    for (const caller of [b, c, b, c]) got.push(await caller.call('routing.js.sharded', [], {}, { rkey: `key-${k}` }));
    check(got.every((x) => x === got[0]), `key-${k} reached ${fmt(got)}`);
    owners.add(got[0]);
  }
  check(owners.size === 2, `12 keys all reached ${fmt([...owners])}`);

  h.step = 'call rerouting';
  let refused = 0;
  await a.register('routing.js.reroute', () => {
    refused += 1;
    throw new autobahn.Error('wamp.error.unavailable');
  }, { invoke: 'roundrobin' });
  await d.register('routing.js.reroute', () => 'D', { invoke: 'roundrobin' });
  for (const caller of [b, c]) {
    for (let i = 0; i < 3; i++) {
      const got = await caller.call('routing.js.reroute');
      check(got === 'D', `a rerouted call answered ${fmt(got)}`);
    }
  }
  check(refused >= 2, `A refused ${refused} calls`);
  const no = () => {
    throw new autobahn.Error('wamp.error.unavailable');
  };
  await a.register('routing.js.none', no, { invoke: 'random' });
  await d.register('routing.js.none', no, { invoke: 'random' });
  await expectError(b.call('routing.js.none'), 'wamp.error.no_available_callee');
  await expectError(c.call('routing.js.none'), 'wamp.error.no_available_callee');

  h.finish([A, B, C, D]);
}

h.run(main);
