#!/usr/bin/env node
// Interoperability check of a WAMP router against wampy.js (WebSocket).
//
// Usage: node wampy_js.mjs ws://127.0.0.1:PORT/ws json|msgpack|cbor
//
// Opens sessions A and B (consecutive connections, so with --shards 2 they
// live on different shards) plus a session C that uses another serializer,
// and checks RPC (args, kwargs, both, errors, unknown procedure, duplicate
// registration), PubSub (acknowledged, in order, publisher exclusion), binary
// payloads and transcoding between serializers. Exits non-zero with a reason
// on the first failure; prints "OK wampy <url> <serializer>" on success.
//
// What wampy.js does that shapes the checks:
//  * publish() always asks for acknowledge, and resolves with the publication id;
//  * exclude_me is only sent when true, so only the default (the publisher
//    does not get its own events) can be checked;
//  * msgpack (msgpackr) and cbor (cbor-x) send Buffers as binary and decode
//    binary as Uint8Array; cbor-x writes a Uint8Array as tag 64 (typed array)
//    on a byte string, so echoing received bytes back checks that form too;
//  * json does no binary conversion: binary from the router arrives as the raw
//    WAMP JSON form, "\u0000" followed by base64, and is checked as such in the
//    mixed-serializer part.

import { Wampy } from 'wampy';
import { JsonSerializer } from 'wampy/JsonSerializer.js';
import { MsgpackSerializer } from 'wampy/MsgpackSerializer.js';
import { CborSerializer } from 'wampy/CborSerializer.js';
import WebSocket from 'ws';
import { deepEq, isBytes } from './wampy_common.mjs';

const TIMEOUT_MS = 20000;
const N_EVENTS = 100;

const url = process.argv[2];
const serName = process.argv[3];
let step = 'start';
let closing = false;

function die(msg) {
  process.stdout.write(`FAIL wampy ${url} ${serName}: ${msg}\n`);
  process.exit(1);
}

if (!url || !['json', 'msgpack', 'cbor'].includes(serName)) {
  process.stderr.write('usage: node wampy_js.mjs URL json|msgpack|cbor\n');
  process.exit(2);
}

process.on('unhandledRejection', (e) => die(`unhandled rejection: ${fmt(e)}`));
process.on('uncaughtException', (e) => die(`uncaught exception: ${fmt(e)}`));
const timer = setTimeout(() => die(`global timeout after ${TIMEOUT_MS} ms (step: ${step})`), TIMEOUT_MS);

function fmt(v) {
  if (v && v.errorUri !== undefined) {
    return `${v.name}(${v.errorUri}, ${show(v.argsList)}, ${show(v.argsDict)})`;
  }
  if (v instanceof Error) return v.stack || String(v);
  return show(v);
}

function makeSerializer(name) {
  switch (name) {
    case 'json': return new JsonSerializer();
    case 'msgpack': return new MsgpackSerializer();
    case 'cbor': return new CborSerializer();
    default: return die(`unknown serializer ${name}`);
  }
}

async function connect(name, ser) {
  const w = new Wampy(url, {
    realm: 'realm1',
    ws: WebSocket,
    serializer: makeSerializer(ser),
    autoReconnect: false,
    onClose: () => { if (!closing) die(`session ${name} closed unexpectedly (step: ${step})`); },
    onError: (e) => die(`session ${name}: ${fmt(e)} (step: ${step})`),
  });
  try {
    await w.connect();
  } catch (e) {
    die(`session ${name} could not open: ${fmt(e)}`);
  }
  // wampy.js keeps the socket private; the negotiated subprotocol is on it.
  const negotiated = w._ws && w._ws.protocol;
  if (negotiated !== `wamp.2.${ser}`) die(`session ${name}: negotiated ${negotiated}, wanted wamp.2.${ser}`);
  // msgpackr and cbor-x decode integers above 2^32 sent as 64-bit ones (as every router
  // sends its random ids) as BigInt.
  const id = w.getSessionId();
  if (!isId(id)) die(`session ${name}: session id ${show(id)}`);
  return w;
}

function isId(v) {
  return (Number.isInteger(v) && v > 0) || (typeof v === 'bigint' && v > 0n && v <= 2n ** 53n);
}

function show(v) {
  const s = JSON.stringify(v, (k, x) => {
    if (typeof x === 'bigint') return `${x}n`;
    if (x instanceof Uint8Array && !Buffer.isBuffer(x)) x = Buffer.from(x).toJSON();
    if (x && x.type === 'Buffer' && Array.isArray(x.data)) {
      return `<bytes ${x.data.length}: ${Buffer.from(x.data).toString('hex').slice(0, 32)}...>`;
    }
    return x;
  });
  return s !== undefined && s.length > 400 ? s.slice(0, 400) + '...' : s;
}

