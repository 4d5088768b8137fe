#!/usr/bin/env node
// Advanced PubSub interop with wampy.js (WebSocket): subscriber black/white listing and publisher
// identification, publisher and subscribers on different shards. (wampy.js 8 checks `retain` but
// does not send it, so retention is covered by the autobahn scripts.)
//
// Usage: node pubsub_wampy.mjs ws://127.0.0.1:PORT/ws json|msgpack|cbor
// Prints "OK pubsub-wampy <url> <serializer>" on success.

import { Wampy } from 'wampy';
import { JsonSerializer } from 'wampy/JsonSerializer.js';
import { MsgpackSerializer } from 'wampy/MsgpackSerializer.js';
import { CborSerializer } from 'wampy/CborSerializer.js';
import WebSocket from 'ws';

const url = process.argv[2];
const serName = process.argv[3];
let step = 'start';
let closing = false;

function die(msg) {
  process.stdout.write(`FAIL pubsub-wampy ${url} ${serName}: ${step}: ${msg}\n`);
  process.exit(1);
}
setTimeout(() => die('global timeout after 20 s'), 20000).unref();
process.on('unhandledRejection', (e) => die(`unhandled rejection: ${e && e.stack ? e.stack : e}`));

const serializer = { json: JsonSerializer, msgpack: MsgpackSerializer, cbor: CborSerializer }[serName];

async function connect(name) {
  const w = new Wampy(url, {
    realm: 'realm1', ws: WebSocket, serializer: new serializer(), autoReconnect: false,
    onClose: () => { if (!closing) die(`session ${name} closed unexpectedly`); },
    onError: (e) => die(`session ${name}: ${e && e.message}`),
  });
  await w.connect();
  return w;
}

function collector() {
  const c = { items: [], waiters: [] };
  c.push = (x) => {
    c.items.push(x);
    c.waiters = c.waiters.filter(([n, r]) => (c.items.length >= n ? (r(), false) : true));
  };
  c.until = (n) => new Promise((r) => (c.items.length >= n ? r() : c.waiters.push([n, r])));
  return c;
}

const p = await connect('P');
const subs = [await connect('S1'), await connect('S2')];
const got = subs.map(() => collector());
step = 'subscribe';
for (let i = 0; i < subs.length; i++) {
  await subs[i].subscribe('com.pubsub.wampy', (e) => {
    const pub = e.details.publisher;
    got[i].push([e.argsList[0], pub === undefined ? null : String(pub)]);
  });
}
const [s1, s2] = subs.map((s) => s.getSessionId());
step = 'publish with lists';
await p.publish('com.pubsub.wampy', ['x1'], { exclude: [s1] });
await p.publish('com.pubsub.wampy', ['x2'], { eligible: [s1] });
await p.publish('com.pubsub.wampy', ['x3'], { disclose_me: true });
await p.publish('com.pubsub.wampy', ['x4'], { exclude: [s1, s2] });
await p.publish('com.pubsub.wampy', ['end'], {});
const me = String(p.getSessionId());
const want = [
  [['x2', null], ['x3', me], ['end', null]],
  [['x1', null], ['x3', me], ['end', null]],
];
for (let i = 0; i < subs.length; i++) {
  await got[i].until(want[i].length);
  const g = JSON.stringify(got[i].items);
  const w = JSON.stringify(want[i]);
  if (g !== w) die(`events of S${i + 1}: got ${g}, want ${w}`);
}
closing = true;
process.stdout.write(`OK pubsub-wampy ${url} ${serName}\n`);
process.exit(0);
