#!/usr/bin/env python3
"""Authorization as autobahn-python sees it.

Usage: authz_ab.py URL json|msgpack|cbor

The router runs with a configuration whose anonymous role "app" may do
everything under the prefix "app." except under "app.admin." (an empty allow
list that is more specific). Sessions A and B are consecutive connections, so
with --shards 2 they sit on different shards. Checks that allowed actions work
and that each denied action raises ApplicationError wamp.error.not_authorized.
Prints "OK authz <url> <serializer>" on success; exits non-zero with the
failing step otherwise.
"""

import asyncio
import sys
import traceback

import txaio

txaio.use_asyncio()

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory  # noqa: E402
from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.rawsocket.util import parse_url as parse_rs_url  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer  # noqa: E402
from autobahn.wamp.types import ComponentConfig, PublishOptions  # noqa: E402
from autobahn.websocket.util import parse_url as parse_ws_url  # noqa: E402

TIMEOUT_S = 20.0
NOT_AUTHORIZED = "wamp.error.not_authorized"
SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}
STEP = ["start"]


class Failure(Exception):
    pass


def step(name):
    STEP[0] = name


class Session(ApplicationSession):
    def __init__(self, config):
        super().__init__(config)
        self.joined = asyncio.get_running_loop().create_future()

    def onJoin(self, details):
        if not self.joined.done():
            self.joined.set_result(details)

    def onLeave(self, details):
        if not self.joined.done():
            self.joined.set_exception(Failure(f"left before joining: {details}"))
        super().onLeave(details)


async def connect(url, ser_name):
    loop = asyncio.get_running_loop()
    session = Session(ComponentConfig("realm1", {}))
    serializer = SERIALIZERS[ser_name]()
    if url.startswith("rs://"):
        _secure, host, port = parse_rs_url(url)
        factory = WampRawSocketClientFactory(lambda: session, serializer=serializer)
    else:
        _secure, host, port, _res, _path, _params = parse_ws_url(url)
        factory = WampWebSocketClientFactory(lambda: session, url=url, serializers=[serializer])
    await loop.create_connection(factory, host, port)
    details = await session.joined
    if details.authrole != "app":
        raise Failure(f"joined with role {details.authrole!r}, wanted 'app'")
    return session


async def denied(coro, what):
    try:
        await coro
    except ApplicationError as e:
        if e.error != NOT_AUTHORIZED:
            raise Failure(f"{what}: error {e.error}, wanted {NOT_AUTHORIZED}")
        return
    raise Failure(f"{what}: succeeded, wanted {NOT_AUTHORIZED}")


async def run(url, ser_name):
    step("connect")
    a = await connect(url, ser_name)
    b = await connect(url, ser_name)

    step("allowed call across shards")
    await a.register(lambda x, y: x + y, "app.add")
    got = await b.call("app.add", 2, 3)
    if got != 5:
        raise Failure(f"app.add returned {got!r}")

    step("allowed publish/subscribe across shards")
    events = asyncio.get_running_loop().create_future()
    await b.subscribe(lambda v: events.done() or events.set_result(v), "app.news")
    await a.publish("app.news", 42, options=PublishOptions(acknowledge=True))
    got = await asyncio.wait_for(events, 5)
    if got != 42:
        raise Failure(f"event carried {got!r}")

    step("denied actions")
    await denied(b.call("app.admin.reset"), "call app.admin.reset")
    await denied(a.register(lambda: None, "app.admin.reset"), "register app.admin.reset")
    await denied(b.subscribe(lambda: None, "app.admin.news"), "subscribe app.admin.news")
    await denied(
        b.publish("app.admin.news", 1, options=PublishOptions(acknowledge=True)),
        "publish app.admin.news",
    )
    await denied(b.call("wamp.session.count"), "call wamp.session.count (meta API)")
    await denied(b.call("other.thing"), "call other.thing (no permission)")

    step("session still usable after denials")
    got = await b.call("app.add", 1, 1)
    if got != 2:
        raise Failure(f"app.add after denials returned {got!r}")
    for s in (a, b):
        s.leave()


def main():
    url, ser_name = sys.argv[1], sys.argv[2]
    try:
        asyncio.run(asyncio.wait_for(run(url, ser_name), TIMEOUT_S))
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        print(f"FAIL authz {url} {ser_name} at step {STEP[0]}: {e!r}")
        sys.exit(1)
    print(f"OK authz {url} {ser_name}")


if __name__ == "__main__":
    main()
