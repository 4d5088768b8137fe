#!/usr/bin/env python3
"""Dynamic authenticator interop: an autobahn-python component is the authenticator, autobahn-python
clients log in with WAMP-CRA (with and without salt), SCRAM (autobahn's `scram` dialect) and
cryptosign.

Usage: dynauth_ab.py URL json|msgpack|cbor SPEC_JSON

SPEC_JSON: {"realm", "service_realm", "procedure",
            "principals": {authid: answer}  WAMP-CRA answers, by authid,
            "keys": {pubkey hex: answer}     cryptosign answers, by the client's key,
            "scram": {authid: entry}         SCRAM answers, by authid (see scram_answer),
            "cases": [{"name", "method", "args", "expect", "role"?, "authid"?}, ...]}

The authenticator joins `service_realm` anonymously and registers `procedure`; for an authid or key
it does not know it raises an error. Each case opens its own connection with only that method's
autobahn authenticator; "expect" is "ok" or the ABORT reason. Prints "OK dynauth <name>" per case and
"OK dynauth URL SER" at the end; exits non-zero with a reason on the first failure.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import sys

from ab_common import main
from auth_ab import Failure, open_session  # the shared client plumbing of the static-auth test
from argon2.low_level import Type, hash_secret_raw
from autobahn.wamp.auth import derive_scram_credential
from autobahn.wamp.exception import ApplicationError

TIMEOUT_S = 20.0


def keys_of(salted):
    """StoredKey and ServerKey (hex) from SaltedPassword as the client feeds it to HMAC."""
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return {
        "stored-key": hashlib.sha256(client_key).hexdigest(),
        "server-key": hmac.new(salted, b"Server Key", hashlib.sha256).hexdigest(),
    }


def scram_answer(entry):
    """The answer for a SCRAM login, by the entry's "shape":
    - "crossbar": Crossbar's credential (hex salt, Argon2id parameters, hex StoredKey/ServerKey),
      computed here from "password" the way autobahn's client derives SaltedPassword (the Argon2id
      output as its unpadded base64 text); "break" names a key to corrupt;
    - "autobahn": the credential autobahn's own derive_scram_credential(authid, password) makes;
    - "password": "answer" as it is (wampd derives the keys from the password).
    "role" and "authid" are added to the answer."""
    shape = entry["shape"]
    if shape == "crossbar":
        raw = hash_secret_raw(
            entry["password"].encode("utf8"),
            bytes.fromhex(entry["salt"]),
            time_cost=entry["iterations"],
            memory_cost=entry["memory"],
            parallelism=1,
            hash_len=32,
            type=Type.ID,
            version=0x13,
        )
        salted = base64.b64encode(raw).rstrip(b"=")
        answer = {
            "kdf": "argon2id-13",
            "salt": entry["salt"],
            "iterations": entry["iterations"],
            "memory": entry["memory"],
            **keys_of(salted),
        }
        if "break" in entry:
            answer[entry["break"]] = answer[entry["break"]][:-2]
    elif shape == "autobahn":
        answer = derive_scram_credential(entry["credential_authid"], entry["password"])
    else:
        answer = dict(entry["answer"])
    answer["role"] = entry["role"]
    if "authid" in entry:
        answer["authid"] = entry["authid"]
    return answer


def make_authenticator(spec, seen):
    scram = {authid: scram_answer(entry) for authid, entry in spec.get("scram", {}).items()}

    def authenticate(realm, authid, details):
        seen.append((realm, authid, details))
        method = details.get("authmethod")
        if realm != spec["realm"]:
            raise ApplicationError("com.example.wrong_realm", realm)
        if method == "wampcra" and authid in spec["principals"]:
            return spec["principals"][authid]
        if method == "scram" and authid in scram:
            return scram[authid]
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
        asked = [(authid, details.get("authmethod")) for _realm, authid, details in seen]
        raise Failure(f"the authenticator was called {len(seen)} times for {len(spec['cases'])} logins: {asked}")
    for _realm, _authid, details in seen:
        if not isinstance(details.get("session"), int) or "transport" not in details:
            raise Failure(f"details lack session or transport: {details!r}")
    svc.leave()
    await asyncio.sleep(0.1)


def run_cli(url, ser_name, spec_json):
    return run(url, ser_name, json.loads(spec_json))


if __name__ == "__main__":
    sys.exit(main("dynauth", run_cli, 120, nargs=3))
