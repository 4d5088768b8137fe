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

from ab_common import Failure, connect_basic, denied, main, step
from autobahn.wamp.types import PublishOptions

TIMEOUT_S = 20.0


async def connect(url, ser_name):
    session, details = await connect_basic(url, ser_name)
    if details.authrole != "app":
        raise Failure(f"joined with role {details.authrole!r}, wanted 'app'")
    return session


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


if __name__ == "__main__":
    sys.exit(main("authz", run, TIMEOUT_S))
