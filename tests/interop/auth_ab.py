#!/usr/bin/env python3
"""Authentication interop: autobahn-python's own authenticators against a WAMP router.

Usage: auth_ab.py URL json|msgpack|cbor CASES_JSON

CASES_JSON: {"realm": ..., "cases": [{"name", "method", "args", "expect", "role"?}, ...]}
  method  an autobahn authenticator name (ticket, wampcra, scram, cryptosign, anonymous)
  args    its keyword arguments (authid, ticket, secret, password, privkey, ...)
  expect  "ok", or the ABORT reason the router must answer with

Each case opens its own connection and joins with only that authenticator (autobahn checks SCRAM's
server signature in WELCOME itself). The first two accepted sessions stay open: consecutive
connections, so with --shards 2 they sit on different shards, and one calls a procedure the other
registered and receives an event the other published. Prints "OK auth <name>" per case and exits
non-zero with a reason on the first failure.
"""

import asyncio
import json
import sys

from ab_common import Failure, SERIALIZERS, main, open_transport
from autobahn.asyncio.wamp import Session
from autobahn.wamp.auth import create_authenticator
from autobahn.wamp.types import ComponentConfig, PublishOptions

TIMEOUT_S = 20.0


class AuthSession(Session):
    def __init__(self, config):
        super().__init__(config)
        loop = asyncio.get_running_loop()
        self.joined = loop.create_future()
        self.left = loop.create_future()
        self.closing = False

    def on_join(self, details):
        if not self.joined.done():
            self.joined.set_result(details)

    def on_leave(self, details):
        if not self.joined.done():
            self.joined.set_exception(Failure(f"left: {details.reason}: {details.message}"))
        if not self.left.done():
            self.left.set_result(details.reason)
        self.disconnect()

    def on_disconnect(self):
        if not self.joined.done():
            self.joined.set_exception(Failure("disconnected before joining"))
        if not self.left.done():
            self.left.set_result("(disconnected)")


async def open_session(url, ser_name, realm, method, args):
    session = AuthSession(ComponentConfig(realm, {}))
    session.add_authenticator(create_authenticator(method, **args))
    await open_transport(url, SERIALIZERS[ser_name](), session)
    return session


async def run_case(url, ser_name, realm, case):
    s = await open_session(url, ser_name, realm, case["method"], case["args"])
    if case["expect"] == "ok":
        details = await asyncio.wait_for(s.joined, TIMEOUT_S)
        want_id = case["args"].get("authid", case.get("authid"))
        if want_id is not None and details.authid != want_id:
            raise Failure(f"authid {details.authid!r}, want {want_id!r}")
        if details.authrole != case["role"]:
            raise Failure(f"authrole {details.authrole!r}, want {case['role']!r}")
        if details.authmethod != case["method"]:
            raise Failure(f"authmethod {details.authmethod!r}, want {case['method']!r}")
        return s
    reason = await asyncio.wait_for(s.left, TIMEOUT_S)
    if s.joined.done() and s.joined.exception() is None:
        raise Failure("joined, but should have been refused")
    if reason != case["expect"]:
        raise Failure(f"refused with {reason!r}, want {case['expect']!r}")
    return None


async def cross_shard(a, b):
    """b calls what a registered and gets what a publishes; a and b are on different shards."""
    await a.register(lambda x: x * 2, "com.auth.double")
    got = asyncio.get_running_loop().create_future()
    await b.subscribe(lambda v: got.done() or got.set_result(v), "com.auth.topic")
    res = await b.call("com.auth.double", 21)
    if res != 42:
        raise Failure(f"cross-shard call returned {res!r}")
    await a.publish("com.auth.topic", "hi", options=PublishOptions(acknowledge=True, exclude_me=False))
    v = await asyncio.wait_for(got, TIMEOUT_S)
    if v != "hi":
        raise Failure(f"cross-shard event {v!r}")


async def run(url, ser_name, spec):
    ok_cases = []
    for case in spec["cases"]:
        try:
            s = await run_case(url, ser_name, spec["realm"], case)
        except Exception as e:  # noqa: BLE001
            raise Failure(f"case {case['name']}: {e!r}") from e
        print(f"OK auth {case['name']}", flush=True)
        if s is not None:
            ok_cases.append(case)
            s.leave()
    if len(ok_cases) < 2:
        raise Failure("fewer than two accepted cases")
    # Two consecutive connections: different shards under --shards 2.
    pair = []
    for case in ok_cases[:2]:
        pair.append(await run_case(url, ser_name, spec["realm"], case))
    await cross_shard(pair[0], pair[1])
    print("OK auth cross-shard", flush=True)
    for s in pair:
        s.leave()
    await asyncio.sleep(0.1)


def run_cli(url, ser_name, spec_json):
    return run(url, ser_name, json.loads(spec_json))


if __name__ == "__main__":
    sys.exit(main("auth", run_cli, 120, nargs=3))
