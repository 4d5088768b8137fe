#!/usr/bin/env python3
"""Event history configured per realm in the router's TOML file, read with autobahn-python
(asyncio).

Usage: history_config_ab.py URL json|msgpack|cbor   (URLs as for ab_python.py)

The router runs with --shards 2 and a file whose realm1 has two [[realm.history]] tables:
prefix com.hist. (limit 3) and exact wamp.session.on_join (limit 10). Sessions are opened one
after the other, so A and B live on different shards. Checks that wamp.subscription.get_events
returns the last 3 of 5 events published from both shards (args, details.topic), and the
on_join meta events of A and B, made before anyone subscribed to them. Prints
"OK history-config-python <url> <serializer>" on success.
"""

import sys

from ab_common import (  # the shared harness: connect, checks, steps, main driver
    check_eq,
    check_fatal,
    connect,
    leave_all,
    main,
    step,
)
from autobahn.wamp.types import PublishOptions, SubscribeOptions

TIMEOUT_S = 30.0


async def history(a, b):
    step("history of a prefix pattern from the file")
    sub = await b.subscribe(lambda *args: None, "com.hist.", options=SubscribeOptions(match="prefix"))
    ack = PublishOptions(acknowledge=True)
    pubs = []
    for i, s in enumerate([a, b, a, b, a]):
        p = await s.publish(f"com.hist.t{i % 2}", i, options=ack)
        pubs.append(p.id)
    got = await a.call("wamp.subscription.get_events", sub.id)
    check_eq([e["args"] for e in got], [[2], [3], [4]], "the last 3 events, oldest first")
    check_eq([e["publication"] for e in got], pubs[2:], "publication ids")
    check_eq(got[1]["details"]["topic"], "com.hist.t1", "details.topic")


async def joins(a, b):
    step("on_join kept with nobody subscribed")
    sub = await a.subscribe(lambda *args: None, "wamp.session.on_join")
    got = await b.call("wamp.subscription.get_events", sub.id)
    sessions = [e["args"][0]["session"] for e in got]
    check_eq(sessions, [a.session_id, b.session_id], "A then B joined")
    check_eq(got[0]["args"][0]["authrole"], "anon", "authrole in the join details")


async def run(url, ser_name):
    sessions = []
    step("connect A, B")
    a = await connect(url, ser_name, "A")
    sessions.append(a)
    b = await connect(url, ser_name, "B")
    sessions.append(b)
    try:
        await joins(a, b)
        await history(a, b)
        check_fatal()
    finally:
        await leave_all(sessions)


if __name__ == "__main__":
    sys.exit(main("history-config-python", run, TIMEOUT_S))
