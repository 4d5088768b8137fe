"""Shared harness of the autobahn-python interop scripts (asyncio): serializers, step tracking,
checks, sessions, connecting over WebSocket or RawSocket, and the main driver.

URL is one of
  ws://127.0.0.1:PORT/ws     WebSocket
  rs://127.0.0.1:PORT        RawSocket over TCP
  rs://unix:/path/to.sock    RawSocket over a Unix domain socket

Python puts a script's own directory first on sys.path, so `from ab_common import ...` works
whatever the working directory.
"""

import asyncio
import sys
import traceback

import txaio

txaio.use_asyncio()

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory  # noqa: E402
from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.rawsocket.util import parse_url as parse_rs_url  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.serializer import (  # noqa: E402
    CBORSerializer,
    JsonSerializer,
    MsgPackSerializer,
)
from autobahn.wamp.types import ComponentConfig  # noqa: E402
from autobahn.websocket.util import parse_url as parse_ws_url  # noqa: E402

SERIALIZERS = {
    "json": JsonSerializer,
    "msgpack": MsgPackSerializer,
    "cbor": CBORSerializer,
}


class Failure(Exception):
    pass


STEP = ["start"]
# Unexpected leaves and disconnects of a `Session`; checked by `Waiter.until` and the scripts.
FATAL = []


def step(name):
    STEP[0] = name


def norm(v):
    """Tuples to lists, recursively, so results compare independent of container type."""
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    return v


def short(v):
    s = repr(v)
    return s if len(s) <= 300 else s[:300] + "..."


def check(cond, msg):
    if not cond:
        raise Failure(f"{STEP[0]}: {msg}")


def check_eq(got, want, what):
    got_n, want_n = norm(got), norm(want)
    # bytes == str is False in Python, so a binary value that turned into a
    # string (or the other way round) is caught here.
    if got_n != want_n or (isinstance(want_n, (bytes, str)) and type(got_n) is not type(want_n)):
        raise Failure(f"{STEP[0]}: {what}: got {short(got)}, want {short(want)}")


async def expect_error(coro, uri, what):
    try:
        res = await coro
    except ApplicationError as e:
        check_eq(e.error, uri, f"{what}: error URI")
        return e
    raise Failure(f"{STEP[0]}: {what}: expected ApplicationError {uri}, got success {short(res)}")


class Session(ApplicationSession):
    """A named session that records unexpected leaves and disconnects in FATAL."""

    def __init__(self, config, name):
        super().__init__(config)
        self.name = name
        self.joined = asyncio.get_running_loop().create_future()
        self.closing = False

    def onJoin(self, details):
        if not self.joined.done():
            self.joined.set_result(details)

    def onLeave(self, details):
        if not self.joined.done():
            self.joined.set_exception(Failure(f"session {self.name} left before joining: {details}"))
        elif not self.closing:
            FATAL.append(f"session {self.name} left unexpectedly: {details}")
        super().onLeave(details)

    def onUserError(self, fail, msg):
        # The callee's deliberate com.interop.oops error is expected; keep
        # anything else visible.
        err = getattr(fail, "value", fail)
        if isinstance(err, ApplicationError) and err.error == "com.interop.oops":
            return
        super().onUserError(fail, msg)

    def onDisconnect(self):
        if not self.joined.done():
            self.joined.set_exception(Failure(f"session {self.name} disconnected before joining"))
        elif not self.closing:
            FATAL.append(f"session {self.name} disconnected unexpectedly")


class BasicSession(ApplicationSession):
    """A session whose `joined` future resolves with the WELCOME details; with
    `quiet_cancelled`, an invocation interrupted by design (CancelledError) is not logged."""

    def __init__(self, config, quiet_cancelled=False):
        super().__init__(config)
        self.joined = asyncio.get_running_loop().create_future()
        self.quiet_cancelled = quiet_cancelled

    def onJoin(self, details):
        if not self.joined.done():
            self.joined.set_result(details)

    def onUserError(self, fail, msg):
        if self.quiet_cancelled and isinstance(getattr(fail, "value", fail), asyncio.CancelledError):
            return
        super().onUserError(fail, msg)

    def onLeave(self, details):
        if not self.joined.done():
            self.joined.set_exception(Failure(f"left before joining: {details}"))
        super().onLeave(details)


