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

from ab_common import Failure, check, connect_basic, main
from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions, RegisterOptions

TIMEOUT_S = 30.0

_marshal_options = message.Call.marshal_options


def marshal_options_disclosing(self):
    options = _marshal_options(self)
    if self.procedure.endswith(".disclosed"):
        options["disclose_me"] = True
    return options


message.Call.marshal_options = marshal_options_disclosing


async def run(url, ser_name):
    a, _ = await connect_basic(url, ser_name, quiet_cancelled=True)  # callee
    b, b_details = await connect_basic(url, ser_name, quiet_cancelled=True)  # caller
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
    c, _ = await connect_basic(url, ser_name, quiet_cancelled=True)
    d, _ = await connect_basic(url, ser_name, quiet_cancelled=True)

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


if __name__ == "__main__":
    sys.exit(main("rpc-python", run, TIMEOUT_S))