function check(cond, msg) {
  if (!cond) die(`${step}: ${msg}`);
}

function checkEq(got, want, what) {
  if (!deepEq(got, want)) die(`${step}: ${what}: got ${show(got)}, want ${show(want)}`);
}

async function expectError(promise, uri, what) {
  let res;
  try {
    res = await promise;
  } catch (e) {
    if (!e || e.errorUri === undefined) die(`${step}: ${what}: expected error ${uri}, got ${fmt(e)}`);
    checkEq(e.errorUri, uri, `${what}: error URI`);
    return e;
  }
  return die(`${step}: ${what}: expected error ${uri}, got success ${show(res)}`);
}

// Resolves when pred() becomes true (checked after every notification).
function waiter() {
  let wake = () => {};
  return {
    notify() { wake(); },
    async until(pred) {
      while (!pred()) {
        await new Promise((r) => { wake = r; });
      }
    },
  };
}

const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const empty = Buffer.alloc(0);
const unicode = 'héllo ☃';

function wampJsonBinary(buf) {
  return '\u0000' + Buffer.from(buf).toString('base64');
}

// The payload of a RESULT, EVENT or INVOCATION as [args, kwargs], absent ones as [] and {}.
function payload(d) {
  return [d.argsList || [], d.argsDict || {}];
}

async function rpc(a, b) {
  step = 'register';
  await a.register('com.wampy.add2', ({ argsList }) => argsList[0] + argsList[1]);
  await a.register('com.wampy.kw', ({ argsList, argsDict }) => {
    const args = argsList || [];
    const kwargs = argsDict || {};
    return { argsList: [args.length, ...args], argsDict: { echo: kwargs, keys: Object.keys(kwargs).sort() } };
  });
  await a.register('com.wampy.oops', () => {
    // wampy.js sends a thrown object with an error URI as the ERROR of the invocation.
    throw { error: 'com.wampy.oops', argsList: [1], argsDict: { x: 2 } };
  });
  const seen = { last: null };
  await a.register('com.wampy.echo', ({ argsList, argsDict }) => {
    seen.last = [argsList || [], argsDict || {}];
    return { argsList: argsList || [], argsDict: argsDict || {} };
  });

  step = 'call add2';
  checkEq(payload(await b.call('com.wampy.add2', [2, 3])), [[5], {}], 'add2(2, 3)');
  checkEq(payload(await b.call('com.wampy.add2', [40.5, 1.5])), [[42], {}], 'add2(40.5, 1.5)');
  checkEq(payload(await b.call('com.wampy.add2', ['foo', 'bar'])), [['foobar'], {}], 'add2("foo", "bar")');

  step = 'call kw (positional)';
  checkEq(payload(await b.call('com.wampy.kw', [1, 'two', [3], { four: 4 }])),
    [[4, 1, 'two', [3], { four: 4 }], { echo: {}, keys: [] }], 'kw positional');

  step = 'call kw (kwargs)';
  const kw = { x: 1, y: 'z', nested: { list: [1, 2, null, true] } };
  checkEq(payload(await b.call('com.wampy.kw', kw)),
    [[0], { echo: kw, keys: ['nested', 'x', 'y'] }], 'kw kwargs');

  step = 'call kw (args and kwargs)';
  checkEq(payload(await b.call('com.wampy.kw', { argsList: [unicode], argsDict: { u: unicode } })),
    [[1, unicode], { echo: { u: unicode }, keys: ['u'] }], 'kw both');

  step = 'call unknown procedure';
  await expectError(b.call('com.wampy.does_not_exist', [1]), 'wamp.error.no_such_procedure', 'unknown procedure');

  step = 'callee error';
  const e = await expectError(b.call('com.wampy.oops', []), 'com.wampy.oops', 'callee error');
  checkEq([e.argsList, e.argsDict], [[1], { x: 2 }], 'callee error payload');

  step = 'duplicate registration';
  await expectError(b.register('com.wampy.add2', () => 0), 'wamp.error.procedure_already_exists', 'register from B');
  checkEq(payload(await b.call('com.wampy.add2', [1, 1])), [[2], {}], 'add2 still served by A');
  return seen;
}

