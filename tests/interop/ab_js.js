#!/usr/bin/env node
// Interoperability check of a WAMP router against autobahn-js (WebSocket).
//
// Usage: node ab_js.js ws://127.0.0.1:PORT/ws json|msgpack|cbor
//
// Opens sessions A and B (consecutive connections, so with --shards 2 they
// live on different shards) plus a session C that uses another serializer,
// and checks RPC, errors, PubSub (acknowledged, in order, publisher
// exclusion), binary payloads and transcoding between serializers.
// Exits non-zero with a reason on the first failure; prints
// "OK js <url> <serializer>" on success.
//
// Binary values and autobahn-js:
//  * msgpack and cbor: Node Buffers are sent as native binary (bin / byte
//    string) and received as Buffers, so binary round trips are checked.
//  * json: autobahn-js does no binary conversion at all. A Buffer would be
//    JSON.stringify'd into {"type":"Buffer","data":[...]}, and a binary value
//    from the router arrives as the raw WAMP JSON form, the string "\u0000"
//    followed by base64. So with json only that raw string form is checked,
//    and only in the mixed-serializer part (a msgpack peer sends a Buffer, the
//    json session must see "\u0000" + base64, and the other way round).

'use strict';

const autobahn = require('autobahn');

const TIMEOUT_MS = 20000;
const N_EVENTS = 100;

const url = process.argv[2];
const serName = process.argv[3];

function die(msg) {
  process.stdout.write(`FAIL js ${url} ${serName}: ${msg}\n`);
  process.exit(1);
}

if (!url || !['json', 'msgpack', 'cbor'].includes(serName)) {
  process.stderr.write('usage: node ab_js.js URL json|msgpack|cbor\n');
  process.exit(2);
}

// autobahn-js logs via console; keep its warnings but never let an unhandled
// rejection pass silently.
process.on('unhandledRejection', (e) => die(`unhandled rejection: ${fmt(e)}`));
process.on('uncaughtException', (e) => die(`uncaught exception: ${fmt(e)}`));

const timer = setTimeout(() => die(`global timeout after ${TIMEOUT_MS} ms (step: ${step})`), TIMEOUT_MS);

let step = 'start';

function fmt(v) {
  if (v instanceof autobahn.Error) {
    return `autobahn.Error(${v.error}, ${JSON.stringify(v.args)}, ${JSON.stringify(v.kwargs)})`;
  }
  if (v instanceof Error) return v.stack || String(v);
  try {
    return JSON.stringify(v, (k, x) => (typeof x === 'string' ? x : x));
  } catch (_) {
    return String(v);
  }
}

function makeSerializer(name) {
  switch (name) {
    case 'json':
      return new autobahn.serializer.JSONSerializer();
    case 'msgpack':
      if (!autobahn.serializer.MsgpackSerializer) die('autobahn-js has no msgpack serializer (msgpack5 missing?)');
      return new autobahn.serializer.MsgpackSerializer();
    case 'cbor':
      if (!autobahn.serializer.CBORSerializer) die('autobahn-js has no cbor serializer (cbor missing?)');
      return new autobahn.serializer.CBORSerializer();
    default:
      die(`unknown serializer ${name}`);
  }
}

function connect(name, ser) {
  return new Promise((resolve, reject) => {
    const conn = new autobahn.Connection({
      url,
      realm: 'realm1',
      serializers: [makeSerializer(ser)],
      max_retries: 0,
      retry_if_unreachable: false,
      // The deliberate com.interop.oops error is expected; report anything else.
      on_user_error: (err, msg) => {
        if (err instanceof autobahn.Error && err.error === 'com.interop.oops') return;
        process.stderr.write(`${name}: user error: ${msg} ${fmt(err)}\n`);
      },
    });
    let opened = false;
    conn.onopen = (session) => {
      opened = true;
      if (session._socket.info.protocol !== `wamp.2.${ser}`) {
        reject(new Error(`session ${name}: negotiated ${session._socket.info.protocol}, wanted wamp.2.${ser}`));
        return;
      }
      resolve({ conn, session });
    };
    conn.onclose = (reason, details) => {
      if (!opened) {
        reject(new Error(`session ${name} could not open: ${reason} ${fmt(details)}`));
      } else if (!closing) {
        die(`session ${name} closed unexpectedly: ${reason} ${fmt(details)}`);
      }
      return true; // never retry
    };
    conn.open();
  });
}

let closing = false;

function isBytes(v) {
  return Buffer.isBuffer(v) || v instanceof Uint8Array;
}

// Deep equality that treats Buffer/Uint8Array as byte strings.
function deepEq(a, b) {
  if (isBytes(a) || isBytes(b)) {
    return isBytes(a) && isBytes(b) && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => deepEq(x, b[i]));
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    if (!deepEq(ka, kb)) return false;
    return ka.every((k) => deepEq(a[k], b[k]));
  }
  return a === b;
}