async def open_transport(url, serializer, session):
    """Connects `session` to `url` (ws://, rs://host:port or rs://unix:/path) with one serializer."""
    loop = asyncio.get_running_loop()
    if url.startswith("rs://"):
        _secure, host, port = parse_rs_url(url)
        factory = WampRawSocketClientFactory(lambda: session, serializer=serializer)
        if host == "unix":
            return await loop.create_unix_connection(factory, port)
        return await loop.create_connection(factory, host, port)
    if url.startswith("ws://"):
        _secure, host, port, _resource, _path, _params = parse_ws_url(url)
        factory = WampWebSocketClientFactory(lambda: session, url=url, serializers=[serializer])
        factory.setProtocolOptions(openHandshakeTimeout=5.0, closeHandshakeTimeout=1.0, failByDrop=False)
        return await loop.create_connection(factory, host, port)
    raise Failure(f"unsupported URL {url}")


async def connect(url, ser_name, name):
    """A joined `Session` named `name` in realm1; checks that it really uses `ser_name`."""
    serializer = SERIALIZERS[ser_name]()
    session = Session(ComponentConfig("realm1", {}), name)
    await open_transport(url, serializer, session)
    await session.joined
    got = getattr(session._transport, "_serializer", None)
    got_id = getattr(got, "SERIALIZER_ID", None)
    check(got_id == serializer.SERIALIZER_ID,
          f"session {name}: transport uses serializer {got_id!r}, wanted {serializer.SERIALIZER_ID!r}")
    return session


async def connect_basic(url, ser_name, realm="realm1", quiet_cancelled=False):
    """A joined `BasicSession` in `realm`, and its WELCOME details."""
    session = BasicSession(ComponentConfig(realm, {}), quiet_cancelled)
    await open_transport(url, SERIALIZERS[ser_name](), session)
    details = await session.joined
    return session, details


class Waiter:
    """Wakes waiters after each recorded event."""

    def __init__(self):
        self.items = []
        self._cond = asyncio.Condition()

    def push(self, item):
        self.items.append(item)

        async def notify():
            async with self._cond:
                self._cond.notify_all()

        asyncio.ensure_future(notify())

    async def until(self, n):
        async with self._cond:
            await self._cond.wait_for(lambda: len(self.items) >= n or FATAL)
        if FATAL:
            raise Failure(FATAL[0])


def watch_leave(session):
    """A future resolved with the CloseDetails when `session` leaves."""
    left = asyncio.get_running_loop().create_future()
    original = session.onLeave

    def on_leave(details):
        if not left.done():
            left.set_result(details)
        original(details)

    session.onLeave = on_leave
    return left


def check_fatal():
    """Fails with the first unexpected leave or disconnect recorded in FATAL, if any."""
    if FATAL:
        raise Failure(FATAL[0])


async def leave_all(sessions):
    """Marks every session as closing, asks the attached ones to leave, and lets that settle."""
    for s in sessions:
        s.closing = True
        if s.is_attached():
            s.leave()
    await asyncio.sleep(0.1)


def main(label, run, timeout_s, nargs=2):
    """Runs `run(URL, ser, *rest)` from the command line within `timeout_s`: prints
    "OK <label> <URL> <ser>" and returns 0, or prints "FAIL <label> <URL> <ser> at step <step>: <reason>" and
    returns 1 (2 for bad arguments). `nargs` is the number of command-line arguments."""
    args = sys.argv[1:]
    if len(args) != nargs or args[1] not in SERIALIZERS:
        print(f"usage: {sys.argv[0]} URL json|msgpack|cbor{' ...' if nargs > 2 else ''}", file=sys.stderr)
        return 2
    url, ser_name = args[0], args[1]

    async def bounded():
        try:
            await asyncio.wait_for(run(*args), timeout_s)
        except asyncio.TimeoutError:
            raise Failure(f"global timeout after {timeout_s:.0f} s (step: {STEP[0]})")

    try:
        asyncio.run(bounded())
    except Failure as e:
        traceback.print_exc()
        print(f"FAIL {label} {url} {ser_name} at step {STEP[0]}: {e}", flush=True)
        return 1
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        print(f"FAIL {label} {url} {ser_name} at step {STEP[0]}: {type(e).__name__}: {e!r}", flush=True)
        return 1
    print(f"OK {label} {url} {ser_name}", flush=True)
    return 0


NOT_AUTHORIZED = "wamp.error.not_authorized"


async def denied(coro, what):
    """Awaits `coro` and fails unless it raises ApplicationError wamp.error.not_authorized."""
    try:
        await coro
    except ApplicationError as e:
        if e.error != NOT_AUTHORIZED:
            raise Failure(f"{what}: error {e.error}, wanted {NOT_AUTHORIZED}")
        return
    raise Failure(f"{what}: succeeded, wanted {NOT_AUTHORIZED}")
