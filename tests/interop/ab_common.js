// Shared harness of the autobahn-js interop scripts (WebSocket): serializers, step tracking,
// checks that fail the run, sessions, collectors and the closing "OK" line.
//
// A script calls `harness(label)` once; the result `h` reads URL and serializer from argv,
// fails the run (`FAIL <label> <url> <ser>: <step>: <reason>`, exit 1) on a failed check, an
// unhandled rejection, an uncaught exception or the global timeout, and `h.finish(...)` prints
// `OK <label> <url> <ser>` and exits 0.

'use strict';

const autobahn = require('autobahn');

// A readable form of a value or an error.
function fmt(v) {
  if (v instanceof autobahn.Error) return `autobahn.Error(${v.error}, ${JSON.stringify(v.args)})`;
  if (v instanceof Error) return v.stack || String(v);
  try {
    return JSON.stringify(v);
  } catch (_) {
    return String(v);
  }
}

// An autobahn-js serializer by name (json, msgpack, cbor); undefined for another name.
function makeSerializer(name) {
  switch (name) {
    case 'json':
      return new autobahn.serializer.JSONSerializer();
    case 'msgpack':
      return new autobahn.serializer.MsgpackSerializer();
    case 'cbor':
      return new autobahn.serializer.CBORSerializer();
    default:
      return undefined;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Collects items; `until(n)` resolves with the items once there are at least n.
function collector() {
  const c = { items: [], waiters: [] };
  c.push = (item) => {
    c.items.push(item);
    c.waiters = c.waiters.filter(([n, resolve]) => (c.items.length >= n ? (resolve(c.items), false) : true));
  };
  c.until = (n) => new Promise((resolve) => (c.items.length >= n ? resolve(c.items) : c.waiters.push([n, resolve])));
  return c;
}

function harness(label, { timeoutMs = 30000 } = {}) {
  const h = { url: process.argv[2], serName: process.argv[3], step: 'start', closing: false };

  h.die = (msg) => {
    process.stdout.write(`FAIL ${label} ${h.url} ${h.serName}: ${h.step}: ${msg}\n`);
    process.exit(1);
  };
  h.check = (cond, what) => {
    if (!cond) h.die(what);
  };
  // Compares the JSON forms of `got` and `want`.
  h.eq = (got, want, what) => {
    const g = JSON.stringify(got);
    const w = JSON.stringify(want);
    if (g !== w) h.die(`${what}: got ${g}, want ${w}`);
  };
  // Fails unless `promise` rejects with the autobahn.Error `uri`.
  h.expectError = async (promise, uri, what) => {
    const pre = what ? `${what}: ` : '';
    try {
      const res = await promise;
      h.die(`${pre}expected ${uri}, got ${fmt(res)}`);
    } catch (e) {
      h.check(e instanceof autobahn.Error && e.error === uri, `${pre}expected ${uri}, got ${fmt(e)}`);
    }
  };

  // Opens a session in `realm` with serializer `ser`; resolves with { conn, session, details,
  // authid, name, left }, where `left` resolves with the close details. A session that closes
  // before `h.closing` is set fails the run, unless `dieOnClose` is false.
  h.connect = (name, { realm = 'realm1', ser = h.serName, dieOnClose = true } = {}) =>
    new Promise((resolve, reject) => {
      const serializer = makeSerializer(ser);
      if (!serializer) h.die(`unknown serializer ${ser}`);
      const conn = new autobahn.Connection({
        url: h.url,
        realm,
        serializers: [serializer],
        max_retries: 0,
        retry_if_unreachable: false,
      });
      let opened = false;
      let onLeft;
      const left = new Promise((r) => {
        onLeft = r;
      });
      conn.onopen = (session, details) => {
        opened = true;
        resolve({ conn, session, details, authid: details && details.authid, name, left });
      };
      conn.onclose = (reason, details) => {
        if (!opened) reject(new Error(`session ${name} could not open: ${reason} ${fmt(details)}`));
        else if (dieOnClose && !h.closing) h.die(`session ${name} closed unexpectedly: ${reason} ${fmt(details)}`);
        onLeft(details || {});
        return true;
      };
      conn.open();
    });

  // Closes the given connections and ends the run with the OK line.
  h.finish = (sessions = []) => {
    h.closing = true;
    for (const x of sessions) x.conn.close();
    process.stdout.write(`OK ${label} ${h.url} ${h.serName}\n`);
    process.exit(0);
  };

  // Runs the script's async main; any rejection fails the run.
  h.run = (main) => main().catch((e) => h.die(fmt(e)));

  process.on('unhandledRejection', (e) => h.die(`unhandled rejection: ${fmt(e)}`));
  process.on('uncaughtException', (e) => h.die(`uncaught exception: ${fmt(e)}`));
  setTimeout(() => h.die(`global timeout after ${timeoutMs} ms`), timeoutMs).unref();
  return h;
}

module.exports = { autobahn, collector, fmt, harness, makeSerializer, sleep };
