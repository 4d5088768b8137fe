#!/usr/bin/env python3
"""autobahn-python over TLS against wampd, and a /metrics scrape read by a Prometheus parser.

Usage: net_ab.py PORT CA_PEM CLIENT_CRT CLIENT_KEY METRICS_URL

Session A: RawSocket over TLS (msgpack) with a client certificate; session B: wss (json) without
one. They sit on different shards (--shards 2). B publishes to A and calls A; then the metrics
endpoint is scraped and parsed with prometheus_client, and the counters must show what happened.
Prints "OK net" on success; exits non-zero with a reason otherwise.
"""

import asyncio
import ssl
import sys
import urllib.request

import txaio

txaio.use_asyncio()

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory  # noqa: E402
from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer  # noqa: E402
from autobahn.wamp.types import ComponentConfig, PublishOptions  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

TIMEOUT_S = 20.0
N = 3


class Session(ApplicationSession):
    def __init__(self, config):
        super().__init__(config)
        self.joined = asyncio.get_running_loop().create_future()

    def onJoin(self, details):
        self.joined.set_result(details)

    def onDisconnect(self):
        if not self.joined.done():
            self.joined.set_exception(RuntimeError("disconnected before joining"))


def tls_context(ca, cert=None, key=None):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


async def open_session(kind, port, ctx):
    loop = asyncio.get_running_loop()
    session = Session(ComponentConfig("realm1", {}))
    if kind == "rss":
        factory = WampRawSocketClientFactory(lambda: session, serializer=MsgPackSerializer())
    else:
        url = f"wss://localhost:{port}/ws"
        factory = WampWebSocketClientFactory(lambda: session, url=url, serializers=[JsonSerializer()])
    await loop.create_connection(factory, "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    await asyncio.wait_for(session.joined, TIMEOUT_S)
    return session


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        ctype = r.headers.get("Content-Type", "")
        assert ctype.startswith("text/plain"), f"content type {ctype!r}"
        text = r.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return families


def total(families, name, sample, **labels):
    fam = families.get(name)
    assert fam is not None, f"no metric family {name}; have {sorted(families)}"
    return sum(
        s.value
        for s in fam.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def main(port, ca, crt, key, metrics_url):
    a = await open_session("rss", int(port), tls_context(ca, crt, key))
    b = await open_session("wss", int(port), tls_context(ca))
    got = []
    done = asyncio.get_running_loop().create_future()

    def on_event(n):
        got.append(n)
        if len(got) == N and not done.done():
            done.set_result(None)

    await a.subscribe(on_event, "net.interop")
    await a.register(lambda x, y: x + y, "net.add")
    for i in range(N):
        await b.publish("net.interop", i, options=PublishOptions(acknowledge=True))
    await asyncio.wait_for(done, TIMEOUT_S)
    assert got == list(range(N)), f"events {got}"
    res = await b.call("net.add", 2, 3)
    assert res == 5, f"call returned {res!r}"

    fams = scrape(metrics_url)
    assert fams["wampd_messages_received"].type == "counter"
    assert fams["wampd_sessions"].type == "gauge"
    assert fams["wampd_call_duration_seconds"].type == "histogram"
    sessions = total(fams, "wampd_sessions", "wampd_sessions", realm="realm1")
    assert sessions == 2, f"wampd_sessions {sessions}"
    for shard in ("0", "1"):
        n = total(fams, "wampd_sessions", "wampd_sessions", realm="realm1", shard=shard)
        assert n == 1, f"shard {shard} has {n} sessions"
    pub = total(fams, "wampd_messages_received", "wampd_messages_received_total", type="PUBLISH")
    assert pub == N, f"PUBLISH received {pub}"
    ev = total(fams, "wampd_events_delivered", "wampd_events_delivered_total")
    assert ev == N, f"events delivered {ev}"
    calls = total(fams, "wampd_call_duration_seconds", "wampd_call_duration_seconds_count")
    assert calls == 1, f"calls timed {calls}"
    inv = total(fams, "wampd_messages_sent", "wampd_messages_sent_total", type="INVOCATION")
    assert inv == 1, f"INVOCATIONs sent {inv}"
    assert total(fams, "wampd_bytes_sent", "wampd_bytes_sent_total") > 0
    for s in (a, b):
        s.leave()
    print("OK net")


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(*sys.argv[1:6]), 60))
    except Exception as e:  # noqa: BLE001
        print(f"FAIL net: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
