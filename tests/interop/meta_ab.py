#!/usr/bin/env python3
"""The meta API and testaments against autobahn-python (asyncio).

Usage: meta_ab.py URL json|msgpack|cbor   (URLs as for ab_python.py)

Sessions are opened one after the other, so with --shards 2 consecutive ones
live on different shards. Checks wamp.session.count/list/get, the session and
subscription meta events seen from another shard, subscription and
registration lookups, wamp.session.kill of a session on another shard
(closed with wamp.close.killed), and a testament published after the
session's transport is dropped without GOODBYE. Prints "OK meta-python <url>
<serializer>" on success.
"""

import asyncio
import sys

from ab_common import (  # the shared harness: connect, checks, steps, main driver
    Waiter,
    check_eq,
    check_fatal,
    connect,
    expect_error,
    leave_all,
    main,
    watch_leave,
    step,
)
from autobahn.wamp.types import SubscribeOptions

TIMEOUT_S = 30.0


async def meta_events(watcher):
    """Subscribes `watcher` to the meta events this script checks; returns the log of those about
    other sessions (the watcher hears about its own meta subscriptions too)."""
    log = Waiter()

    def record(topic, args):
        who = args[0]["session"] if isinstance(args[0], dict) else args[0]
        if who != watcher.session_id:
            log.push((topic, args))

    for topic in [
        "wamp.session.on_join",
        "wamp.session.on_leave",
        "wamp.subscription.on_create",
        "wamp.subscription.on_subscribe",
    ]:
        await watcher.subscribe(lambda *args, t=topic: record(t, list(args)), topic)
    return log


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
        step("session count/list/get")
        check_eq(await a.call("wamp.session.count"), 3, "wamp.session.count")
        ids = await a.call("wamp.session.list")
        check_eq(sorted(ids), sorted([a.session_id, b.session_id, c.session_id]), "wamp.session.list")
        got = await b.call("wamp.session.get", c.session_id)
        check_eq(got["session"], c.session_id, "get: session")
        check_eq(got["authrole"], "anonymous", "get: authrole")
        await expect_error(a.call("wamp.session.get", 1), "wamp.error.no_such_session", "get unknown")

        step("meta events from another shard")
        log = await meta_events(a)
        d = await open_session("D")
        await log.until(1)
        check_eq(log.items[0][0], "wamp.session.on_join", "first event")
        check_eq(log.items[0][1][0]["session"], d.session_id, "on_join session")
        sub = await d.subscribe(lambda *a: None, "com.meta.topic")
        await log.until(3)
        check_eq([t for t, _ in log.items[1:3]],
                 ["wamp.subscription.on_create", "wamp.subscription.on_subscribe"], "order")
        check_eq(log.items[1][1][1]["uri"], "com.meta.topic", "on_create details uri")
        check_eq(log.items[2][1], [d.session_id, sub.id], "on_subscribe args")

        step("subscription and registration lookups")
        check_eq(await a.call("wamp.subscription.lookup", "com.meta.topic"), sub.id, "lookup")
        check_eq(await a.call("wamp.subscription.count_subscribers", sub.id), 1, "count")
        check_eq(await a.call("wamp.subscription.list_subscribers", sub.id), [d.session_id], "list")
        reg = await b.register(lambda: 1, "com.meta.proc")
        check_eq(await a.call("wamp.registration.lookup", "com.meta.proc"), reg.id, "reg lookup")
        check_eq(await a.call("wamp.registration.match", "com.meta.proc"), reg.id, "reg match")
        check_eq(await a.call("wamp.registration.list_callees", reg.id), [b.session_id], "callees")

        step("clients cannot register meta procedures")
        await expect_error(c.register(lambda: 0, "wamp.session.count"),
                           "wamp.error.invalid_uri", "register wamp.session.count")

        step("kill a session on another shard")
        left = watch_leave(d)
        d.closing = True
        d_id = d.session_id  # autobahn forgets it on leave
        check_eq(await a.call("wamp.session.kill", d_id), None, "kill result")
        details = await asyncio.wait_for(left, 10)
        check_eq(details.reason, "wamp.close.killed", "kill reason")
        await log.until(4)
        leave = [args for t, args in log.items if t == "wamp.session.on_leave"]
        check_eq(leave[-1], [d_id, f"anonymous-{d_id}", "anonymous"], "on_leave")
        check_eq(await a.call("wamp.session.count"), 3, "count after kill")

        step("testament after an abrupt drop")
        e = await open_session("E")
        will = Waiter()
        await a.subscribe(lambda *args, **kw: will.push((list(args), kw)), "com.meta.will",
                          options=SubscribeOptions(match="exact"))
        await e.call("wamp.session.add_testament", "com.meta.will", ["gone"], {"who": "E"})
        await e.call("wamp.session.add_testament", "com.meta.will", ["flushed"], {},
                     scope="detached")
        await e.call("wamp.session.flush_testaments", scope="detached")
        e.closing = True
        e._transport.transport.abort()  # no GOODBYE: the socket just goes away
        await will.until(1)
        check_eq(will.items[0], (["gone"], {"who": "E"}), "testament event")
        await asyncio.sleep(0.3)
        check_eq(len(will.items), 1, "the flushed testament is not published")
        check_fatal()
    finally:
        await leave_all(sessions)


if __name__ == "__main__":
    sys.exit(main("meta-python", run, TIMEOUT_S))
