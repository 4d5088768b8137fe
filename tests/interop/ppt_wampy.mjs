#!/usr/bin/env node
// Payload passthru mode with wampy.js (WebSocket), which speaks it natively: wampy sends `ppt_*`
// options only once the router announces `payload_passthru_mode`, packs args/kwargs into one
// payload encoded with `ppt_serializer`, and unpacks it from the receiver's Details. Publisher and
// subscribers, caller and callee on different shards; a second serializer where both can carry
// binary (a JSON session cannot, so JSON uses the mqtt scheme with a JSON-encoded payload).
//
// Usage: node ppt_wampy.mjs ws://127.0.0.1:PORT/ws json|msgpack|cbor
// Prints "OK ppt-wampy <url> <serializer>" on success.

import { CborSerializer, JsonSerializer, collector, harness } from './wampy_common.mjs';

const h = harness('ppt-wampy');
const { die, same, serName } = h;
const connect = (name, ser) =>
  h.connect(name, { ser, options: { payloadSerializers: { json: new JsonSerializer(), cbor: new CborSerializer() } } });
const otherName = { json: 'json', msgpack: 'cbor', cbor: 'msgpack' }[serName];
const PPT = serName === 'json'
  ? { ppt_scheme: 'mqtt', ppt_serializer: 'json' }
  : {
      ppt_scheme: 'wamp',
      ppt_serializer: 'cbor',
      ppt_cipher: 'xsalsa20poly1305',
      ppt_keyid: '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
    };

function pptOf(details) {
  const out = {};
  for (const k of Object.keys(PPT)) out[k] = details[k];
  return out;
}

h.step = 'connect';
const p = await connect('P', serName);
const subs = [await connect('S1', serName), await connect('S2', otherName)];
for (const w of [p, ...subs]) {
  const f = w._cache.server_wamp_features.roles;
  if (!f.broker.features.payload_passthru_mode || !f.dealer.features.payload_passthru_mode) {
    die(`WELCOME does not announce payload_passthru_mode: ${JSON.stringify(f)}`);
  }
}

h.step = 'subscribe';
const got = subs.map(() => collector());
for (let i = 0; i < subs.length; i++) {
  await subs[i].subscribe('com.ppt.wampy', (e) => got[i].push([pptOf(e.details), e.argsList, e.argsDict]));
}
h.step = 'publish in passthru mode';
await p.publish('com.ppt.wampy', { argsList: [1, 'two'], argsDict: { k: 'v' } }, PPT);
for (let i = 0; i < subs.length; i++) {
  await got[i].until(1);
  same(got[i].items[0], [PPT, [1, 'two'], { k: 'v' }], `event of S${i + 1}`);
}

h.step = 'call in passthru mode';
const seen = collector();
await subs[1].register('com.ppt.wampy.echo', (inv) => {
  seen.push([pptOf(inv.details), inv.argsList]);
  return { argsList: [...inv.argsList, 'back'], options: PPT };
});
const res = await p.call('com.ppt.wampy.echo', { argsList: [5], argsDict: { q: 1 } }, PPT);
await seen.until(1);
same(seen.items[0], [PPT, [5]], 'invocation');
same([pptOf(res.details), res.argsList], [PPT, [5, 'back']], 'result');

h.step = 'plain publication after';
await p.publish('com.ppt.wampy', { argsList: [3] });
for (let i = 0; i < subs.length; i++) {
  await got[i].until(2);
  same(got[i].items[1][1], [3], `plain event of S${i + 1}`);
  if (got[i].items[1][0].ppt_scheme !== undefined) die(`plain event of S${i + 1} has ppt_scheme`);
}

await h.finish([p, ...subs]);
