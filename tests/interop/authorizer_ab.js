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

const { autobahn, fmt, harness } = require('./ab_common');

const NOT_AUTHORIZED = 'wamp.error.not_authorized';
const h = harness('authorizer-js', { timeoutMs: 30000 });
const { check } = h;
const asked = new Map();
const seen = [];

const connect = (name, realm) => h.connect(name, { realm });
const denied = (promise, what) => h.expectError(promise, NOT_AUTHORIZED, what);

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
  h.step = 'connect';
  const AUTH = await connect('AUTH', 'auth');
  await AUTH.session.register('com.example.authorize', authorize);
  const APP = await connect('APP', 'app');
  const APP2 = await connect('APP2', 'app');
  const app = APP.session;
  const app2 = APP2.session;

  h.step = 'register through the authorizer';
  const callers = [];
  const whoami = (args, kwargs, details) => {
    callers.push(details.caller);
    return 'hi';
  };
  for (const proc of ['app.js.open', 'app.js.dict', 'app.js.once']) await app2.register(proc, whoami);
  await denied(app2.register('app.js.closed', whoami), 'register app.js.closed');

  h.step = 'bool answers, cached';
  for (let i = 0; i < 3; i++) {
    check((await app.call('app.js.open')) === 'hi', 'call app.js.open');
    await denied(app.call('app.js.closed'), 'call app.js.closed');
  }
  check(asked.get('call app.js.open') === 1, `asked ${asked.get('call app.js.open')} times for app.js.open`);
  check(asked.get('call app.js.closed') === 1, `asked ${asked.get('call app.js.closed')} times for app.js.closed`);
  check(callers.every((c) => c === undefined || c === null), `caller disclosed by a plain true: ${fmt(callers)}`);

  h.step = 'dict answers';
  check((await app.call('app.js.dict')) === 'hi', 'call app.js.dict');
  check(callers[callers.length - 1] === app.id, `caller ${fmt(callers[callers.length - 1])}, wanted ${app.id}`);
  for (let i = 0; i < 3; i++) check((await app.call('app.js.once')) === 'hi', 'call app.js.once');
  check(asked.get('call app.js.once') === 3, `asked ${asked.get('call app.js.once')} times for app.js.once`);

  h.step = 'publish and subscribe';
  let resolveEvent;
  const event = new Promise((r) => (resolveEvent = r));
  await app.subscribe('app.js.t.open', (args) => resolveEvent(args[0]));
  await app2.publish('app.js.t.open', [42], {}, { acknowledge: true });
  check((await event) === 42, 'event');
  await denied(app.publish('app.js.t.closed', [1], {}, { acknowledge: true }), 'publish app.js.t.closed');
  await denied(app.subscribe('app.js.t.closed', () => {}), 'subscribe app.js.t.closed');

  h.step = 'what the authorizer was told';
  const first = seen.find((s) => s.uri === 'app.js.open' && s.action === 'call');
  check(first.session.session === app.id, `session ${fmt(first.session)}`);
  check(first.session.authrole === 'guest' && first.session.realm === 'app', `session ${fmt(first.session)}`);

  h.finish([APP, APP2, AUTH]);
}

h.run(main);
