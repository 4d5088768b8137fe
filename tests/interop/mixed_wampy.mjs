#!/usr/bin/env node
// wampy.js against an autobahn-python peer (mixed_peer.py) on the same router.
//
// Usage: node mixed_wampy.mjs ws://127.0.0.1:PORT/ws json|msgpack|cbor
//
// The peer joined first, so with --shards 2 this session lives on the other
// shard, and the peer uses another serializer: every message below crosses
// shards and serializers. Checks RPC with args, kwargs and binary, an
// application error with args and kwargs, and PubSub with acknowledge both
// ways (ping published here, pong published by the peer). Prints
// "OK mixed-wampy <url> <serializer>" on success.

import { Wampy } from 'wampy';
import { JsonSerializer } from 'wampy/JsonSerializer.js';
import { MsgpackSerializer } from 'wampy/MsgpackSerializer.js';
import { CborSerializer } from 'wampy/CborSerializer.js';
import WebSocket from 'ws';
import { deepEq } from './wampy_common.mjs';

const url = process.argv[2];
const serName = process.argv[3];
let step = 'start';

function die(msg) {
  process.stdout.write(`FAIL mixed-wampy ${url} ${serName}: ${step}: ${msg}\n`);
  process.exit(1);
}
process.on('unhandledRejection', (e) => die(`unhandled rejection: ${show(e)}`));
setTimeout(() => die('timeout after 20 s'), 20000);

function show(v) {
  return JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? `${x}n` : x));
}

function checkEq(got, want, what) {
  if (!deepEq(got, want)) die(`${what}: got ${show(got)}, want ${show(want)}`);
}

const serializers = { json: JsonSerializer, msgpack: MsgpackSerializer, cbor: CborSerializer };
const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
// wampy's json serializer does no binary conversion: binary is the WAMP JSON form both ways.
const bin = serName === 'json' ? '\u0000' + bytes.toString('base64') : bytes;
const args = [1, 'héllo ☃', bin, [true, null, 2.5]];
const kwargs = { b: bin, n: null, nested: { k: [1, 2] } };

const w = new Wampy(url, {
  realm: 'realm1',
  ws: WebSocket,
  serializer: new serializers[serName](),
  autoReconnect: false,
  onError: (e) => die(`session error: ${show(e)}`),
});
await w.connect();

step = 'call echo';
const r = await w.call('com.mixed.echo', { argsList: args, argsDict: kwargs });
checkEq([r.argsList, r.argsDict], [args, kwargs], 'echo result');

step = 'call fail';
try {
  await w.call('com.mixed.fail', []);
  die('expected com.mixed.oops');
} catch (e) {
  checkEq([e.errorUri, e.argsList, e.argsDict], ['com.mixed.oops', [1], { x: 2 }], 'error');
}

step = 'ping/pong';
let wake;
const got = [];
await w.subscribe('com.mixed.pong', (d) => { got.push([d.argsList, d.argsDict]); if (wake) wake(); });
const pid = await w.publish('com.mixed.ping', { argsList: args, argsDict: kwargs });
if (!pid) die(`publish was not acknowledged: ${show(pid)}`);
while (got.length < 1) await new Promise((res) => { wake = res; });
checkEq(got[0], [args, kwargs], 'pong event');

step = 'done';
await w.call('com.mixed.done', []);
await w.disconnect();
process.stdout.write(`OK mixed-wampy ${url} ${serName}\n`);
process.exit(0);
