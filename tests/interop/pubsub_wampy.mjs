#!/usr/bin/env node
// Advanced PubSub interop with wampy.js (WebSocket): subscriber black/white listing and publisher
// identification, publisher and subscribers on different shards. (wampy.js 8 checks `retain` but
// does not send it, so retention is covered by the autobahn scripts.)
//
// Usage: node pubsub_wampy.mjs ws://127.0.0.1:PORT/ws json|msgpack|cbor
// Prints "OK pubsub-wampy <url> <serializer>" on success.

import { collector, harness } from './wampy_common.mjs';

const h = harness('pubsub-wampy');
const { connect, die } = h;

const p = await connect('P');
const subs = [await connect('S1'), await connect('S2')];
const got = subs.map(() => collector());
h.step = 'subscribe';
for (let i = 0; i < subs.length; i++) {
  await subs[i].subscribe('com.pubsub.wampy', (e) => {
    const pub = e.details.publisher;
    got[i].push([e.argsList[0], pub === undefined ? null : String(pub)]);
  });
}
const [s1, s2] = subs.map((s) => s.getSessionId());
h.step = 'publish with lists';
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
await h.finish();
