#!/usr/bin/env python3
"""The dynamic authorizer as autobahn-python sees it, from both ends.

Usage: authorizer_ab.py URL json|msgpack|cbor

The router runs with a configuration whose realm "app" gives its anonymous
role "guest" no static permission at all, and names the authorizer
"com.example.authorize" in realm "auth". Session AUTH (realm "auth") registers
that procedure; sessions APP and APP2 (realm "app") are the next connections,
so with --shards 2 APP sits on the other shard than AUTH. The authorizer
answers by the URI's last component: "open" -> True, "closed" -> False,
"dict" -> {"allow": True, "disclose": True}, "once" -> {"allow": True,
"cache": False}; it counts its invocations, which proves the cache.
Prints "OK authorizer <url> <serializer>" on success; exits non-zero with the
failing step otherwise.
"""

import asyncio
import sys
from collections import Counter

from ab_common import Failure, connect_basic, denied, main, step
from autobahn.wamp.types import PublishOptions, RegisterOptions

TIMEOUT_S = 30.0
AUTHORIZER = "com.example.authorize"
ASKED = Counter()
SEEN = []


def authorize(session, uri, action, options):
    """The authorizer, as Crossbar.io calls one."""
    ASKED[(action, uri)] += 1
    SEEN.append((session, uri, action, options))
    last = uri.rsplit(".", 1)[-1]
    if last == "open":
        return True
    if last == "dict":
        return {"allow": True, "disclose": True}
    if last == "once":
        return {"allow": True, "cache": False}
    return False


async def connect(url, ser_name, realm):
    session, _details = await connect_basic(url, ser_name, realm)
    return session


def expect(what, got, wanted):
    if got != wanted:
        raise Failure(f"{what}: got {got!r}, wanted {wanted!r}")


async def run(url, ser_name):
    step("connect")
    auth = await connect(url, ser_name, "auth")
    await auth.register(authorize, AUTHORIZER)
    app = await connect(url, ser_name, "app")
    app2 = await connect(url, ser_name, "app")

    step("register through the authorizer")
    callers = []

    def whoami(details=None):
        callers.append(details.caller)
        return "hi"

    opts = RegisterOptions(details_arg="details")
    for proc in ("app.rpc.open", "app.rpc.dict", "app.rpc.once"):
        await app2.register(whoami, proc, options=opts)
    await denied(app2.register(whoami, "app.rpc.closed"), "register app.rpc.closed")

    step("bool answers, cached")
    for _ in range(3):
        expect("call app.rpc.open", await app.call("app.rpc.open"), "hi")
        await denied(app.call("app.rpc.closed"), "call app.rpc.closed")
    expect("asked for call app.rpc.open", ASKED[("call", "app.rpc.open")], 1)
    expect("asked for call app.rpc.closed", ASKED[("call", "app.rpc.closed")], 1)
    expect("caller hidden by a plain True", callers, [None] * 3)

    step("dict answers: disclose, cache false")
    expect("call app.rpc.dict", await app.call("app.rpc.dict"), "hi")
    expect("caller disclosed by the answer", callers[-1], app._session_id)
    for _ in range(3):
        expect("call app.rpc.once", await app.call("app.rpc.once"), "hi")
    expect("asked for call app.rpc.once", ASKED[("call", "app.rpc.once")], 3)

    step("publish and subscribe")
    events = asyncio.get_running_loop().create_future()
    await app.subscribe(lambda v: events.done() or events.set_result(v), "app.t.open")
    await app2.publish("app.t.open", 42, options=PublishOptions(acknowledge=True))
    expect("event", await asyncio.wait_for(events, 5), 42)
    await denied(
        app.publish("app.t.closed", 1, options=PublishOptions(acknowledge=True)),
        "publish app.t.closed",
    )
    await denied(app.subscribe(lambda: None, "app.t.closed"), "subscribe app.t.closed")
    await denied(app.call("wamp.session.count"), "call wamp.session.count (meta API)")

    step("what the authorizer was told")
    session, uri, action, options = next(s for s in SEEN if s[1] == "app.rpc.open" and s[2] == "call")
    expect("session", session.get("session"), app._session_id)
    expect("authrole", session.get("authrole"), "guest")
    expect("realm", session.get("realm"), "app")
    expect("options", isinstance(options, dict), True)
    for s in (app, app2, auth):
        s.leave()


if __name__ == "__main__":
    sys.exit(main("authorizer", run, TIMEOUT_S))
