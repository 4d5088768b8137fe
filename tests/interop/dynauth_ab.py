#!/usr/bin/env python3
"""Dynamic authenticator interop: an autobahn-python component is the authenticator, autobahn-python
clients log in with WAMP-CRA (with and without salt) and cryptosign.

Usage: dynauth_ab.py URL json|msgpack|cbor SPEC_JSON

SPEC_JSON: {"realm", "service_realm", "procedure",
            "principals": {authid: answer}  WAMP-CRA answers, by authid,
            "keys": {pubkey hex: answer}     cryptosign answers, by the client's key,
            "cases": [{"name", "method", "args", "expect", "role"?, "authid"?}, ...]}

The authenticator joins `service_realm` anonymously and registers `procedure`; for an authid or key
it does not know it raises an error. Each case opens its own connection with only that method's
autobahn authenticator; "expect" is "ok" or the ABORT reason. Prints "OK dynauth <name>" per case and
"OK dynauth URL SER" at the end; exits non-zero with a reason on the first failure.
"""

import asyncio
import json
import sys
import traceback

from auth_ab import Failure, open_session  # the shared client plumbing of the static-auth test
from autobahn.wamp.exception import ApplicationError

TIMEOUT_S = 20.0


def make_authenticator(spec, seen):
    def authenticate(realm, authid, details):
        seen.append((realm, authid, details))
        method = details.get("authmethod")
        if realm != spec["realm"]:
            raise ApplicationError("com.example.wrong_realm", realm)
        if method == "wampcra" and authid in spec["principals"]:
            return spec["principals"][authid]
        pubkey = (details.get("authextra") or {}).get("pubkey")
        if method == "cryptosign" and pubkey in spec["keys"]:
            return spec["keys"][pubkey]
        raise ApplicationError("com.example.no_such_user", authid)

    return authenticate


async def run_case(url, ser_name, spec, case):
    s = await open_session(url, ser_name, spec["realm"], case["method"], case["args"])
    if case["expect"] == "ok":
        details = await asyncio.wait_for(s.joined, TIMEOUT_S)
        want = case.get("authid", case["args"].get("authid"))
        got = (details.authid, details.authrole, details.authmethod, details.authprovider)
        if got != (want, case["role"], case["method"], "dynamic"):
            raise Failure(f"welcomed as {got!r}, want {(want, case['role'], case['method'], 'dynamic')!r}")
        s.leave()
        return
    reason = await asyncio.wait_for(s.left, TIMEOUT_S)
    if s.joined.done() and s.joined.exception() is None:
        raise Failure("joined, but should have been refused")
    if reason != case["expect"]:
        raise Failure(f"refused with {reason!r}, want {case['expect']!r}")


async def run(url, ser_name, spec):
    seen = []
    svc = await open_session(url, ser_name, spec["service_realm"], "anonymous", {})
    await asyncio.wait_for(svc.joined, TIMEOUT_S)
    await svc.register(make_authenticator(spec, seen), spec["procedure"])
    for case in spec["cases"]:
        try:
            await run_case(url, ser_name, spec, case)
        except Exception as e:  # noqa: BLE001
            raise Failure(f"case {case['name']}: {e!r}") from e
        print(f"OK dynauth {case['name']}", flush=True)
    # Every case reached the authenticator once, at HELLO, with what Crossbar passes.
    if len(seen) != len(spec["cases"]):
        raise Failure(f"the authenticator was called {len(seen)} times for {len(spec['cases'])} logins")
    for _realm, _authid, details in seen:
        if not isinstance(details.get("session"), int) or "transport" not in details:
            raise Failure(f"details lack session or transport: {details!r}")
    svc.leave()
    await asyncio.sleep(0.1)


def main():
    url, ser_name, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        asyncio.run(asyncio.wait_for(run(url, ser_name, spec), 120))
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        print(f"FAIL dynauth {url} {ser_name}", flush=True)
        sys.exit(1)
    print(f"OK dynauth {url} {ser_name}", flush=True)


if __name__ == "__main__":
    main()
