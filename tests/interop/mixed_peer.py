#!/usr/bin/env python3
"""An autobahn-python peer for mixed-client interop checks.

Usage: mixed_peer.py URL json|msgpack|cbor

Joins realm1 and serves another client (wampy.js in tests/interop.rs):
  com.mixed.echo   returns its args and kwargs
  com.mixed.fail   fails with com.mixed.oops, args [1], kwargs {"x": 2}
  com.mixed.ping   (topic) every event is republished to com.mixed.pong, acknowledged
  com.mixed.done   ends this process (exit 0)
Prints "READY" once all of that is in place; exits non-zero on any failure, and
after 40 s at the latest.
"""

import asyncio
import sys

import txaio

txaio.use_asyncio()

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory  # noqa: E402
from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.rawsocket.util import parse_url as parse_rs_url  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer  # noqa: E402
from autobahn.wamp.types import CallResult, ComponentConfig, PublishOptions  # noqa: E402
from autobahn.websocket.util import parse_url as parse_ws_url  # noqa: E402

SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}
LIFETIME_S = 40.0


class Peer(ApplicationSession):
    def __init__(self, config, done):
        super().__init__(config)
        self.done = done

    async def onJoin(self, details):
        def echo(*args, **kwargs):
            return CallResult(*args, **kwargs)

        def fail():
            raise ApplicationError("com.mixed.oops", 1, x=2)

        async def relay(*args, **kwargs):
            await self.publish("com.mixed.pong", *args, options=PublishOptions(acknowledge=True), **kwargs)

        def finish():
            if not self.done.done():
                self.done.set_result(0)
            return "bye"

        await self.register(echo, "com.mixed.echo")
        await self.register(fail, "com.mixed.fail")
        await self.register(finish, "com.mixed.done")
        await self.subscribe(relay, "com.mixed.ping")
        print("READY", flush=True)

    def onUserError(self, fail, msg):
        err = getattr(fail, "value", fail)
        if isinstance(err, ApplicationError) and err.error == "com.mixed.oops":
            return
        super().onUserError(fail, msg)

    def onLeave(self, details):
        if not self.done.done():
            self.done.set_result(f"left: {details}")
        super().onLeave(details)


async def main(url, ser_name):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    session = Peer(ComponentConfig("realm1", {}), done)
    serializer = SERIALIZERS[ser_name]()
    if url.startswith("rs://"):
        _secure, host, port = parse_rs_url(url)
        factory = WampRawSocketClientFactory(lambda: session, serializer=serializer)
    else:
        _secure, host, port, _res, _path, _params = parse_ws_url(url)
        factory = WampWebSocketClientFactory(lambda: session, url=url, serializers=[serializer])
    await loop.create_connection(factory, host, port)
    result = await asyncio.wait_for(done, LIFETIME_S)
    if result != 0:
        print(f"FAIL mixed peer: {result}", flush=True)
        return 1
    session.leave()
    await asyncio.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
