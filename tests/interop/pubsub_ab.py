#!/usr/bin/env python3
"""Advanced PubSub interop with autobahn-python: subscriber black/white listing, publisher
identification and event retention, with sessions on different shards.

Usage: pubsub_ab.py URL json|msgpack|cbor

Opens a publisher P and subscribers S1, S2, S3 (consecutive connections, so with --shards 2 they
alternate between shards), and later a late subscriber L in another serializer. Prints
"OK pubsub-python <url> <serializer>" on success.
"""

import sys

from ab_common import Waiter, check, check_eq, connect, main, step
from autobahn.wamp import message
from autobahn.wamp.types import PublishOptions, SubscribeOptions

TIMEOUT_S = 20.0
TOPIC = "com.pubsub.lists"


DISCLOSE = [False]
_marshal_options = message.Publish.marshal_options


def _with_disclose_me(self):
    """autobahn-python no longer offers `disclose_me`; the spec's wire option is added here."""
    options = _marshal_options(self)
    if DISCLOSE[0]:
        options["disclose_me"] = True
    return options


message.Publish.marshal_options = _with_disclose_me


def publish_disclosed(session, topic, arg, options):
    """Sends the PUBLISH at once (autobahn sends inside publish()), tagged with disclose_me."""
    DISCLOSE[0] = True
    try:
        return session.publish(topic, arg, options=options)
    finally:
        DISCLOSE[0] = False


async def lists_and_disclosure(url, ser_name):
    step("connect")
    p = await connect(url, ser_name, "P")
    subs = [await connect(url, ser_name, f"S{i}") for i in (1, 2, 3)]
    got = [Waiter() for _ in subs]
    for s, w in zip(subs, got):
        def on_event(*args, details=None, w=w):
            w.push((args[0], details.publisher, details.publisher_authid, details.publisher_authrole))

        await s.subscribe(on_event, TOPIC, options=SubscribeOptions(details_arg="details"))
    sid = [s._session_id for s in subs]
    authid = [s._authid for s in subs]
    check(all(authid), f"authids: {authid}")

    step("publish with lists")
    ack = dict(acknowledge=True)
    await p.publish(TOPIC, "x1", options=PublishOptions(exclude=[sid[0]], **ack))
    await p.publish(TOPIC, "x2", options=PublishOptions(eligible=[sid[0], sid[2]], **ack))
    await p.publish(TOPIC, "x3", options=PublishOptions(exclude_authid=[authid[1]], **ack))
    await p.publish(TOPIC, "x4", options=PublishOptions(eligible_authrole=["anonymous"],
                                                        exclude=[sid[2]], **ack))
    await p.publish(TOPIC, "x5", options=PublishOptions(eligible_authid=[authid[1], authid[2]],
                                                        exclude_authrole=["nobody"], **ack))
    await publish_disclosed(p, TOPIC, "x6", PublishOptions(**ack))
    await p.publish(TOPIC, "end", options=PublishOptions(**ack))
    want = [["x2", "x3", "x4", "x6", "end"],
            ["x1", "x4", "x5", "x6", "end"],
            ["x1", "x2", "x3", "x5", "x6", "end"]]
    for i, (w, expected) in enumerate(zip(got, want)):
        await w.until(len(expected))
        check_eq([e[0] for e in w.items], expected, f"events of S{i + 1}")
        for arg, publisher, p_authid, p_authrole in w.items:
            if arg == "x6":
                check_eq([publisher, p_authid, p_authrole], [p._session_id, p._authid, "anonymous"],
                         f"S{i + 1}: disclosed publisher")
            else:
                check(publisher is None, f"S{i + 1}: {arg} names publisher {publisher}")
    return p


async def retention(url, ser_name, p):
    other = "msgpack" if ser_name == "json" else "json"
    step("publish retained")
    ack = dict(acknowledge=True)
    await p.publish("com.pubsub.ret.a", "old", options=PublishOptions(retain=True, **ack))
    await publish_disclosed(p, "com.pubsub.ret.a", "new", PublishOptions(retain=True, **ack))
    await p.publish("com.pubsub.ret.b", "b", options=PublishOptions(retain=True, **ack))
    await p.publish("com.pubsub.ret.c", "not retained", options=PublishOptions(**ack))
    for n in range(2):
        late = await connect(url, other, f"L{n}")
        step(f"get_retained exact (L{n})")
        exact, prefix = Waiter(), Waiter()
        await late.subscribe(lambda *a, details=None: exact.push((a[0], details)), "com.pubsub.ret.a",
                             options=SubscribeOptions(get_retained=True, details_arg="details"))
        await exact.until(1)
        arg, d = exact.items[0]
        check_eq([arg, d.retained, d.publisher], ["new", True, p._session_id], "retained event")
        step(f"get_retained prefix (L{n})")
        await late.subscribe(lambda *a, details=None: prefix.push((a[0], details.topic, details.retained)),
                             "com.pubsub.ret.",
                             options=SubscribeOptions(match="prefix", get_retained=True,
                                                      details_arg="details"))
        await prefix.until(2)
        check_eq(sorted(prefix.items), [("b", "com.pubsub.ret.b", True), ("new", "com.pubsub.ret.a", True)],
                 "retained events of a prefix subscription")
        step(f"live event after retained (L{n})")
        await p.publish("com.pubsub.ret.a", f"live{n}", options=PublishOptions(**ack))
        await exact.until(2)
        check_eq([exact.items[1][0], exact.items[1][1].retained], [f"live{n}", None], "live event")
        check_eq(len(exact.items), 2, "no other event")
        late.closing = True
        await late.leave()


async def run(url, ser_name):
    p = await lists_and_disclosure(url, ser_name)
    await retention(url, ser_name, p)


if __name__ == "__main__":
    sys.exit(main("pubsub-python", run, TIMEOUT_S))
