// Shared harness of the wampy.js interop scripts (WebSocket): serializers, step tracking, checks
// that fail the run, sessions, collectors, byte-aware deep equality and the closing "OK" line.
//
// `harness(label)` reads URL and serializer from argv and fails the run
// (`FAIL <label> <url> <ser>: <step>: <reason>`, exit 1) on a failed check, an unhandled rejection
// or the global timeout; `h.finish(...)` prints `OK <label> <url> <ser>` and exits 0.

import { Wampy } from 'wampy';
import { JsonSerializer } from 'wampy/JsonSerializer.js';
import { MsgpackSerializer } from 'wampy/MsgpackSerializer.js';
import { CborSerializer } from 'wampy/CborSerializer.js';
import WebSocket from 'ws';

export { CborSerializer, JsonSerializer, MsgpackSerializer };

export const serializers = { json: JsonSerializer, msgpack: MsgpackSerializer, cbor: CborSerializer };

export function isBytes(v) {
  return Buffer.isBuffer(v) || v instanceof Uint8Array;
}

// Deep equality that treats Buffer/Uint8Array as byte strings.
export function deepEq(a, b) {
  if (isBytes(a) || isBytes(b)) {
    return isBytes(a) && isBytes(b) && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEq(x, b[i]));
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).sort();
    return deepEq(ka, Object.keys(b).sort()) && ka.every((k) => deepEq(a[k], b[k]));
  }
  return a === b;
}

// Collects items; `until(n)` resolves once there are at least n.
export function collector() {
  const c = { items: [], waiters: [] };
  c.push = (x) => {
    c.items.push(x);
    c.waiters = c.waiters.filter(([n, r]) => (c.items.length >= n ? (r(), false) : true));
  };
  c.until = (n) => new Promise((r) => (c.items.length >= n ? r() : c.waiters.push([n, r])));
  return c;
}

export function harness(label, { timeoutMs = 20000 } = {}) {
  const h = { url: process.argv[2], serName: process.argv[3], step: 'start', closing: false };

  h.die = (msg) => {
    process.stdout.write(`FAIL ${label} ${h.url} ${h.serName}: ${h.step}: ${msg}\n`);
    process.exit(1);
  };
  // Compares the JSON forms of `got` and `want`.
  h.same = (got, want, what) => {
    const g = JSON.stringify(got);
    const w = JSON.stringify(want);
    if (g !== w) h.die(`${what}: got ${g}, want ${w}`);
  };
  // A connected Wampy session in realm1 with serializer `ser`; `options` are added to wampy's.
  // Closing before `h.closing` is set, or any session error, fails the run.
  h.connect = async (name, { ser = h.serName, options = {} } = {}) => {
    const w = new Wampy(h.url, {
      realm: 'realm1',
      ws: WebSocket,
      serializer: new serializers[ser](),
      autoReconnect: false,
      ...options,
      onClose: () => {
        if (!h.closing) h.die(`session ${name} closed unexpectedly`);
      },
      onError: (e) => h.die(`session ${name}: ${e && e.message}`),
    });
    await w.connect();
    return w;
  };
  // Disconnects the given sessions and ends the run with the OK line.
  h.finish = async (sessions = []) => {
    h.closing = true;
    for (const w of sessions) await w.disconnect();
    process.stdout.write(`OK ${label} ${h.url} ${h.serName}\n`);
    process.exit(0);
  };

  setTimeout(() => h.die(`global timeout after ${timeoutMs / 1000} s`), timeoutMs).unref();
  process.on('unhandledRejection', (e) => h.die(`unhandled rejection: ${e && e.stack ? e.stack : e}`));
  return h;
}
