#!/usr/bin/env python3
"""Advanced RPC against a WAMP router with autobahn-python (asyncio).

Usage: rpc_ab.py URL json|msgpack|cbor

Opens a callee session A and a caller session B (consecutive connections, so
with --shards 2 they live on different shards) and checks progressive call
results, router-enforced call timeouts, call canceling and caller
identification and shared registration (round-robin). autobahn-python passes CallOptions(timeout=N) through
unchanged, and the router reads it as milliseconds (the spec's unit), although
autobahn-python's docstring speaks of seconds. autobahn-python has no option
for disclose_me, so the caller's CALL options are extended for procedures
ending in ".disclosed". Prints "OK rpc-python <url> <serializer>" on success.
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


def marshal_options_disclosing(self):
    options = _marshal_options(self)
    if self.procedure.endswith(".disclosed"):
        options["disclose_me"] = True
    return options


message.Call.marshal_options = marshal_options_disclosing


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
    a, _ = await connect(url, ser_name)  # callee
    b, b_details = await connect(url, ser_name)  # caller
    loop = asyncio.get_running_loop()

    # Progressive call results, in order, then the final result.
    async def stream(n, details=None):
        check(details.progress is not None, "the callee was not told to stream")
        for i in range(n):
            details.progress(i, tag="p")
        return "done"

    await a.register(stream, "rpc.py.stream", options=RegisterOptions(details_arg="details"))
    got = []
    res = await b.call("rpc.py.stream", 20, options=CallOptions(on_progress=lambda *args, **kw: got.append((args, kw))))
    check(res == "done", f"final result {res!r}")
    check([g[0][0] for g in got] == list(range(20)), f"progress results {got!r}")
    check(all(g[1] == {"tag": "p"} for g in got), f"progress kwargs {got!r}")

    # A router-enforced timeout: the caller gets wamp.error.timeout, the callee (which announced
    # call_canceling) is interrupted.
    interrupted = loop.create_future()

    async def slow(details=None):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            if not interrupted.done():
                interrupted.set_result(True)
            raise
        return "late"

    await a.register(slow, "rpc.py.slow", options=RegisterOptions(details_arg="details"))
    t0 = time.monotonic()
    try:
        res = await b.call("rpc.py.slow", options=CallOptions(timeout=300))
        raise Failure(f"expected wamp.error.timeout, got {res!r}")
    except ApplicationError as e:
        check(e.error == "wamp.error.timeout", f"timeout error {e.error}")
    took = time.monotonic() - t0
    check(0.25 <= took < 5, f"timed out after {took:.3f} s")
    await asyncio.wait_for(interrupted, 5)

    # Canceling (no mode: killnowait): the callee is interrupted, the caller's call ends.
    interrupted = loop.create_future()
    started = loop.create_future()

    async def cancellable():
        started.set_result(True)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            interrupted.set_result(True)
            raise
        return "late"

    await a.register(cancellable, "rpc.py.cancellable")
    call = b.call("rpc.py.cancellable")
    await asyncio.wait_for(started, 5)
    call.cancel()
    try:
        await call
        raise Failure("a canceled call returned")
    except (asyncio.CancelledError, ApplicationError):
        pass
    await asyncio.wait_for(interrupted, 5)

    # Caller identification: disclose_me on CALL.
    async def who(details=None):
        return [details.caller, details.caller_authid, details.caller_authrole]

    await a.register(who, "rpc.py.who.disclosed", options=RegisterOptions(details_arg="details"))
    res = await b.call("rpc.py.who.disclosed")
    check(res == [b_details.session, b_details.authid, b_details.authrole], f"disclosed caller {res!r}, caller {b_details}")
    await a.register(who, "rpc.py.who.plain", options=RegisterOptions(details_arg="details"))
    res = await b.call("rpc.py.who.plain")
    check(res == [None, None, None], f"undisclosed caller {res!r}")

    # Shared registration, round-robin: callees A (shard 0) and D (shard 1), callers B (shard 1)
    # and C (shard 0); every caller shard rotates over both callees.
    c, _ = await connect(url, ser_name)
    d, _ = await connect(url, ser_name)

    def named(name):
        def endpoint():
            return name
        return endpoint

    await a.register(named("A"), "rpc.py.shared", options=RegisterOptions(invoke="roundrobin"))
    await d.register(named("D"), "rpc.py.shared", options=RegisterOptions(invoke="roundrobin"))
    for caller in (b, c):
        got = [await caller.call("rpc.py.shared") for _ in range(4)]
        check(sorted(got) == ["A", "A", "D", "D"], f"round-robin answers {got!r}")
    try:
        await c.register(named("C"), "rpc.py.shared", options=RegisterOptions(invoke="first"))
        raise Failure("a REGISTER with another invocation policy was accepted")
    except ApplicationError as e:
        check(e.error == "wamp.error.procedure_exists_with_different_invocation_policy", f"policy clash {e.error}")
    c.leave()
    d.leave()

    # The sessions still work after all of that.
    async def add(x, y):
        return x + y

    await a.register(add, "rpc.py.add")
    check(await b.call("rpc.py.add", 2, 3) == 5, "plain call after the advanced ones")
    for s in (a, b):
        s.leave()


def main():
    url, ser_name = sys.argv[1], sys.argv[2]
    try:
        asyncio.run(asyncio.wait_for(run(url, ser_name), TIMEOUT_S))
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        print(f"FAIL rpc-python {url} {ser_name}: {e!r}")
        sys.exit(1)
    print(f"OK rpc-python {url} {ser_name}")


if __name__ == "__main__":
    main()
