#!/usr/bin/env node
// Advanced RPC against a WAMP router with autobahn-js (WebSocket).
//
// Usage: node rpc_ab.js ws://127.0.0.1:PORT/ws json|msgpack|cbor
//
// Opens a callee session A and a caller session B (consecutive connections,
// so with --shards 2 they live on different shards) and checks progressive
// call results, router-enforced call timeouts (`timeout` in milliseconds),
// call canceling, caller identification (`disclose_me`) and shared
// registration (round-robin).
//
// autobahn-js 22.11 rejects a canceled call locally unless the mode is
// "kill", and then treats the router's ERROR for that call (which the spec
// requires for "skip" and "killnowait") as a protocol violation; so the
// cancel check uses mode "kill". Its callee does not announce call_canceling,
// so the router treats that as "skip": no INTERRUPT, ERROR at once.
// Prints "OK rpc-js <url> <serializer>" on success.

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
  process.stdout.write(`FAIL rpc-js ${url} ${serName}: ${step}: ${msg}\n`);
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
  const A = await connect('A'); // callee
  const B = await connect('B'); // caller
  const a = A.session;
  const b = B.session;

  step = 'progressive results';
  await a.register('rpc.js.stream', (args, kwargs, details) => {
    check(typeof details.progress === 'function', 'the callee was not told to stream');
    for (let i = 0; i < args[0]; i++) details.progress([i], { tag: 'p' });
    return 'done';
  });
  const got = [];
  const res = await b.call('rpc.js.stream', [20], {}, { receive_progress: true }).then(
    (r) => r,
    (e) => die(fmt(e)),
    (p) => got.push(p),
  );
  check(res === 'done', `final result ${fmt(res)}`);
  // A progress value with kwargs arrives as an autobahn.Result {args, kwargs}.
  check(JSON.stringify(got.map((p) => p.args[0])) === JSON.stringify([...Array(20).keys()]), `progress results ${fmt(got)}`);
  check(got.every((p) => p.kwargs.tag === 'p'), `progress kwargs ${fmt(got)}`);

  step = 'timeout';
  let slowCalls = 0;
  await a.register('rpc.js.slow', async () => {
    slowCalls += 1;
    await sleep(1500);
    return 'late';
  });
  const t0 = Date.now();
  await expectError(b.call('rpc.js.slow', [], {}, { timeout: 300 }), 'wamp.error.timeout');
  const took = Date.now() - t0;
  check(took >= 250 && took < 1400, `timed out after ${took} ms`);
  check(slowCalls === 1, 'the callee got the call');

  step = 'cancel';
  let started;
  const running = new Promise((r) => (started = r));
  await a.register('rpc.js.cancellable', async () => {
    started();
    await sleep(1500);
    return 'late';
  });
  const call = b.call('rpc.js.cancellable');
  await running;
  call.cancel({ mode: 'kill' });
  await expectError(call, 'wamp.error.canceled');

  step = 'caller identification';
  await a.register('rpc.js.who', (args, kwargs, details) =>
    // msgpack5 cannot encode undefined: absent details become null.
    [details.caller, details.caller_authid, details.caller_authrole].map((x) => (x === undefined ? null : x)),
  );
  const who = await b.call('rpc.js.who', [], {}, { disclose_me: true });
  check(
    JSON.stringify(who) === JSON.stringify([b.id, B.details.authid, B.details.authrole]),
    `disclosed caller ${fmt(who)}, caller ${b.id} ${fmt(B.details)}`,
  );
  const anon = await b.call('rpc.js.who', [], {}, {});
  check(anon.every((x) => x === null), `undisclosed caller ${fmt(anon)}`);

  step = 'shared registration';
  // Callees A (shard 0) and D (shard 1), callers B (shard 1) and C (shard 0): every caller shard
  // rotates over both callees.
  const C = await connect('C');
  const D = await connect('D');
  await a.register('rpc.js.shared', () => 'A', { invoke: 'roundrobin' });
  await D.session.register('rpc.js.shared', () => 'D', { invoke: 'roundrobin' });
  for (const caller of [b, C.session]) {
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await caller.call('rpc.js.shared'));
    check(JSON.stringify(got.sort()) === '["A","A","D","D"]', `round-robin answers ${fmt(got)}`);
  }
  await expectError(
    C.session.register('rpc.js.shared', () => 'C', { invoke: 'first' }),
    'wamp.error.procedure_exists_with_different_invocation_policy',
  );

  step = 'plain call after the late answers';
  await sleep(1600); // the slow and canceled invocations answer now; the router drops those answers
  await a.register('rpc.js.add', (args) => args[0] + args[1]);
  check((await b.call('rpc.js.add', [2, 3])) === 5, 'plain call');

  closing = true;
  for (const x of [A, B, C, D]) x.conn.close();
  process.stdout.write(`OK rpc-js ${url} ${serName}\n`);
  process.exit(0);
}

main().catch((e) => die(fmt(e)));
