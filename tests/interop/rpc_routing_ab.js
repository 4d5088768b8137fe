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

const autobahn = require('autobahn');

const TIMEOUT_MS = 30000;
const url = process.argv[2];
const serName = process.argv[3];
let step = 'start';
let closing = false;

function fmt(v) {
  if (v instanceof autobahn.Error) return `autobahn.Error(${v.error}, ${JSON.stringify(v.args)})`;
  if (v instanceof Error) return v.stack || String(v);
  try {
    return JSON.stringify(v);
  } catch (_) {
    return String(v);
  }
}

function die(msg) {
  process.stdout.write(`FAIL routing-js ${url} ${serName}: ${step}: ${msg}\n`);
  process.exit(1);
}

function check(cond, what) {
  if (!cond) die(what);
}

process.on('unhandledRejection', (e) => die(`unhandled rejection: ${fmt(e)}`));
process.on('uncaughtException', (e) => die(`uncaught exception: ${fmt(e)}`));
setTimeout(() => die(`global timeout after ${TIMEOUT_MS} ms`), TIMEOUT_MS);

function makeSerializer(name) {
  switch (name) {
    case 'json':
      return new autobahn.serializer.JSONSerializer();
    case 'msgpack':
      return new autobahn.serializer.MsgpackSerializer();
    case 'cbor':
      return new autobahn.serializer.CBORSerializer();
    default:
      return die(`unknown serializer ${name}`);
  }
}

function connect(name) {
  return new Promise((resolve, reject) => {
    const conn = new autobahn.Connection({
      url,
      realm: 'realm1',
      serializers: [makeSerializer(serName)],
      max_retries: 0,
      retry_if_unreachable: false,
    });
    let opened = false;
    conn.onopen = (session, details) => {
      opened = true;
      resolve({ conn, session, details });
    };
    conn.onclose = (reason, details) => {
      if (!opened) reject(new Error(`session ${name} could not open: ${reason} ${fmt(details)}`));
      else if (!closing) die(`session ${name} closed unexpectedly: ${reason} ${fmt(details)}`);
      return true;
    };
    conn.open();
  });
}

async function expectError(promise, uri) {
  try {
    const res = await promise;
    die(`expected ${uri}, got ${fmt(res)}`);
  } catch (e) {
    check(e instanceof autobahn.Error && e.error === uri, `expected ${uri}, got ${fmt(e)}`);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  step = 'connect';
  const [A, B, C, D] = [await connect('A'), await connect('B'), await connect('C'), await connect('D')];
  const [a, b, c, d] = [A.session, B.session, C.session, D.session];

  step = 'least_loaded';
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

  step = 'sharded registration (rkey)';
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

  step = 'call rerouting';
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

  closing = true;
  for (const x of [A, B, C, D]) x.conn.close();
  process.stdout.write(`OK routing-js ${url} ${serName}\n`);
  process.exit(0);
}

main().catch((e) => die(fmt(e)));
