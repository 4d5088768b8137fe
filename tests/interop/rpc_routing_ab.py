#!/usr/bin/env python3
"""Call routing beyond the plain invocation policies, with autobahn-python (asyncio): the
least_loaded policy, sharded registration (`rkey` in CALL.Options) and call rerouting (a
callee's wamp.error.unavailable).

Usage: rpc_routing_ab.py URL json|msgpack|cbor

Sessions A, B, C, D are consecutive connections, so with --shards 2 A and C live on one shard and
B and D on the other; the callees are A and D, the callers B and C. autobahn-python cannot name
least_loaded (RegisterOptions and message.Register check `invoke` against the spec's five) nor
`rkey` (CallOptions has no such option): both are put into the options when the REGISTER or CALL
is marshalled. Prints "OK routing-python <url> <serializer>" on success.
"""

import asyncio
import sys
import time
import traceback

import txaio

txaio.use_asyncio()

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory  # noqa: E402
from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.rawsocket.util import parse_url as parse_rs_url  # noqa: E402
from autobahn.wamp import message  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer  # noqa: E402
from autobahn.wamp.types import CallOptions, ComponentConfig, RegisterOptions  # noqa: E402
from autobahn.websocket.util import parse_url as parse_ws_url  # noqa: E402

SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}
TIMEOUT_S = 30.0


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


_marshal_options = message.Call.marshal_options
# autobahn-python's CallOptions has no `rkey`: the key of the next call is added here.
NEXT_RKEY = []


def marshal_options_keyed(self):
    options = _marshal_options(self)
    if NEXT_RKEY:
        options["rkey"] = NEXT_RKEY.pop()
    return options


message.Call.marshal_options = marshal_options_keyed


_marshal_register = message.Register.marshal_options


def marshal_register_least_loaded(self):
    """RegisterOptions and message.Register assert that `invoke` is one of the spec's five: a
    procedure ending in ".least_loaded" is registered with invoke "roundrobin" and sent with
    "least_loaded"."""
    options = _marshal_register(self)
    if self.procedure.endswith(".least_loaded"):
        options["invoke"] = "least_loaded"
    return options


message.Register.marshal_options = marshal_register_least_loaded


def least_loaded():
    return RegisterOptions(invoke="roundrobin")


class Session(ApplicationSession):
    def __init__(self, config):
        super().__init__(config)
        self.joined = asyncio.get_running_loop().create_future()

    def onJoin(self, details):
        if not self.joined.done():
            self.joined.set_result(details)

    def onUserError(self, fail, msg):
        # An interrupted invocation ends in CancelledError by design.
        if isinstance(getattr(fail, "value", fail), asyncio.CancelledError):
            return
        super().onUserError(fail, msg)

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
        await loop.create_connection(factory, host, port)
    else:
        _secure, host, port, _resource, _path, _params = parse_ws_url(url)
        factory = WampWebSocketClientFactory(lambda: session, url=url, serializers=[serializer])
        await loop.create_connection(factory, host, port)
    details = await session.joined
    return session, details


async def run(url, ser_name):
    a, _ = await connect(url, ser_name)
    b, _ = await connect(url, ser_name)
    c, _ = await connect(url, ser_name)
    d, _ = await connect(url, ser_name)
    loop = asyncio.get_running_loop()

    # least_loaded: A holds its call until released, D answers at once; while A is busy every
    # call goes to D.
    release = loop.create_future()
    held_by_a = []

    async def hold():
        held_by_a.append(1)
        await release
        return "A"

    await a.register(hold, "routing.py.least_loaded", options=least_loaded())
    await d.register(lambda: "D", "routing.py.least_loaded", options=least_loaded())
    first = [asyncio.ensure_future(b.call("routing.py.least_loaded")) for _ in range(2)]
    for _ in range(50):
        if held_by_a:
            break
        await asyncio.sleep(0.02)
    check(len(held_by_a) == 1, f"A got {len(held_by_a)} of the first two calls")
    later = [await b.call("routing.py.least_loaded") for _ in range(6)]
    check(later == ["D"] * 6, f"calls while A is busy went to {later!r}")
    release.set_result(None)
    check(sorted(await asyncio.gather(*first)) == ["A", "D"], "the first two calls")
    check(len(held_by_a) == 1, f"A got {len(held_by_a)} calls")

    # Sharded registration: one key reaches one callee from both callers' shards.
    await a.register(lambda: "A", "routing.py.sharded", options=RegisterOptions(invoke="roundrobin"))
    await d.register(lambda: "D", "routing.py.sharded", options=RegisterOptions(invoke="roundrobin"))
    owners = set()
    for k in range(12):
        got = []
        for caller in (b, c, b, c):
            NEXT_RKEY.append(f"key-{k}")
            got.append(await caller.call("routing.py.sharded"))
        check(len(set(got)) == 1, f"key-{k} reached {got!r}")
        owners.add(got[0])
    check(owners == {"A", "D"}, f"12 keys all reached {owners!r}")

    # Rerouting: A is unavailable, D answers; when both are, no_available_callee.
    refused = []

    def unavailable():
        refused.append(1)
        raise ApplicationError("wamp.error.unavailable")

    await a.register(unavailable, "routing.py.reroute", options=RegisterOptions(invoke="roundrobin"))
    await d.register(lambda: "D", "routing.py.reroute", options=RegisterOptions(invoke="roundrobin"))
    for caller in (b, c):
        got = [await caller.call("routing.py.reroute") for _ in range(3)]
        check(got == ["D"] * 3, f"rerouted calls answered {got!r}")
    check(len(refused) >= 2, f"A refused {len(refused)} calls")
    await a.register(unavailable, "routing.py.none", options=RegisterOptions(invoke="first"))
    await d.register(unavailable, "routing.py.none", options=RegisterOptions(invoke="first"))
    for caller in (b, c):
        try:
            await caller.call("routing.py.none")
            raise Failure("a call every callee refused was answered")
        except ApplicationError as e:
            check(e.error == "wamp.error.no_available_callee", f"all refused: {e.error}")
    for s in (a, b, c, d):
        s.leave()


def main():
    url, ser_name = sys.argv[1], sys.argv[2]
    try:
        asyncio.run(asyncio.wait_for(run(url, ser_name), TIMEOUT_S))
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        print(f"FAIL routing-python {url} {ser_name}: {e!r}")
        sys.exit(1)
    print(f"OK routing-python {url} {ser_name}")


if __name__ == "__main__":
    main()
