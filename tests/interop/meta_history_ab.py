#!/usr/bin/env python3
"""Event history, shared-registration meta, session transport and kill_all against
autobahn-python (asyncio).

Usage: meta_history_ab.py URL json|msgpack|cbor   (URLs as for ab_python.py)

The router runs with --shards 2 and --event-history prefix:com.hist=10; sessions
are opened one after the other, so consecutive ones live on different shards.
Checks wamp.subscription.get_events (events published from both shards, limit,
reverse, after_publication paging, details.topic), the registration meta of a
shared registration, the transport dict of wamp.session.get, and
wamp.session.kill_all (everyone else closed with wamp.close.killed, no
on_leave and no testament reaches the caller). Prints "OK meta-history-python
<url> <serializer>" on success.
"""

import asyncio
import sys

from ab_common import (  # the shared harness: connect, checks, steps, main driver
    Waiter,
    check,
    check_eq,
    check_fatal,
    connect,
    expect_error,
    leave_all,
    main,
    watch_leave,
    step,
)
from autobahn.wamp.types import PublishOptions, RegisterOptions, SubscribeOptions

TIMEOUT_S = 30.0


async def history(a, b):
    step("event history from both shards")
    sub = await b.subscribe(lambda *args: None, "com.hist", options=SubscribeOptions(match="prefix"))
    ack = PublishOptions(acknowledge=True)
    pubs = []
    for i, s in enumerate([a, b, a, b, a]):
        p = await s.publish(f"com.hist.t{i % 2}", i, options=ack)
        pubs.append(p.id)
    got = await a.call("wamp.subscription.get_events", sub.id)
    check_eq([e["args"] for e in got], [[0], [1], [2], [3], [4]], "all events, oldest first")
    check_eq([e["publication"] for e in got], pubs, "publication ids")
    check_eq(got[1]["details"]["topic"], "com.hist.t1", "details.topic")
    check(all(e["subscription"] == sub.id for e in got), "subscription id in every event")
    check(all(e["timestamp"].endswith("Z") for e in got), "RFC 3339 timestamps")
    page = await b.call("wamp.subscription.get_events", sub.id, limit=2)
    check_eq([e["args"] for e in page], [[0], [1]], "first page")
    page = await b.call("wamp.subscription.get_events", sub.id, limit=2,
                        after_publication=page[-1]["publication"])
    check_eq([e["args"] for e in page], [[2], [3]], "second page")
    back = await a.call("wamp.subscription.get_events", sub.id, reverse=True, limit=1)
    check_eq([e["args"] for e in back], [[4]], "newest first")
    only = await a.call("wamp.subscription.get_events", sub.id, topic="com.hist.t0")
    check_eq([e["args"] for e in only], [[0], [2], [4]], "one topic")
    await expect_error(a.call("wamp.subscription.get_events", 1), "wamp.error.no_such_subscription",
                       "unknown subscription")


async def shared_registration(a, b, c):
    step("shared registration meta")
    log = Waiter()
    for topic in ["wamp.registration.on_create", "wamp.registration.on_register",
                  "wamp.registration.on_unregister", "wamp.registration.on_delete"]:
        await a.subscribe(lambda *args, t=topic: log.push((t, list(args))), topic)
    rr = RegisterOptions(invoke="roundrobin")
    r1 = await b.register(lambda: "b", "com.hist.proc", options=rr)
    r2 = await c.register(lambda: "c", "com.hist.proc", options=rr)
    check_eq(r1.id, r2.id, "one registration")
    await log.until(3)
    check_eq([t for t, _ in log.items[:3]],
             ["wamp.registration.on_create", "wamp.registration.on_register",
              "wamp.registration.on_register"], "created once")
    check_eq(log.items[0][1][1]["invoke"], "roundrobin", "on_create invoke")
    check_eq(await a.call("wamp.registration.list_callees", r1.id), [b.session_id, c.session_id],
             "callees in order")
    got = await a.call("wamp.registration.get", r1.id)
    check_eq(got["invoke"], "roundrobin", "get: invoke")
    await r1.unregister()
    await log.until(4)
    await asyncio.sleep(0.2)
    check_eq([t for t, _ in log.items[3:]], ["wamp.registration.on_unregister"], "not deleted yet")
    await r2.unregister()
    await log.until(6)
    check_eq([t for t, _ in log.items[4:6]],
             ["wamp.registration.on_unregister", "wamp.registration.on_delete"], "deleted")


async def transport(a, b, ws):
    step("session transport details")
    got = await a.call("wamp.session.get", b.session_id)
    t = got["transport"]
    check_eq(t["type"], "websocket" if ws else "rawsocket", "transport type")
    check(t["peer"].startswith("tcp4:127.0.0.1:"), f"transport peer {t['peer']!r}")
    check_eq(t["is_secure"], False, "is_secure")


async def kill_all(a, others):
    step("kill_all")
    log = Waiter()
    await a.subscribe(lambda *args: log.push(("leave", list(args))), "wamp.session.on_leave")
    await a.subscribe(lambda *args: log.push(("will", list(args))), "com.hist.will")
    await others[0].call("wamp.session.add_testament", "com.hist.will", ["bye"], {})
    lefts = []
    for s in others:
        lefts.append(watch_leave(s))
        s.closing = True
    n = await a.call("wamp.session.kill_all", reason="com.hist.maintenance")
    check_eq(n, len(others), "killed count")
    for left in lefts:
        details = await asyncio.wait_for(left, 10)
        check_eq(details.reason, "com.hist.maintenance", "kill_all reason")
    await asyncio.sleep(0.3)
    check_eq(log.items, [], "no on_leave, no testament")
    check_eq(await a.call("wamp.session.count"), 1, "only the caller is left")


async def run(url, ser_name):
    sessions = []

    async def open_session(name):
        s = await connect(url, ser_name, name)
        sessions.append(s)
        return s

    step("connect A, B, C")
    a = await open_session("A")
    b = await open_session("B")
    c = await open_session("C")
    try:
        await history(a, b)
        await shared_registration(a, b, c)
        await transport(a, b, url.startswith("ws://"))
        await kill_all(a, [b, c])
        check_fatal()
    finally:
        await leave_all(sessions)


if __name__ == "__main__":
    sys.exit(main("meta-history-python", run, TIMEOUT_S))