async function pubsub(a, b, c) {
  step = 'subscribe';
  const gotA = [];
  const gotB = [];
  const wA = waiter();
  const wB = waiter();
  await a.subscribe('com.wampy.topic', (d) => { gotA.push(payload(d)); wA.notify(); });
  await b.subscribe('com.wampy.topic', (d) => { gotB.push(payload(d)); wB.notify(); });

  step = 'publish 100 acknowledged';
  const ids = new Set();
  for (let i = 0; i < N_EVENTS; i++) {
    const pub = await b.publish('com.wampy.topic', { argsList: [i], argsDict: { seq: i } });
    check(pub && isId(pub.publicationId),
      `publish ${i}: expected a publication id, got ${show(pub)}`);
    ids.add(pub.publicationId);
  }
  check(ids.size === N_EVENTS, `publication ids not distinct: ${ids.size} distinct of ${N_EVENTS}`);

  step = 'receive on A';
  await wA.until(() => gotA.length >= N_EVENTS);
  for (let i = 0; i < N_EVENTS; i++) {
    checkEq(gotA[i], [[i], { seq: i }], `event ${i} on A (in order)`);
  }

  step = 'publisher exclusion';
  // B published everything above and must have got none of it: the first event
  // it gets is one that C publishes afterwards (B's own events would have been
  // queued for it before B's PUBLISHED).
  await c.publish('com.wampy.topic', ['marker']);
  await wB.until(() => gotB.length >= 1);
  await wA.until(() => gotA.length >= N_EVENTS + 1);
  checkEq(gotB, [[['marker'], {}]], 'B (the publisher) gets only the later event of C');
  checkEq(gotA[N_EVENTS], [['marker'], {}], 'the event of C on A');
}

async function binary(a, b, seen) {
  step = 'binary RPC';
  const bargs = [allBytes, empty, 'text', new Uint8Array([7, 8, 9])];
  const bkw = { b: allBytes, e: empty, nested: { x: [allBytes] } };
  const r = await b.call('com.wampy.echo', { argsList: bargs, argsDict: bkw });
  checkEq(payload(r), [bargs, bkw], 'binary echo');
  checkEq(seen.last, [bargs, bkw], 'binary as the callee saw it');
  for (const v of [...r.argsList.slice(0, 2), r.argsList[3]]) {
    check(isBytes(v), `echoed binary arrived as ${show(v)}`);
  }

  step = 'binary PubSub';
  const got = [];
  const w = waiter();
  await a.subscribe('com.wampy.bin', (d) => { got.push(payload(d)); w.notify(); });
  await b.publish('com.wampy.bin', { argsList: bargs, argsDict: bkw });
  await w.until(() => got.length >= 1);
  checkEq(got[0], [bargs, bkw], 'binary event on A');
}

async function mixed(a, c, otherSer, seen) {
  step = 'mixed PubSub';
  const got = [];
  const w = waiter();
  await a.subscribe('com.wampy.mixed', (d) => { got.push(payload(d)); w.notify(); });
  // What C sends, and what A (serName) must see.
  let send, want;
  if (otherSer === 'json') {
    // C speaks json: binary goes as "\u0000"+base64, A (msgpack/cbor) gets bytes.
    send = [[wampJsonBinary(allBytes), unicode, wampJsonBinary(empty)], { b: wampJsonBinary(allBytes), u: unicode, n: 7 }];
    want = [[allBytes, unicode, empty], { b: allBytes, u: unicode, n: 7 }];
  } else {
    // C speaks msgpack (Buffers), A is the json session: it sees the raw form.
    send = [[allBytes, unicode, empty], { b: allBytes, u: unicode, n: 7 }];
    want = [[wampJsonBinary(allBytes), unicode, wampJsonBinary(empty)], { b: wampJsonBinary(allBytes), u: unicode, n: 7 }];
  }
  await c.publish('com.wampy.mixed', { argsList: send[0], argsDict: send[1] });
  await w.until(() => got.length >= 1);
  checkEq(got[0], want, `event from ${otherSer} session C on ${serName} session A`);

  step = 'mixed RPC';
  checkEq(payload(await c.call('com.wampy.add2', [20, 22])), [[42], {}], 'add2 called from C');
  // C -> A -> C through two transcodings gives back what C sent.
  const r = await c.call('com.wampy.echo', { argsList: send[0], argsDict: send[1] });
  checkEq(payload(r), send, 'echo from C');
  checkEq(seen.last, want, `invocation from ${otherSer} session C as seen by ${serName} session A`);
}

async function main() {
  const otherSer = serName === 'json' ? 'msgpack' : 'json';
  step = 'connect A';
  const a = await connect('A', serName);
  step = 'connect B';
  const b = await connect('B', serName);
  step = `connect C (${otherSer})`;
  const c = await connect('C', otherSer);

  const seen = await rpc(a, b);
  await pubsub(a, b, c);
  if (serName !== 'json') await binary(a, b, seen);
  await mixed(a, c, otherSer, seen);

  step = 'close';
  closing = true;
  for (const w of [c, b, a]) await w.disconnect();
  clearTimeout(timer);
  process.stdout.write(`OK wampy ${url} ${serName}\n`);
  process.exit(0);
}

main().catch((e) => die(`${step}: ${fmt(e)}`));
