#!/usr/bin/env node
// The dynamic authorizer with autobahn-js at both ends (WebSocket).
//
// Usage: node authorizer_ab.js ws://127.0.0.1:PORT/ws json|msgpack|cbor
//
// Same router configuration as authorizer_ab.py: realm "app" has no static
// permission and names the authorizer "com.example.authorize" in realm
// "auth". Session AUTH registers it; APP and APP2 (realm "app") are the next
// connections, so with --shards 2 APP is on the other shard than AUTH. The
// authorizer answers by the URI's last component ("open" true, "closed"
// false, "dict" allow+disclose, "once" allow without cache) and counts its
// invocations, which proves the cache.
// Prints "OK authorizer-js <url> <serializer>" on success.

'use strict';

const autobahn = require('autobahn');

const TIMEOUT_MS = 30000;
const NOT_AUTHORIZED = 'wamp.error.not_authorized';
const url = process.argv[2];
const serName = process.argv[3];
let step = 'start';
let closing = false;
const asked = new Map();
const seen = [];

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
  process.stdout.write(`FAIL authorizer-js ${url} ${serName}: ${step}: ${msg}\n`);
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

function connect(name, realm) {
  return new Promise((resolve, reject) => {
    const conn = new autobahn.Connection({
      url,
      realm,
      serializers: [makeSerializer(serName)],
      max_retries: 0,
      retry_if_unreachable: false,
    });
    let opened = false;
    conn.onopen = (session) => {
      opened = true;
      resolve({ conn, session });
    };
    conn.onclose = (reason, details) => {
      if (!opened) reject(new Error(`session ${name} could not open: ${reason} ${fmt(details)}`));
      else if (!closing) die(`session ${name} closed unexpectedly: ${reason} ${fmt(details)}`);
      return true;
    };
    conn.open();
  });
}

async function denied(promise, what) {
  try {
    const res = await promise;
    die(`${what}: expected ${NOT_AUTHORIZED}, got ${fmt(res)}`);
  } catch (e) {
    check(e instanceof autobahn.Error && e.error === NOT_AUTHORIZED, `${what}: got ${fmt(e)}`);
  }
}

function authorize(args) {
  const [session, uri, action, options] = args;
  const key = `${action} ${uri}`;
  asked.set(key, (asked.get(key) || 0) + 1);
  seen.push({ session, uri, action, options });
  const last = uri.split('.').pop();
  if (last === 'open') return true;
  if (last === 'dict') return { allow: true, disclose: true };
  if (last === 'once') return { allow: true, cache: false };
  return false;
}

async function main() {
  step = 'connect';
  const AUTH = await connect('AUTH', 'auth');
  await AUTH.session.register('com.example.authorize', authorize);
  const APP = await connect('APP', 'app');
  const APP2 = await connect('APP2', 'app');
  const app = APP.session;
  const app2 = APP2.session;

  step = 'register through the authorizer';
  const callers = [];
  const whoami = (args, kwargs, details) => {
    callers.push(details.caller);
    return 'hi';
  };
  for (const proc of ['app.js.open', 'app.js.dict', 'app.js.once']) await app2.register(proc, whoami);
  await denied(app2.register('app.js.closed', whoami), 'register app.js.closed');

  step = 'bool answers, cached';
  for (let i = 0; i < 3; i++) {
    check((await app.call('app.js.open')) === 'hi', 'call app.js.open');
    await denied(app.call('app.js.closed'), 'call app.js.closed');
  }
  check(asked.get('call app.js.open') === 1, `asked ${asked.get('call app.js.open')} times for app.js.open`);
  check(asked.get('call app.js.closed') === 1, `asked ${asked.get('call app.js.closed')} times for app.js.closed`);
  check(callers.every((c) => c === undefined || c === null), `caller disclosed by a plain true: ${fmt(callers)}`);

  step = 'dict answers';
  check((await app.call('app.js.dict')) === 'hi', 'call app.js.dict');
  check(callers[callers.length - 1] === app.id, `caller ${fmt(callers[callers.length - 1])}, wanted ${app.id}`);
  for (let i = 0; i < 3; i++) check((await app.call('app.js.once')) === 'hi', 'call app.js.once');
  check(asked.get('call app.js.once') === 3, `asked ${asked.get('call app.js.once')} times for app.js.once`);

  step = 'publish and subscribe';
  let resolveEvent;
  const event = new Promise((r) => (resolveEvent = r));
  await app.subscribe('app.js.t.open', (args) => resolveEvent(args[0]));
  await app2.publish('app.js.t.open', [42], {}, { acknowledge: true });
  check((await event) === 42, 'event');
  await denied(app.publish('app.js.t.closed', [1], {}, { acknowledge: true }), 'publish app.js.t.closed');
  await denied(app.subscribe('app.js.t.closed', () => {}), 'subscribe app.js.t.closed');

  step = 'what the authorizer was told';
  const first = seen.find((s) => s.uri === 'app.js.open' && s.action === 'call');
  check(first.session.session === app.id, `session ${fmt(first.session)}`);
  check(first.session.authrole === 'guest' && first.session.realm === 'app', `session ${fmt(first.session)}`);

  closing = true;
  for (const x of [APP, APP2, AUTH]) x.conn.close();
  process.stdout.write(`OK authorizer-js ${url} ${serName}\n`);
  process.exit(0);
}

main().catch((e) => die(fmt(e)));