function show(v) {
  const s = JSON.stringify(v, (k, x) => {
    if (x && x.type === 'Buffer' && Array.isArray(x.data)) return `<bytes ${x.data.length}: ${Buffer.from(x.data).toString('hex').slice(0, 32)}...>`;
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
    if (!(e instanceof autobahn.Error)) die(`${step}: ${what}: expected autobahn.Error ${uri}, got ${fmt(e)}`);
    checkEq(e.error, uri, `${what}: error URI`);
    return e;
  }
  die(`${step}: ${what}: expected error ${uri}, got success ${show(res)}`);
}

// Resolves when pred() becomes true (checked after every event).
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

async function main() {
  const binary = serName !== 'json';
  const otherSer = serName === 'json' ? 'msgpack' : 'json';

  step = 'connect A';
  const A = await connect('A', serName);
  step = 'connect B';
  const B = await connect('B', serName);
  const a = A.session;
  const b = B.session;

  // ---------------------------------------------------------------- RPC
  step = 'register';
  await a.register('com.interop.add2', (args) => args[0] + args[1]);
  await a.register('com.interop.kw', (args, kwargs) => {
    args = args || [];
    kwargs = kwargs || {};
    return new autobahn.Result([args.length].concat(args), {
      echo: kwargs,
      keys: Object.keys(kwargs).sort(),
    });
  });
  await a.register('com.interop.oops', () => {
    throw new autobahn.Error('com.interop.oops', [1], { x: 2 });
  });
  // Returns exactly what it got (args and kwargs).
  let lastEcho = null;
  await a.register('com.interop.echo', (args, kwargs) => {
    lastEcho = [args || [], kwargs || {}];
    return new autobahn.Result(args || [], kwargs || {});
  });

  step = 'call add2';
  checkEq(await b.call('com.interop.add2', [2, 3]), 5, 'add2(2, 3)');
  checkEq(await b.call('com.interop.add2', [40.5, 1.5]), 42, 'add2(40.5, 1.5)');
  checkEq(await b.call('com.interop.add2', ['foo', 'bar']), 'foobar', 'add2("foo", "bar")');

  step = 'call kw (positional)';
  let r = await b.call('com.interop.kw', [1, 'two', [3], { four: 4 }]);
  check(r instanceof autobahn.Result, `expected autobahn.Result, got ${show(r)}`);
  checkEq(r.args, [4, 1, 'two', [3], { four: 4 }], 'kw positional: args');
  checkEq(r.kwargs, { echo: {}, keys: [] }, 'kw positional: kwargs');

  step = 'call kw (kwargs)';
  r = await b.call('com.interop.kw', [], { x: 1, y: 'z', nested: { list: [1, 2, null, true] } });
  check(r instanceof autobahn.Result, `expected autobahn.Result, got ${show(r)}`);
  checkEq(r.args, [0], 'kw kwargs: args');
  checkEq(r.kwargs, { echo: { x: 1, y: 'z', nested: { list: [1, 2, null, true] } }, keys: ['nested', 'x', 'y'] }, 'kw kwargs: kwargs');

  step = 'call kw (args and kwargs)';
  r = await b.call('com.interop.kw', [unicode], { u: unicode });
  checkEq(r.args, [1, unicode], 'kw both: args');
  checkEq(r.kwargs, { echo: { u: unicode }, keys: ['u'] }, 'kw both: kwargs');

  step = 'call unknown procedure';
  await expectError(b.call('com.interop.does_not_exist', [1]), 'wamp.error.no_such_procedure', 'unknown procedure');

  step = 'callee error';
  const e = await expectError(b.call('com.interop.oops', []), 'com.interop.oops', 'callee error');
  checkEq(e.args, [1], 'callee error args');
  checkEq(e.kwargs, { x: 2 }, 'callee error kwargs');

  step = 'duplicate registration';
  await expectError(b.register('com.interop.add2', () => 0), 'wamp.error.procedure_already_exists', 'register from B');
  await expectError(a.register('com.interop.add2', () => 0), 'wamp.error.procedure_already_exists', 'register again from A');
  checkEq(await b.call('com.interop.add2', [1, 1]), 2, 'add2 still served by A');

  // ------------------------------------------------------------- PubSub
  step = 'subscribe';
  const gotA = [];
  const gotB = [];
  const wA = waiter();
  const wB = waiter();
  await a.subscribe('com.interop.topic', (args, kwargs) => { gotA.push([args, kwargs]); wA.notify(); });
  await b.subscribe('com.interop.topic', (args, kwargs) => { gotB.push([args, kwargs]); wB.notify(); });

  step = 'publish 100 acknowledged';
  const pubIds = new Set();
  for (let i = 0; i < N_EVENTS; i++) {
    const pub = await b.publish('com.interop.topic', [i], { seq: i }, { acknowledge: true });
    check(pub && typeof pub.id === 'number' && Number.isInteger(pub.id) && pub.id > 0,
      `publish ${i}: expected a publication id, got ${show(pub)}`);
    pubIds.add(pub.id);
  }
  check(pubIds.size === N_EVENTS, `publication ids not distinct: ${pubIds.size} distinct of ${N_EVENTS}`);

  step = 'publish exclude_me=false';
  const last = await b.publish('com.interop.topic', ['self'], { seq: -1 }, { acknowledge: true, exclude_me: false });
  check(last && typeof last.id === 'number', `expected a publication id, got ${show(last)}`);

  step = 'receive on A';
  await wA.until(() => gotA.length >= N_EVENTS + 1);
  for (let i = 0; i < N_EVENTS; i++) {
    checkEq(gotA[i], [[i], { seq: i }], `event ${i} on A (in order)`);
  }
  checkEq(gotA[N_EVENTS], [['self'], { seq: -1 }], 'exclude_me=false event on A');

  step = 'receive on B';
  // Events from one publisher reach a subscriber in order, so when the
  // exclude_me=false event arrives, any wrongly delivered earlier event
  // would already be there.
  await wB.until(() => gotB.length >= 1);
  checkEq(gotB, [[['self'], { seq: -1 }]], 'B (publisher) events: only the exclude_me=false one');

  // ---------------------------------------------------- binary payloads
  if (binary) {
    step = 'binary RPC';
    const bargs = [allBytes, empty, 'text'];
    const bkw = { b: allBytes, e: empty, nested: { x: [allBytes] } };
    r = await b.call('com.interop.echo', bargs, bkw);
    check(r instanceof autobahn.Result, `expected autobahn.Result, got ${show(r)}`);
    checkEq(r.args, bargs, 'binary echo args');
    checkEq(r.kwargs, bkw, 'binary echo kwargs');

    step = 'binary PubSub';
    const binA = [];
    const wbin = waiter();
    await a.subscribe('com.interop.bin', (args, kwargs) => { binA.push([args, kwargs]); wbin.notify(); });
    await b.publish('com.interop.bin', bargs, bkw, { acknowledge: true });
    await wbin.until(() => binA.length >= 1);
    checkEq(binA[0], [bargs, bkw], 'binary event on A');
  }
  // (json: see the header comment; binary is checked below via the mixed part)

  // -------------------------------------------------- mixed serializers
  step = `connect C (${otherSer})`;
  const C = await connect('C', otherSer);
  const c = C.session;

  step = 'mixed PubSub';
  const mixA = [];
  const wmix = waiter();
  await a.subscribe('com.interop.mixed', (args, kwargs) => { mixA.push([args, kwargs]); wmix.notify(); });
  // What C sends, and what A (serName) must see.
  let sendArgs, sendKw, wantArgs, wantKw;
  if (otherSer === 'json') {
    // C speaks json: binary goes as "\u0000"+base64, A (msgpack/cbor) gets bytes.
    sendArgs = [wampJsonBinary(allBytes), unicode, wampJsonBinary(empty)];
    sendKw = { b: wampJsonBinary(allBytes), u: unicode, n: 7 };
    wantArgs = [allBytes, unicode, empty];
    wantKw = { b: allBytes, u: unicode, n: 7 };
  } else {
    // C speaks msgpack (Buffers), A is the json session: it sees the raw form.
    sendArgs = [allBytes, unicode, empty];
    sendKw = { b: allBytes, u: unicode, n: 7 };
    wantArgs = [wampJsonBinary(allBytes), unicode, wampJsonBinary(empty)];
    wantKw = { b: wampJsonBinary(allBytes), u: unicode, n: 7 };
  }
  await c.publish('com.interop.mixed', sendArgs, sendKw, { acknowledge: true });
  await wmix.until(() => mixA.length >= 1);
  checkEq(mixA[0], [wantArgs, wantKw], `event from ${otherSer} session C on ${serName} session A`);

  step = 'mixed RPC';
  checkEq(await c.call('com.interop.add2', [20, 22]), 42, 'add2 called from C');
  r = await c.call('com.interop.kw', [unicode], { u: unicode });
  checkEq(r.args, [1, unicode], 'kw from C: args');
  checkEq(r.kwargs, { echo: { u: unicode }, keys: ['u'] }, 'kw from C: kwargs');
  // Round trip C -> A -> C through two transcodings must give back what C sent.
  r = await c.call('com.interop.echo', sendArgs, sendKw);
  checkEq(r.args, sendArgs, 'echo from C: args');
  checkEq(r.kwargs, sendKw, 'echo from C: kwargs');
  // And A saw the transcoded values.
  checkEq(lastEcho, [wantArgs, wantKw], `invocation from ${otherSer} session C as seen by ${serName} session A`);

  step = 'close';
  closing = true;
  for (const s of [C, B, A]) s.conn.close();
  clearTimeout(timer);
  process.stdout.write(`OK js ${url} ${serName}\n`);
  // Let the GOODBYEs go out, then leave.
  setTimeout(() => process.exit(0), 100);
}

main().catch((e) => die(`${step}: ${fmt(e)}`));
