#!/usr/bin/env python3
"""Interoperability check of a WAMP router against autobahn-python (asyncio).

Usage: ab_python.py URL json|msgpack|cbor

URL is one of
  ws://127.0.0.1:PORT/ws     WebSocket
  rs://127.0.0.1:PORT        RawSocket over TCP
  rs://unix:/path/to.sock    RawSocket over a Unix domain socket

Opens sessions A and B (consecutive connections, so with --shards 2 they live
on different shards) and a session C that uses a different serializer, then
checks RPC, errors, PubSub (acknowledged, in order, publisher exclusion),
binary payloads and transcoding between serializers. Exits non-zero with a
reason on the first failure; prints "OK python <url> <serializer>" on success.
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
    main,
    short,
    step,
)
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult, PublishOptions, RegisterOptions

TIMEOUT_S = 20.0
N_EVENTS = 100

ALL_BYTES = bytes(range(256))
EMPTY = b""
UNICODE = "héllo ☃"


async def run(url, ser_name):
    other_ser = "msgpack" if ser_name == "json" else "json"

    step("connect A")
    a = await connect(url, ser_name, "A")
    step("connect B")
    b = await connect(url, ser_name, "B")
    sessions = [a, b]

    try:
        # ------------------------------------------------------------ RPC
        step("register")

        def add2(*args):
            return args[0] + args[1]

        def kw(*args, **kwargs):
            return CallResult(len(args), *args, echo=kwargs, keys=sorted(kwargs))

        def oops(*args, **kwargs):
            raise ApplicationError("com.interop.oops", 1, x=2)

        last_echo = []

        def echo(*args, **kwargs):
            last_echo.append((list(args), dict(kwargs)))
            return CallResult(*args, **kwargs)

        await a.register(add2, "com.interop.add2")
        await a.register(kw, "com.interop.kw")
        await a.register(oops, "com.interop.oops")
        await a.register(echo, "com.interop.echo")

        step("call add2")
        check_eq(await b.call("com.interop.add2", 2, 3), 5, "add2(2, 3)")
        check_eq(await b.call("com.interop.add2", 40.5, 1.5), 42.0, "add2(40.5, 1.5)")
        check_eq(await b.call("com.interop.add2", "foo", "bar"), "foobar", "add2('foo', 'bar')")

        step("call kw (positional)")
        r = await b.call("com.interop.kw", 1, "two", [3], {"four": 4})
        check(isinstance(r, CallResult), f"expected CallResult, got {short(r)}")
        check_eq(r.results, [4, 1, "two", [3], {"four": 4}], "kw positional: args")
        check_eq(r.kwresults, {"echo": {}, "keys": []}, "kw positional: kwargs")

        step("call kw (kwargs)")
        r = await b.call("com.interop.kw", x=1, y="z", nested={"list": [1, 2, None, True]})
        check(isinstance(r, CallResult), f"expected CallResult, got {short(r)}")
        check_eq(r.results, [0], "kw kwargs: args")
        check_eq(r.kwresults, {"echo": {"x": 1, "y": "z", "nested": {"list": [1, 2, None, True]}},
                            "keys": ["nested", "x", "y"]}, "kw kwargs: kwargs")

        step("call kw (args and kwargs)")
        r = await b.call("com.interop.kw", UNICODE, u=UNICODE)
        check_eq(r.results, [1, UNICODE], "kw both: args")
        check_eq(r.kwresults, {"echo": {"u": UNICODE}, "keys": ["u"]}, "kw both: kwargs")

        step("call unknown procedure")
        await expect_error(b.call("com.interop.does_not_exist", 1),
                           "wamp.error.no_such_procedure", "unknown procedure")

        step("callee error")
        e = await expect_error(b.call("com.interop.oops"), "com.interop.oops", "callee error")
        check_eq(list(e.args), [1], "callee error args")
        check_eq(e.kwargs, {"x": 2}, "callee error kwargs")

        step("duplicate registration")
        await expect_error(b.register(lambda *a: 0, "com.interop.add2"),
                           "wamp.error.procedure_already_exists", "register from B")
        await expect_error(a.register(lambda *a: 0, "com.interop.add2", options=RegisterOptions()),
                           "wamp.error.procedure_already_exists", "register again from A")
        check_eq(await b.call("com.interop.add2", 1, 1), 2, "add2 still served by A")

        # --------------------------------------------------------- PubSub
        step("subscribe")
        got_a = Waiter()
        got_b = Waiter()
        await a.subscribe(lambda *args, **kwargs: got_a.push((list(args), kwargs)), "com.interop.topic")
        await b.subscribe(lambda *args, **kwargs: got_b.push((list(args), kwargs)), "com.interop.topic")

        step("publish 100 acknowledged")
        pub_ids = set()
        for i in range(N_EVENTS):
            pub = await b.publish("com.interop.topic", i, seq=i, options=PublishOptions(acknowledge=True))
            check(pub is not None and isinstance(pub.id, int) and pub.id > 0,
                  f"publish {i}: expected a publication id, got {short(pub)}")
            pub_ids.add(pub.id)
        check(len(pub_ids) == N_EVENTS, f"publication ids not distinct: {len(pub_ids)} of {N_EVENTS}")

        step("publish exclude_me=False")
        last = await b.publish("com.interop.topic", "self", seq=-1,
                               options=PublishOptions(acknowledge=True, exclude_me=False))
        check(last is not None and isinstance(last.id, int), f"expected a publication id, got {short(last)}")

        step("receive on A")
        await got_a.until(N_EVENTS + 1)
        for i in range(N_EVENTS):
            check_eq(got_a.items[i], ([i], {"seq": i}), f"event {i} on A (in order)")
        check_eq(got_a.items[N_EVENTS], (["self"], {"seq": -1}), "exclude_me=False event on A")

        step("receive on B")
        # Events of one publisher reach a subscriber in order: once the
        # exclude_me=False event is in, a wrongly delivered earlier one would be too.
        await got_b.until(1)
        check_eq(got_b.items, [(["self"], {"seq": -1})], "B (publisher) events: only the exclude_me=False one")

        # ------------------------------------------------ binary payloads
        step("binary RPC")
        bargs = [ALL_BYTES, EMPTY, "text"]
        bkw = {"b": ALL_BYTES, "e": EMPTY, "nested": {"x": [ALL_BYTES]}}
        r = await b.call("com.interop.echo", *bargs, **bkw)
        check(isinstance(r, CallResult), f"expected CallResult, got {short(r)}")
        check_eq(r.results, bargs, "binary echo: args")
        check_eq(r.kwresults, bkw, "binary echo: kwargs")
        check_eq(last_echo[-1], (bargs, bkw), "binary echo: as seen by the callee")
        check_eq(await b.call("com.interop.echo", ALL_BYTES), ALL_BYTES, "binary echo: single value")

        step("binary PubSub")
        bin_a = Waiter()
        await a.subscribe(lambda *args, **kwargs: bin_a.push((list(args), kwargs)), "com.interop.bin")
        await b.publish("com.interop.bin", *bargs, options=PublishOptions(acknowledge=True), **bkw)
        await bin_a.until(1)
        check_eq(bin_a.items[0], (bargs, bkw), "binary event on A")

        # ---------------------------------------------- mixed serializers
        step(f"connect C ({other_ser})")
        c = await connect(url, other_ser, "C")
        sessions.append(c)

        step("mixed PubSub")
        mix_a = Waiter()
        await a.subscribe(lambda *args, **kwargs: mix_a.push((list(args), kwargs)), "com.interop.mixed")
        margs = [ALL_BYTES, UNICODE, EMPTY, 7, 1.5, None, True]
        mkw = {"b": ALL_BYTES, "u": UNICODE, "e": EMPTY, UNICODE: [ALL_BYTES]}
        await c.publish("com.interop.mixed", *margs, options=PublishOptions(acknowledge=True), **mkw)
        await mix_a.until(1)
        check_eq(mix_a.items[0], (margs, mkw), f"event from {other_ser} session C on {ser_name} session A")

        step("mixed RPC")
        check_eq(await c.call("com.interop.add2", 20, 22), 42, "add2 called from C")
        r = await c.call("com.interop.kw", UNICODE, u=UNICODE)
        check_eq(r.results, [1, UNICODE], "kw from C: args")
        check_eq(r.kwresults, {"echo": {"u": UNICODE}, "keys": ["u"]}, "kw from C: kwargs")
        r = await c.call("com.interop.echo", *margs, **mkw)
        check_eq(last_echo[-1], (margs, mkw), f"invocation from {other_ser} session C as seen by {ser_name} session A")
        check_eq(r.results, margs, "echo from C: args")
        check_eq(r.kwresults, mkw, "echo from C: kwargs")

        # And the other way round: A publishes, C receives.
        mix_c = Waiter()
        await c.subscribe(lambda *args, **kwargs: mix_c.push((list(args), kwargs)), "com.interop.mixed2")
        await a.publish("com.interop.mixed2", *margs, options=PublishOptions(acknowledge=True), **mkw)
        await mix_c.until(1)
        check_eq(mix_c.items[0], (margs, mkw), f"event from {ser_name} session A on {other_ser} session C")

        check_fatal()
    finally:
        for s in reversed(sessions):
            s.closing = True
        for s in reversed(sessions):
            try:
                if s.is_attached():
                    await asyncio.wait_for(s.leave(), 2.0)
            except Exception:
                pass


if __name__ == "__main__":
    sys.exit(main("python", run, TIMEOUT_S))
