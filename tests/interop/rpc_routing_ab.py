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

from ab_common import Failure, check, connect_basic, main
from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions

TIMEOUT_S = 30.0

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


async def run(url, ser_name):
    a, _ = await connect_basic(url, ser_name, quiet_cancelled=True)
    b, _ = await connect_basic(url, ser_name, quiet_cancelled=True)
    c, _ = await connect_basic(url, ser_name, quiet_cancelled=True)
    d, _ = await connect_basic(url, ser_name, quiet_cancelled=True)
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


if __name__ == "__main__":
    sys.exit(main("routing-python", run, TIMEOUT_S))
