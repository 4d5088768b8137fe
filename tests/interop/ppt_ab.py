#!/usr/bin/env python3
"""Payload passthru mode with autobahn-python, sessions on different shards.

Usage: ppt_ab.py URL json|msgpack|cbor

autobahn-python 26 implements the older "payload transparency" draft (`enc_algo`, `enc_key`,
`enc_serializer`, payload in place of Arguments) and has no API for the `ppt_*` attributes. Its
sessions, serializers and message parsers are used as they are; this script only adds the wire
attributes the specification defines: `payload_passthru_mode` in HELLO, the `ppt_*` options on
PUBLISH, CALL and YIELD, and it records the Details of the EVENT, INVOCATION and RESULT messages
autobahn parsed (autobahn exposes no unknown Details). The payload is one binary item, which
crosses serializers (JSON carries it as a "\\u0000"-prefixed base64 string).

Sessions: publisher/caller P, subscriber/callee S1 (same serializer), S2 (another serializer), and
N, which did not announce the mode (it still gets the EVENT, as the spec leaves that case to the
subscriber). Prints "OK ppt-python <url> <serializer>" on success.
"""

import sys

from ab_common import Waiter, check, check_eq, check_fatal, connect, main, step
from autobahn.wamp import message, role
from autobahn.wamp.types import PublishOptions

TIMEOUT_S = 20.0
TOPIC = "com.ppt.python"
PROCEDURE = "com.ppt.python.echo"
SEALED = b"\x00\x01sealed\xff"
PPT = {
    "ppt_scheme": "wamp",
    "ppt_serializer": "cbor",
    "ppt_cipher": "xsalsa20poly1305",
    "ppt_keyid": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
}
ANSWER_PPT = {"ppt_scheme": "mqtt", "ppt_serializer": "native"}

SENDING = [False]
SEEN = {"event": [], "invocation": [], "result": []}


def announce(on):
    """HELLO is marshalled from these shared role objects when a session joins."""
    for features in role.DEFAULT_CLIENT_ROLES.values():
        features.payload_passthru_mode = True if on else None


def add_options(cls, attrs, when):
    original = cls.marshal

    def marshal(self):
        out = original(self)
        if when():
            out[2].update(attrs)
        return out

    cls.marshal = marshal


def record_details(cls, kind, index):
    original = cls.parse

    def parse(wmsg):
        SEEN[kind].append(dict(wmsg[index]))
        return original(wmsg)

    cls.parse = staticmethod(parse)


add_options(message.Publish, PPT, lambda: SENDING[0])
add_options(message.Call, PPT, lambda: SENDING[0])
add_options(message.Yield, ANSWER_PPT, lambda: True)
record_details(message.Event, "event", 3)
record_details(message.Invocation, "invocation", 3)
record_details(message.Result, "result", 2)


def ppt_of(details):
    return {k: v for k, v in details.items() if k.startswith("ppt_")}


async def sending(coro_fn):
    """Sends with the ppt_ options (autobahn marshals inside the publish/call itself)."""
    SENDING[0] = True
    try:
        fut = coro_fn()
    finally:
        SENDING[0] = False
    return await fut


async def run(url, ser_name):
    other = "msgpack" if ser_name == "json" else "json"
    step("connect")
    announce(True)
    p = await connect(url, ser_name, "P")
    s1 = await connect(url, ser_name, "S1")
    s2 = await connect(url, other, "S2")
    announce(False)
    n = await connect(url, ser_name, "N")
    subs = [s1, s2, n]

    step("subscribe")
    got = [Waiter() for _ in subs]
    for s, w in zip(subs, got):
        await s.subscribe(lambda *args, w=w: w.push(args), TOPIC)

    step("publish in passthru mode")
    ack = PublishOptions(acknowledge=True)
    await sending(lambda: p.publish(TOPIC, SEALED, options=ack))
    for i, w in enumerate(got):
        await w.until(1)
        check_eq(w.items[0], [SEALED], f"payload of {subs[i].name}")
    check_eq(len(SEEN["event"]), 3, "EVENTs parsed")
    for d in SEEN["event"]:
        check_eq(ppt_of(d), PPT, "EVENT.Details")

    step("plain publication")
    await p.publish(TOPIC, SEALED, options=ack)
    for w in got:
        await w.until(2)
    check(all(not ppt_of(d) for d in SEEN["event"][3:]), f"plain EVENTs: {SEEN['event'][3:]}")

    step("call in passthru mode")
    await s2.register(lambda payload: [payload, b"back"], PROCEDURE)
    res = await sending(lambda: p.call(PROCEDURE, SEALED))
    check_eq(res.results if hasattr(res, "results") else res, [SEALED, b"back"], "result payload")
    check_eq(len(SEEN["invocation"]), 1, "INVOCATIONs parsed")
    check_eq(ppt_of(SEEN["invocation"][0]), PPT, "INVOCATION.Details")
    check_eq(ppt_of(SEEN["result"][-1]), ANSWER_PPT, "RESULT.Details")

    check_fatal()
    for s in [p] + subs:
        s.closing = True
        await s.leave()


if __name__ == "__main__":
    sys.exit(main("ppt-python", run, TIMEOUT_S))
