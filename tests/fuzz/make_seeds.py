#!/usr/bin/env python3
"""Writes the seed corpora under seeds/<target>/ from the WAMP test-suite vectors.

Usage: make_seeds.py [PATH/TO/wamp-testsuite]   (default: the copy in tests/vectors/)
"""
import glob
import hashlib
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SERS = {"json": "message_json", "msgpack": "message_msgpack", "cbor": "message_cbor"}
RS_ID = {"json": 1, "msgpack": 2, "cbor": 3}


def write(target, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def ws_frame(payload, opcode, fin=True, mask=b"\x11\x22\x33\x44"):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def main(suite):
    msgs = {s: [] for s in SERS}
    for path in sorted(glob.glob(os.path.join(suite, "singlemessage", "**", "*.json"), recursive=True)):
        with open(path) as f:
            doc = json.load(f)
        for sample in doc.get("samples", []):
            for ser, encs in sample.get("serializers", {}).items():
                if ser not in SERS:
                    continue
                for enc in encs:
                    if "bytes_hex" in enc:
                        msgs[ser].append(bytes.fromhex(enc["bytes_hex"]))
    for ser, target in SERS.items():
        for m in msgs[ser]:
            write(target, m)

    # Transports: a few frames carrying real messages, whole and fragmented.
    js = [m for m in msgs["json"] if len(m) < 200][:6]
    mp = [m for m in msgs["msgpack"] if len(m) < 200][:6]
    write("websocket_decoder", (
        b"GET /ws HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wamp.2.json, wamp.2.msgpack\r\n\r\n"))
    for i, m in enumerate(js):
        write("websocket_decoder", bytes([i * 7]) + ws_frame(m, 1))
    for i, m in enumerate(mp):
        half = len(m) // 2
        write("websocket_decoder", bytes([i * 5 + 3]) + ws_frame(m[:half], 2, fin=False)
              + ws_frame(b"", 9) + ws_frame(m[half:], 0))
    write("websocket_decoder", b"\x01" + ws_frame(b"\x03\xe8bye", 8))
    for ser, ms in (("json", js), ("msgpack", mp)):
        for i, m in enumerate(ms[:4]):
            hs = bytes([0x7F, 0xF0 | RS_ID[ser], 0, 0])
            frame = bytes([0]) + len(m).to_bytes(3, "big") + m
            write("rawsocket_decoder", hs + bytes([i * 9]) + frame + b"\x01\x00\x00\x02hi")

    boundaries()


def boundaries():
    """Frames at the edge of what each serializer may carry (some accepted, some refused), so
    that mutations explore both sides of it."""
    write("message_json", rb'[16, 1, {"acknowledge": null}, "t", ["\u0000\/w==", "\u0000AQJ"], {"\u0000k": 1e308}]')
    write("message_json", rb'[3, {"message": "m"}, "wamp.close.normal", ["x"], {"k": -1e400}]')
    write("message_json", b'[48, 1, {}, "p", [' + b"9" * 309 + b', 0.5e-400]]')
    # PUBLISH [16, 1, {"match": <undefined>}, "t", [<undefined>, f32 1.5, "\0x"]]
    write("message_msgpack", bytes.fromhex("951001" "81a56d61746368d40000" "a174" "93d40000ca3fc00000a20078"))
    # PUBLISH with NaN and an ext value in the arguments
    write("message_msgpack", bytes.fromhex("95100180a174" "92cb7ff8000000000000d40101"))
    # PUBLISH [16, 1, {}, "t", [tag 64 h'010203', tag 55799 42, undefined, tag 1 0, "\0x", -2^64]]
    write("message_cbor", bytes.fromhex("85100" "1a06174" "86d84043010203d9d9f7182af7c100620078"
                                        "3bffffffffffffffff"))
    # ABORT with arguments, half NaN in the keyword arguments
    write("message_cbor", bytes.fromhex("8503a0" "71" + b"wamp.close.normal".hex() + "8161" "78" "a16161f97e00"))


if __name__ == "__main__":
    default = os.path.join(HERE, "..", "vectors", "wamp-testsuite")
    main(sys.argv[1] if len(sys.argv) > 1 else default)
