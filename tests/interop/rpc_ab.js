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

const { autobahn, fmt, harness, sleep } = require('./ab_common');

const h = harness('rpc-js', { timeoutMs: 30000 });
const { check, connect, die, expectError } = h;

async function main() {
  h.step = 'connect';
  const A = await connect('A'); // callee
  const B = await connect('B'); // caller
  const a = A.session;
  const b = B.session;

  h.step = 'progressive results';
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

  h.step = 'timeout';
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

  h.step = 'cancel';
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

  h.step = 'caller identification';
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

  h.step = 'shared registration';
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

  h.step = 'plain call after the late answers';
  await sleep(1600); // the slow and canceled invocations answer now; the router drops those answers
  await a.register('rpc.js.add', (args) => args[0] + args[1]);
  check((await b.call('rpc.js.add', [2, 3])) === 5, 'plain call');

  h.finish([A, B, C, D]);
}

h.run(main);
